"""Real published payloads (tests/data/published, provenance in its SOURCES.md) through every source.

Each file must parse, with the headers its sender sends, to the expected kind and state and to the
subject fields the payload carries; the bytes must verify under a signature computed over them; and no
mutation of any of them may raise anything but PayloadError.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.errors import PayloadError
from receiver.model import STATES, Event
from receiver.sources import get_source
from tests.sources import DATA, mutations

PUBLISHED = DATA / "published"


class Expected(NamedTuple):
    kind: str
    state: str
    organization: str | None = None
    repository: str | None = None
    workspace: str | None = None
    branch: str | None = None
    run_id: str | None = None
    url: str | None = None
    environment: str | None = None


#: (source, file) -> what it normalizes to. None means the payload has no such value.
CASES: dict[tuple[str, str], Expected] = {
    # --- GitHub: octokit/webhooks payload-examples ------------------------------------------------
    ("github", "workflow_job.queued.payload.json"): Expected(
        "workflow_job.queued", "created", "Octocoders", "Codertocat/Hello-World",
        run_id="2202229078", url="https://github.com/octo-org/octo-repo/runs/1291536064",
    ),
    ("github", "workflow_job.queued.with-deployment.payload.json"): Expected(
        "workflow_job.queued", "created", "lineville", "lineville/elastic-machines-testing", branch="main",
        run_id="4747967848",
        url="https://github.com/lineville/elastic-machines-testing/actions/runs/4747967848/jobs/8433573014",
        environment="Test",
    ),
    ("github", "workflow_job.waiting.payload.json"): Expected(
        "workflow_job.waiting", "needs_approval", "lineville", "lineville/elastic-machines-testing", branch="main",
        run_id="4747967848",
        url="https://github.com/lineville/elastic-machines-testing/actions/runs/4747967848/jobs/8433573014",
    ),
    ("github", "workflow_job.in_progress.payload.json"): Expected(
        "workflow_job.in_progress", "running", "Octocoders", "Codertocat/Hello-World",
        run_id="2202229078", url="https://github.com/octo-org/octo-repo/runs/1291536064",
    ),
    ("github", "workflow_job.in_progress.with-queued-steps.payload.json"): Expected(
        "workflow_job.in_progress", "running", "wolfy1339", "wolfy1339/github-events-schemas",
        branch="renovate/got-13.x", run_id="5373506832",
        url="https://github.com/wolfy1339/github-events-schemas/actions/runs/5373506832/jobs/9747952373",
    ),
    ("github", "workflow_job.started.with-organization.payload.json"): Expected(
        "workflow_job.started", "running", "Octocoders", "Codertocat/Hello-World",
        run_id="2202229078", url="https://github.com/octo-org/octo-repo/runs/1291536064",
    ),
    ("github", "workflow_job.completed.failure.with-organization.payload.json"): Expected(
        "workflow_job.completed", "failed", "Octocoders", "Codertocat/Hello-World",
        run_id="2202229078", url="https://github.com/octo-org/octo-repo/runs/1291536064",
    ),
    ("github", "workflow_run.completed.with-pull-requests.payload.json"): Expected(
        "workflow_run.completed", "succeeded", "octo-org", "octo-org/octo-repo", branch="master",
        run_id="289782451", url="https://github.com/octo-org/octo-repo/actions/runs/289782451",
    ),
    ("github", "workflow_run.requested.with-conclusion.payload.json"): Expected(
        "workflow_run.requested", "created", "octo-org", "octo-org/octo-repo", branch="master",
        run_id="289782451", url="https://github.com/octo-org/octo-repo/actions/runs/289782451",
    ),
    ("github", "check_suite.completed.payload.json"): Expected(
        "check_suite.completed", "succeeded", "Codertocat", "Codertocat/Hello-World", branch="changes",
        run_id="118578147", url="https://api.github.com/repos/Codertocat/Hello-World/check-suites/118578147",
    ),
    ("github", "check_suite.requested.payload.json"): Expected(
        "check_suite.requested", "created", "Codertocat", "Codertocat/Hello-World", branch="master",
        run_id="118578174", url="https://api.github.com/repos/Codertocat/Hello-World/check-suites/118578174",
    ),
    ("github", "check_suite.rerequested.payload.json"): Expected(
        "check_suite.rerequested", "created", "Codertocat", "Codertocat/Hello-World", branch="changes",
        run_id="118578147", url="https://api.github.com/repos/Codertocat/Hello-World/check-suites/118578147",
    ),
    ("github", "deployment_status.created.in_progress.gh-pages.payload.json"): Expected(
        "deployment_status.created", "running", "Codertocat", "Codertocat/Hello-World", branch="master",
        run_id="145988746", url="https://github.com/Codertocat/Hello-World/runs/145988746?check_suite_focus=true",
        environment="github-pages",
    ),
    # target_url, log_url and environment_url are all empty or absent: no link to give.
    ("github", "deployment_status.created.success.with-installation.payload.json"): Expected(
        "deployment_status.created", "succeeded", "Codertocat", "Codertocat/Hello-World", branch="master",
        run_id="145988746", environment="production",
    ),
    ("github", "ping.with-app_id.payload.json"): Expected(
        "ping", "verification", "Octocoders", "Octocoders/Hello-World",
    ),
    ("github", "ping.with-organization.payload.json"): Expected("ping", "verification", "Octocoders"),
    # --- GitLab: documentation examples and client-library test data --------------------------------
    ("gitlab", "job-hook.webhook_events-md.json"): Expected(
        "Job Hook", "created", "Gitlab Org", "gitlab-org/gitlab-test", branch="gitlab-script-trigger",
        run_id="2366", url="http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/1977",
    ),
    ("gitlab", "deployment-hook.webhook_events-md.json"): Expected(
        "Deployment Hook", "succeeded", "Administrator", "root/test-deployment-webhooks", run_id="796",
        url="http://10.126.0.2:3000/root/test-deployment-webhooks/-/jobs/796", environment="staging",
    ),
    ("gitlab", "pipeline-hook.webhooks-md-gitlab-11.json"): Expected(
        "Pipeline Hook", "succeeded", "Gitlab Org", "gitlab-org/gitlab-test", branch="master", run_id="31",
        url="http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/31",
    ),
    # No project object: the repository comes from repository.git_ssh_url; project_name is no full name.
    ("gitlab", "job-hook.webhooks-md-gitlab-11.json"): Expected(
        "Job Hook", "created", None, "gitlab-org/gitlab-test", branch="gitlab-script-trigger", run_id="2366",
    ),
    ("gitlab", "pipeline.go-gitlab.json"): Expected(
        "Pipeline Hook", "succeeded", "Gitlab Org", "gitlab-org/gitlab-test", branch="master", run_id="31",
        url="http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/31",
    ),
    # A gitlab.com Job Hook without a project object: project_name is "John Smith / release-tools-fake".
    ("gitlab", "job.go-gitlab.json"): Expected(
        "Job Hook", "succeeded", "John Smith", "jsmithy2/release-tools-fake", branch="main", run_id="743121198",
    ),
    ("gitlab", "build.go-gitlab.json"): Expected(
        "Job Hook", "created", None, "gitlab-org/gitlab-test", branch="gitlab-script-trigger", run_id="2366",
    ),
    ("gitlab", "deployment.go-gitlab.json"): Expected(
        "Deployment Hook", "succeeded", "User1", "root/test-deployment-webhooks", run_id="796",
        url="http://10.126.0.2:3000/root/test-deployment-webhooks/-/jobs/796", environment="staging",
    ),
    ("gitlab", "deployment-event.gitlab4j.json"): Expected(
        "Deployment Hook", "succeeded", "Administrator", "root/test-deployment-webhooks", run_id="796",
        url="http://10.126.0.2:3000/root/test-deployment-webhooks/-/jobs/796", environment="staging",
    ),
    # --- HCP Terraform: notification-configurations API reference -----------------------------------
    ("hcp-terraform", "run.errored.canceled.sample.json"): Expected(
        "run:errored", "canceled", "acme-org", workspace="my-workspace", run_id="run-FwnENkvDnrpyFC7M",
        url="https://app.terraform.io/app/acme-org/my-workspace/runs/run-FwnENkvDnrpyFC7M",
    ),
    ("hcp-terraform", "verification.send-a-test.json"): Expected("verification", "verification"),
    ("hcp-terraform", "assessment.drifted.sample.json"): Expected(
        "assessment:drifted", "drifted", "acme-org", workspace="my-workspace",
        url="https://app.terraform.io/api/v2/assessment-results/asmtres-vRVQxpqq64EA9V5a",
    ),
    ("hcp-terraform", "workspace.auto_destroy_reminder.sample.json"): Expected(
        "workspace:auto_destroy_reminder", "destroy_scheduled", "acme-org", workspace="learned-english-dog",
    ),
    ("hcp-terraform", "workspace.auto_destroy_results.applied.sample.json"): Expected(
        "workspace:auto_destroy_results", "succeeded", "acme-org", workspace="learned-english-dog",
        run_id="run-vRVQxpqq64EA9V5a",
    ),
    ("hcp-terraform", "workspace.auto_destroy_results.failed-run-creation.sample.json"): Expected(
        "workspace:auto_destroy_results", "failed", "acme-org", workspace="learned-english-dog",
    ),
    # --- Standard Webhooks: pipedial's own documented body --------------------------------------------
    ("standard", "pipedial-senders-md.example.json"): Expected(
        "deploy.finished", "failed", "acme", workspace="prod-network", run_id="4711",
        url="https://ci.example.com/runs/4711", environment="production",
    ),
}

#: Published bodies that are not a delivery pipedial accepts: refused with PayloadError, nothing else.
REFUSED: set[tuple[str, str]] = {
    # The Standard Webhooks specification's example payloads: a sender's own format, not pipedial's.
    ("standard", "spec.example-payload.json"),
    ("standard", "spec.contact-created.full.json"),
    ("standard", "spec.contact-created.thin.json"),
}

#: X-Gitlab-Event per object_kind, as the documentation's "Request header" of each section shows it.
GITLAB_HOOKS = {"pipeline": "Pipeline Hook", "build": "Job Hook", "deployment": "Deployment Hook"}

#: Made-up secrets for signing the raw bytes of each file (whsec_ secrets are Standard Webhooks keys).
SECRETS = {
    "github": "gh-published-payloads",
    "gitlab": "gl-published-payloads",
    "hcp-terraform": "tfe-published-payloads",
    "standard": "whsec_" + base64.b64encode(b"pipedial-published-payloads-key!").decode(),
}
_NOW = 1_700_000_000.0


def _all_files() -> list[tuple[str, str]]:
    return sorted((path.parent.name, path.name) for path in PUBLISHED.glob("*/*.json"))


def _raw(case: tuple[str, str]) -> bytes:
    source, name = case
    return (PUBLISHED / source / name).read_bytes()


def _payload(case: tuple[str, str]) -> Any:
    return json.loads(_raw(case))


def _headers(case: tuple[str, str], payload: Any) -> dict[str, str]:
    """The event headers the sender sends with this payload (lower-case, as the views pass them)."""
    source, name = case
    if source == "github":
        # octokit keeps each example under payload-examples/api.github.com/<X-GitHub-Event>/
        return {"x-github-event": name.split(".", 1)[0]}
    if source == "gitlab":
        return {"x-gitlab-event": GITLAB_HOOKS[payload["object_kind"]]}
    if source == "standard":
        return {"webhook-id": f"msg_{name}"}
    return {}


def _parse(case: tuple[str, str], payload: Any = None) -> Event:
    payload = _payload(case) if payload is None else payload
    return get_source(case[0]).parse(payload, _headers(case, _payload(case)))


def _signed(case: tuple[str, str], body: bytes) -> dict[str, str]:
    """Headers carrying a valid signature of body under SECRETS, in the sender's scheme."""
    source = case[0]
    secret = SECRETS[source]
    if source == "github":
        return {"x-hub-signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    if source == "gitlab":
        return {"x-gitlab-token": secret}
    if source == "hcp-terraform":
        return {"x-tfe-notification-signature": hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()}
    msg_id, timestamp = f"msg_{case[1]}", str(int(_NOW))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    signature = "v1," + base64.b64encode(digest).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}


