"""terraform/ run for real, offline: fmt, the submodules' own `terraform test`, and mappings the receiver accepts.

Only the provider-free submodules can be initialised here (no provider downloads). The mapping
module is applied inside a throwaway root that stands in for the provider lookups (contact list and
division names get made-up ids), and what it renders goes through the receiver's JSON Schema,
`python -m receiver check-mapping` and the receiver's own router.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from .helpers import (
    DATA,
    EXAMPLE_TFVARS,
    MAPPING_SCHEMA,
    MODULES,
    REPO,
    TERRAFORM_DIR,
    Terraform,
    skip_or_fail,
)

#: A root module that needs no provider: it resolves names the way the real root does with data
#: sources, but to made-up ids ("Payments on-call" -> "cl-payments-on-call").
RENDER_ROOT = """
variable "routes" {{
  type = any
}}

variable "default_division_id" {{
  type    = string
  default = null
}}

variable "default_cooldown" {{
  type    = string
  default = "10m"
}}

variable "hcp_terraform_workspaces" {{
  type    = map(string)
  default = {{}}
}}

locals {{
  list_names     = toset(compact([for r in var.routes : try(r.target.contact_list_name, null)]))
  division_names = toset(compact([for r in var.routes : try(r.target.division_name, null)]))
  slug           = "/[^a-z0-9]+/"
}}

module "mapping" {{
  source = "{source}"

  routes                   = var.routes
  contact_list_ids         = {{ for n in local.list_names : n => "cl-${{replace(lower(n), local.slug, "-")}}" }}
  division_ids             = {{ for n in local.division_names : n => "div-${{replace(lower(n), local.slug, "-")}}" }}
  default_division_id      = coalesce(var.default_division_id, "div-home")
  default_cooldown         = var.default_cooldown
  hcp_terraform_workspaces = keys(var.hcp_terraform_workspaces)
}}

output "actions" {{
  value = module.mapping.actions
}}

output "division_ids" {{
  value = module.mapping.division_ids
}}

output "hcp_terraform_triggers" {{
  value = module.mapping.hcp_terraform_triggers
}}

output "json" {{
  value = module.mapping.json
}}

output "routes_in" {{
  value = var.routes
}}
"""

#: Variable files rendered through the mapping module: the shipped example and a case that uses
#: every feature of a route (both ways to name a list and a division, continue, every action).
RENDER_CASES = {
    "example": EXAMPLE_TFVARS,
    "every-feature": DATA / "every-feature.tfvars",
}


# --- formatting and the submodules' own tests -----------------------------------------------------


def test_terraform_fmt_check(terraform: Terraform) -> None:
    proc = terraform.run("fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM_DIR), cwd=REPO, check=False)
    assert proc.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{proc.stdout}{proc.stderr}"


def test_example_tfvars_is_formatted(terraform: Terraform) -> None:
    text = EXAMPLE_TFVARS.read_text(encoding="utf-8")
    formatted = terraform.run("fmt", "-no-color", "-", cwd=REPO, stdin=text).stdout
    assert formatted == text, f"run `terraform fmt - < {EXAMPLE_TFVARS.name}` and keep its output"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_submodule_terraform_test_passes_offline(terraform: Terraform, name: str, tmp_path: Path) -> None:
    directory = MODULES[name]
    assert list((directory / "tests").glob("*.tftest.hcl")), f"modules/{name} has no tests/*.tftest.hcl"
    terraform.run("init", "-backend=false", "-input=false", "-no-color", cwd=directory, data_dir=tmp_path)
    proc = terraform.run("test", "-no-color", cwd=directory, data_dir=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"Success! [1-9][0-9]* passed, 0 failed\.", proc.stdout), proc.stdout  # nothing skipped


# --- rendered mappings ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(terraform: Terraform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Apply the render root once per case; return its outputs and the mapping file it rendered.

    The example also sets the root module's other inputs; terraform warns about those and goes on.
    """
    results: dict[str, dict[str, Any]] = {}
    for case, var_file in RENDER_CASES.items():
        root = tmp_path_factory.mktemp(f"render-{case}")
        (root / "main.tf").write_text(RENDER_ROOT.format(source=MODULES["mapping"].as_posix()), encoding="utf-8")
        out = terraform.apply_outputs(root, var_file)
        mapping_file = root / "mapping.json"
        mapping_file.write_text(out["json"], encoding="utf-8")
        results[case] = {**out, "mapping_file": mapping_file}
    return results


@pytest.mark.parametrize("case", sorted(RENDER_CASES))
def test_rendered_mapping_passes_the_receivers_json_schema(rendered: dict[str, dict[str, Any]], case: str) -> None:
    if not MAPPING_SCHEMA.is_file():
        skip_or_fail(f"{MAPPING_SCHEMA} does not exist yet")
    schema = json.loads(MAPPING_SCHEMA.read_text(encoding="utf-8"))
    document = json.loads(rendered[case]["json"])
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)


