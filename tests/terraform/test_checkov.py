"""checkov over terraform/: no failed check, every skip explained, and the project's own policies really bite.

checkov ships no policy for genesyscloud, tfe, random or local resources, so on its own it passes
terraform/ vacuously; tests/terraform/checkov/ adds the policies this project cares about. checkov
is not a dev requirement (it is large and pins old dependencies): the test runs when it is found
through $CHECKOV, PATH, .venv/bin or .venv-checkov/bin, and is skipped otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .helpers import REPO, TERRAFORM_DIR, tf_files

POLICIES = Path(__file__).resolve().parent / "checkov"
SKIP_COMMENT = re.compile(r"checkov:skip=([A-Z0-9_]+)(:?)(.*)")

#: One resource breaking each project policy; the run must fail each of them.
VIOLATIONS = """
resource "genesyscloud_oauth_client" "bad" {
  name                  = "bad"
  authorized_grant_type = "CLIENT-CREDENTIALS"
  scopes                = ["outbound"]
}

resource "tfe_notification_configuration" "bad" {
  name             = "bad"
  destination_type = "generic"
  workspace_id     = "ws-1"
  url              = "https://example.com/elsewhere"
}

resource "local_file" "bad" {
  filename        = "mapping.json"
  content         = "{}"
  file_permission = "0644"
}
"""


def _checkov() -> str | None:
    candidates = [os.environ.get("CHECKOV"), shutil.which("checkov"), REPO / ".venv/bin/checkov"]
    candidates.append(REPO / ".venv-checkov/bin/checkov")
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def test_every_checkov_skip_in_the_code_gives_a_reason() -> None:
    for path in tf_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = SKIP_COMMENT.search(line)
            if match:
                assert match.group(2) and match.group(3).strip(), f"{path}:{number}: #checkov:skip=ID:<reason>"


def test_project_policies_have_ids_and_names() -> None:
    policies = sorted(POLICIES.glob("*.yaml"))
    assert policies
    for policy in policies:
        text = policy.read_text(encoding="utf-8")
        assert re.search(r'id: "CKV2_PIPEDIAL_\d+"', text) and "name:" in text, policy.name


@pytest.fixture(scope="module")
def checkov_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """One checkov run over a copy of terraform/ beside a directory of violations, grouped by directory.

    (checkov's graph policies misreport when given several -d directories, hence one tree.)
    """
    binary = _checkov()
    if binary is None:
        pytest.skip("checkov is not installed (pip install checkov==3.3.30 in its own venv, or set CHECKOV)")
    tree = tmp_path_factory.mktemp("checkov")
    shutil.copytree(TERRAFORM_DIR, tree / "terraform", ignore=shutil.ignore_patterns(".terraform", "generated"))
    (tree / "violations").mkdir()
    (tree / "violations" / "main.tf").write_text(VIOLATIONS, encoding="utf-8")
    proc = subprocess.run(
        [binary, "-d", str(tree), "--framework", "terraform", "--skip-download"]
        + ["--external-checks-dir", str(POLICIES), "-o", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    report = json.loads(proc.stdout)
    assert report["summary"]["parsing_errors"] == 0, report["results"].get("parsing_errors")
    grouped: dict[str, list[dict[str, Any]]] = {"terraform": [], "violations": []}
    for outcome in ("passed_checks", "failed_checks", "skipped_checks"):
        for check in report["results"].get(outcome, []):
            top = Path(check["file_abs_path"]).relative_to(tree).parts[0]
            grouped[top].append({**check, "outcome": outcome})
    return grouped


def test_checkov_passes_on_terraform(checkov_results: dict[str, list[dict[str, Any]]]) -> None:
    checks = checkov_results["terraform"]
    failed = [f"{c['check_id']} {c['resource']}" for c in checks if c["outcome"] == "failed_checks"]
    assert not failed, failed
    for check in checks:
        if check["outcome"] == "skipped_checks":
            assert (check.get("check_result", {}).get("suppress_comment") or "").strip(), check["check_id"]
    passed = {c["check_id"] for c in checks if c["outcome"] == "passed_checks"}
    assert {"CKV2_PIPEDIAL_1", "CKV2_PIPEDIAL_2", "CKV2_PIPEDIAL_3", "CKV2_PIPEDIAL_4"} <= passed


def test_project_policies_fail_on_violations(checkov_results: dict[str, list[dict[str, Any]]]) -> None:
    failed = {c["check_id"] for c in checkov_results["violations"] if c["outcome"] == "failed_checks"}
    assert {"CKV2_PIPEDIAL_1", "CKV2_PIPEDIAL_2", "CKV2_PIPEDIAL_3", "CKV2_PIPEDIAL_4"} <= failed