# --- the set of files and its provenance ---------------------------------------------------------


def test_every_published_file_has_an_expectation() -> None:
    assert set(_all_files()) == set(CASES) | REFUSED


def test_every_published_file_is_listed_in_sources_md() -> None:
    listed = (PUBLISHED / "SOURCES.md").read_text(encoding="utf-8")
    missing = [f"{source}/{name}" for source, name in _all_files() if f"`{source}/{name}`" not in listed]
    assert missing == []


@pytest.mark.parametrize("case", _all_files(), ids="/".join)
def test_files_are_utf8_json_objects(case: tuple[str, str]) -> None:
    assert isinstance(json.loads(_raw(case).decode("utf-8")), dict)


@pytest.mark.parametrize("source", ["github", "gitlab", "hcp-terraform"])
def test_at_least_the_published_breadth_is_kept(source: str) -> None:
    counts = {"github": 10, "gitlab": 6, "hcp-terraform": 6}
    assert sum(1 for case in CASES if case[0] == source) >= counts[source]


# --- normalization -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES), ids="/".join)
def test_published_payload_normalizes_as_expected(case: tuple[str, str]) -> None:
    event = _parse(case)
    expected = CASES[case]
    got = Expected(
        event.kind, event.state, event.organization, event.repository, event.workspace,
        event.branch, event.run_id, event.url, event.environment,
    )
    assert got == expected
    assert event.source == case[0]
    assert event.state in STATES
    assert event.dedupe_key