@pytest.mark.parametrize("case", sorted(RENDER_CASES))
def test_rendered_mapping_passes_receiver_check_mapping(rendered: dict[str, dict[str, Any]], case: str) -> None:
    if importlib.util.find_spec("receiver.cli") is None:
        skip_or_fail("receiver.cli is not importable, so `python -m receiver check-mapping` cannot run")
    proc = subprocess.run(
        [sys.executable, "-m", "receiver", "check-mapping", str(rendered[case]["mapping_file"])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout


@pytest.mark.parametrize("case", sorted(RENDER_CASES))
def test_rendered_routes_keep_their_order_names_and_actions(rendered: dict[str, dict[str, Any]], case: str) -> None:
    routes_in = rendered[case]["routes_in"]
    document = json.loads(rendered[case]["json"])
    assert document["version"] == 1
    assert [r["name"] for r in document["routes"]] == [r["name"] for r in routes_in]
    assert [r["target"]["action"] for r in document["routes"]] == [r["target"]["action"] for r in routes_in]
    assert rendered[case]["actions"] == sorted({r["target"]["action"] for r in routes_in})
    for route in document["routes"]:
        assert "contact_list_name" not in route["target"] and "division_name" not in route["target"]


def test_example_renders_two_divisions_and_named_lists(rendered: dict[str, dict[str, Any]]) -> None:
    out = rendered["example"]
    document = json.loads(out["json"])
    assert out["division_ids"] == ["div-payments", "div-platform"]
    assert document["defaults"] == {"division_id": "div-home", "cooldown": "10m"}
    lists = {r["name"]: r["target"].get("contact_list_id") for r in document["routes"]}
    assert lists == {
        "payments-prod-failed": "cl-payments-on-call",
        "prod-failed": "cl-platform-on-call",
        "payments-prod-needs-approval": "cl-payments-approvers",
        "payments-release-failed": None,
    }


def test_every_feature_case_renders_ids_and_continue(rendered: dict[str, dict[str, Any]]) -> None:
    document = json.loads(rendered["every-feature"]["json"])
    assert document["defaults"] == {"division_id": "div-default", "cooldown": "0"}
    first, *_ = document["routes"]
    assert first["continue"] is True
    assert all("continue" not in r for r in document["routes"][1:])
    assert rendered["every-feature"]["division_ids"] == ["div-default", "div-ops", "div-sales-emea"]


# --- triggers against the receiver's own router ---------------------------------------------------


@pytest.mark.parametrize("case", sorted(RENDER_CASES))
def test_subscribed_triggers_cover_every_event_the_routes_can_match(
    rendered: dict[str, dict[str, Any]], case: str
) -> None:
    """For each watched workspace and each trigger HCP Terraform can send, the receiver's router decides
    whether any route could act on it; every such trigger must be subscribed (a superset is allowed)."""
    route_module = pytest.importorskip("receiver.route")
    hcp = pytest.importorskip("receiver.sources.hcp_terraform")
    from receiver.model import Event

    mapping = route_module.load_mapping(rendered[case]["mapping_file"])
    subscribed: dict[str, list[str]] = rendered[case]["hcp_terraform_triggers"]
    for workspace, triggers in subscribed.items():
        needed = set()
        for trigger in _subscribable_triggers():
            for state in _states_of(hcp, trigger):
                event = Event(source="hcp-terraform", kind=trigger, state=state, dedupe_key="x", workspace=workspace)
                if route_module.route(event, mapping):
                    needed.add(trigger)
        assert needed <= set(triggers), f"{workspace}: missing {sorted(needed - set(triggers))}"
        if case == "example":  # its routes match on source, workspace and state only: exact, not a superset
            assert set(triggers) == needed, workspace


def _subscribable_triggers() -> list[str]:
    from .helpers import VENDORED_PROVIDER_SCHEMAS

    schemas = json.loads(VENDORED_PROVIDER_SCHEMAS.read_text(encoding="utf-8"))
    triggers: list[str] = schemas["tfe"]["resources"]["tfe_notification_configuration"]["triggers"]["allowed_values"]
    return triggers


def _states_of(hcp: Any, trigger: str) -> set[str]:
    """Every state the receiver can normalize one trigger to (run:errored and destroy results vary with run status)."""
    states = {hcp.TRIGGERS[trigger]}
    if trigger == "run:errored":
        states |= {"failed", "canceled"}
    if trigger in ("workspace:auto_destroy_run_results", "workspace:auto_destroy_results"):
        states |= set(hcp.DESTROY_RESULTS.values()) | {"failed", "unknown"}
    return states


def test_example_watched_workspaces_get_their_triggers(rendered: dict[str, dict[str, Any]]) -> None:
    assert rendered["example"]["hcp_terraform_triggers"] == {
        "payments-prod-api": [
            "assessment:check_failure",
            "assessment:drifted",
            "assessment:failed",
            "run:errored",
            "run:needs_attention",
            "workspace:auto_destroy_run_results",
        ],
        "platform-prod-k8s": [
            "assessment:check_failure",
            "assessment:drifted",
            "assessment:failed",
            "run:errored",
            "workspace:auto_destroy_run_results",
        ],
        "platform-prod-network": [
            "assessment:check_failure",
            "assessment:drifted",
            "assessment:failed",
            "run:errored",
            "workspace:auto_destroy_run_results",
        ],
    }