@pytest.mark.parametrize("case", sorted(REFUSED), ids="/".join)
def test_published_bodies_of_another_format_are_refused(case: tuple[str, str]) -> None:
    with pytest.raises(PayloadError):
        _parse(case)


def test_every_github_event_and_action_is_covered() -> None:
    kinds = {expected.kind for (source, _), expected in CASES.items() if source == "github"}
    assert {
        "workflow_run.requested", "workflow_run.completed",
        "workflow_job.queued", "workflow_job.waiting", "workflow_job.in_progress", "workflow_job.completed",
        "check_suite.requested", "check_suite.rerequested", "check_suite.completed",
        "deployment_status.created", "ping",
    } <= kinds


def test_every_gitlab_hook_and_hcp_payload_shape_is_covered() -> None:
    hooks = {expected.kind for (source, _), expected in CASES.items() if source == "gitlab"}
    assert hooks == set(GITLAB_HOOKS.values())
    shapes = {
        (str(_payload(case)["payload_version"]), _payload(case).get("trigger_scope"))
        for case in CASES
        if case[0] == "hcp-terraform"
    }
    assert shapes == {("1", None), ("2", "assessment"), ("2", "workspace")}


@pytest.mark.parametrize("case", sorted(c for c in CASES if c[0] in ("github", "gitlab")), ids="/".join)
def test_without_the_event_header_the_payload_tells_the_event(case: tuple[str, str]) -> None:
    # `receiver explain` without --header infers the event from the payload: the same result.
    inferred = get_source(case[0]).parse(_payload(case), {})
    assert inferred.to_dict() == _parse(case).to_dict()


@pytest.mark.parametrize("case", sorted(CASES), ids="/".join)
def test_signed_raw_bytes_verify_and_parse(case: tuple[str, str]) -> None:
    # The bytes as published, signed as the sender signs them: verify() takes them as they are.
    body = _raw(case)
    source = get_source(case[0])
    headers = {**_headers(case, _payload(case)), **_signed(case, body)}
    source.verify(body, headers, [SECRETS[case[0]]], now=_NOW)
    assert source.parse(json.loads(body), headers).state == CASES[case].state


# --- hostile variants of real payloads -----------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.data())
@pytest.mark.parametrize("case", _all_files(), ids="/".join)
def test_mutated_published_payloads_raise_only_payload_error(case: tuple[str, str], data: st.DataObject) -> None:
    payload = data.draw(mutations(_payload(case)))
    try:
        event = _parse(case, payload)
    except PayloadError:
        return
    assert event.state in STATES
    assert all(value is None or isinstance(value, str) for value in event.to_dict().values())
