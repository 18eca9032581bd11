"""GitHub: X-Hub-Signature-256, the octokit example payloads, and every action/status/conclusion's state."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.errors import PayloadError, SignatureError
from receiver.model import STATES
from receiver.sources import github
from tests.sources import JSON_VALUES, flip_byte, flip_char, load, lowered, mutations, signed_example

SOURCE = "github"
RUN_COMPLETED = load(SOURCE, "workflow_run.completed.payload.json")
RUN_REQUESTED = load(SOURCE, "workflow_run.requested.payload.json")
JOB_COMPLETED = load(SOURCE, "workflow_job.completed.success.with-organization.payload.json")
DEPLOYMENT_STATUS = load(SOURCE, "deployment_status.created.success.payload.json")
PING = load(SOURCE, "ping.payload.json")
VECTOR = load(SOURCE, "signature-test-vector.json")
BODY, HEADERS, SECRET = signed_example(SOURCE)

# check_suite has no fixture: this is octokit/webhooks payload-examples/api.github.com/check_suite/
# completed.payload.json with the fields pipedial does not read left out (app, pull_requests, urls).
CHECK_SUITE = {
    "action": "completed",
    "check_suite": {
        "id": 118578147,
        "node_id": "MDEwOkNoZWNrU3VpdGUxMTg1NzgxNDc=",
        "head_branch": "changes",
        "head_sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
        "status": "completed",
        "conclusion": "success",
        "url": "https://api.github.com/repos/Codertocat/Hello-World/check-suites/118578147",
        "created_at": "2019-05-15T15:20:31Z",
        "updated_at": "2019-05-15T15:21:14Z",
        "head_commit": {"id": "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "message": "Update README.md"},
    },
    "repository": {
        "id": 186853002,
        "full_name": "Codertocat/Hello-World",
        "owner": {"login": "Codertocat", "id": 21031067, "type": "User"},
        "html_url": "https://github.com/Codertocat/Hello-World",
    },
    "sender": {"login": "Codertocat", "id": 21031067, "type": "User"},
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "workflow_run": RUN_COMPLETED,
    "workflow_job": JOB_COMPLETED,
    "deployment_status": DEPLOYMENT_STATUS,
    "check_suite": CHECK_SUITE,
    "ping": PING,
}


def parse(event: str, payload: object, **headers: str) -> Any:
    """Parse payload as GitHub would deliver it: X-GitHub-Event set, other headers as given."""
    return github.parse(payload, {"x-github-event": event, **headers})


def variant(event: str, action: str | None = None, **fields: Any) -> dict[str, Any]:
    """Return the example payload of event with another action and other fields of its object."""
    payload = copy.deepcopy(EXAMPLES[event])
    if action is not None:
        payload["action"] = action
    payload[event].update(fields)
    return payload


# --- verify --------------------------------------------------------------------------------------


def test_githubs_own_signature_vector() -> None:
    headers = {"x-hub-signature-256": VECTOR["expected_X-Hub-Signature-256"]}
    github.verify(VECTOR["payload"].encode(), headers, [VECTOR["secret"]], now=0.0)


def test_signed_example_verifies() -> None:
    github.verify(BODY, lowered(HEADERS), [SECRET], now=0.0)


def test_signed_example_verifies_whatever_the_header_case() -> None:
    github.verify(BODY, HEADERS, [SECRET], now=0.0)


def test_one_byte_changed_in_the_body_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        github.verify(flip_byte(BODY), lowered(HEADERS), [SECRET], now=0.0)


def test_one_character_changed_in_the_signature_is_refused() -> None:
    headers = lowered(HEADERS)
    headers["x-hub-signature-256"] = flip_char(headers["x-hub-signature-256"], 20)
    with pytest.raises(SignatureError, match="does not match"):
        github.verify(BODY, headers, [SECRET], now=0.0)


def test_the_legacy_sha1_signature_alone_is_not_enough() -> None:
    headers = {k: v for k, v in lowered(HEADERS).items() if k != "x-hub-signature-256"}
    with pytest.raises(SignatureError, match="missing X-Hub-Signature-256 header"):
        github.verify(BODY, headers, [SECRET], now=0.0)


@pytest.mark.parametrize("signature", ["sha256=", "sha256", "", "sha256=" + "g" * 64])
def test_prefix_without_a_digest_is_malformed(signature: str) -> None:
    with pytest.raises(SignatureError, match="malformed X-Hub-Signature-256"):
        github.verify(BODY, {"x-hub-signature-256": signature}, [SECRET], now=0.0)


def test_rotation_and_empty_secrets() -> None:
    github.verify(BODY, lowered(HEADERS), ["", "rotated-out", SECRET], now=0.0)
    with pytest.raises(SignatureError, match="no usable secret"):
        github.verify(BODY, lowered(HEADERS), ["", " "], now=0.0)


# --- the example payloads ------------------------------------------------------------------------


def test_signed_example_parses_with_its_delivery_id() -> None:
    event = github.parse(json.loads(BODY), lowered(HEADERS))
    assert event.to_dict() | {"dedupe_key": None} == {
        "source": "github",
        "kind": "workflow_run.completed",
        "state": "succeeded",
        "dedupe_key": None,
        "delivery_id": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "organization": "octo-org",
        "workspace": None,
        "project": None,
        "repository": "octo-org/octo-repo",
        "branch": "master",
        "environment": None,
        "run_id": "289782451",
        "url": "https://github.com/octo-org/octo-repo/actions/runs/289782451",
        "actor": "Codertocat",
        "message": RUN_COMPLETED["workflow_run"]["display_title"],
        "occurred_at": "2020-10-05T16:33:49Z",
    }


def test_workflow_run_requested_is_created() -> None:
    event = parse("workflow_run", RUN_REQUESTED)
    assert (event.kind, event.state, event.run_id) == ("workflow_run.requested", "created", "289782451")


def test_workflow_job_completed_success() -> None:
    event = parse("workflow_job", JOB_COMPLETED)
    assert (event.kind, event.state) == ("workflow_job.completed", "succeeded")
    assert (event.run_id, event.branch, event.repository) == ("2202229078", "main", "Codertocat/Hello-World")
    assert (event.url, event.message) == ("https://github.com/octo-org/octo-repo/runs/1291536064", "CodeQL / linters")
    assert (event.organization, event.actor, event.occurred_at) == ("Octocoders", "Codertocat", "2021-08-05T10:38:16Z")


def test_deployment_status_success() -> None:
    event = parse("deployment_status", DEPLOYMENT_STATUS)
    assert (event.kind, event.state) == ("deployment_status.created", "succeeded")
    assert (event.environment, event.branch, event.run_id) == ("production", "master", "145988746")
    assert (event.url, event.message, event.occurred_at) == (None, None, "2019-05-15T15:20:55Z")  # "" is absent


def test_ping_is_a_verification() -> None:
    event = parse("ping", PING)
    assert (event.kind, event.state, event.repository) == ("ping", "verification", "Octocoders/Hello-World")
    assert event.message == "Anything added dilutes everything else."


def test_ping_from_an_organization_hook_has_no_repository() -> None:
    payload = {k: v for k, v in PING.items() if k != "repository"}
    payload["organization"] = {"login": "Octocoders", "id": 38302899}
    event = parse("ping", payload)
    assert (event.state, event.organization, event.repository) == ("verification", "Octocoders", None)


def test_check_suite_completed() -> None:
    event = parse("check_suite", CHECK_SUITE)
    assert (event.kind, event.state, event.run_id, event.branch) == (
        "check_suite.completed",
        "succeeded",
        "118578147",
        "changes",
    )
    assert (event.message, event.occurred_at) == ("Update README.md", "2019-05-15T15:21:14Z")


def test_workflow_job_of_a_deployment_carries_its_environment() -> None:
    # octokit workflow_job/queued.with-deployment: action queued, status waiting, a deployment object.
    payload = variant("workflow_job", "queued", status="waiting", conclusion=None, completed_at=None)
    payload["deployment"] = {"id": 875096709, "environment": "Test", "ref": "main"}
    event = parse("workflow_job", payload)
    assert (event.state, event.environment) == ("created", "Test")


def test_deployment_status_of_github_pages() -> None:
    # octokit deployment_status/gh-pages: in_progress, with workflow_run and check_run objects beside it.
    payload = copy.deepcopy(DEPLOYMENT_STATUS)
    payload["deployment_status"].update(
        state="in_progress",
        environment="github-pages",
        target_url="https://github.com/Codertocat/Hello-World/runs/145988746?check_suite_focus=true",
        environment_url="",
        log_url="https://github.com/CorsixTH/CorsixTH/runs/4687056418?check_suite_focus=true",
        performed_via_github_app=None,
    )
    payload["check_run"] = {"id": 128620228, "status": "in_progress", "conclusion": None}
    payload["workflow_run"] = {"id": 289782451, "status": "in_progress", "conclusion": None}
    event = parse("deployment_status", payload)
    assert (event.state, event.environment) == ("running", "github-pages")
    assert event.url == payload["deployment_status"]["target_url"]


# --- every action, status and conclusion ---------------------------------------------------------

CONCLUSIONS = [
    ("success", "succeeded"),
    ("failure", "failed"),
    ("timed_out", "failed"),
    ("startup_failure", "failed"),
    ("cancelled", "canceled"),
    ("action_required", "needs_approval"),
    ("neutral", "unknown"),
    ("skipped", "unknown"),
    ("stale", "unknown"),
    (None, "unknown"),
    ("something_new", "unknown"),
]


@pytest.mark.parametrize("event_name", ["workflow_run", "workflow_job", "check_suite"])
@pytest.mark.parametrize(("conclusion", "state"), CONCLUSIONS)
def test_completed_states_follow_the_conclusion(event_name: str, conclusion: str | None, state: str) -> None:
    payload = variant(event_name, "completed", status="completed", conclusion=conclusion)
    assert parse(event_name, payload).state == state


ACTIONS = [
    ("workflow_run", "requested", "created"),
    ("workflow_run", "in_progress", "running"),
    ("workflow_run", "something_new", "unknown"),
    ("workflow_job", "queued", "created"),
    ("workflow_job", "waiting", "needs_approval"),
    ("workflow_job", "in_progress", "running"),
    ("workflow_job", "something_new", "unknown"),
    ("check_suite", "requested", "created"),
    ("check_suite", "rerequested", "created"),
    ("check_suite", "something_new", "unknown"),
]


@pytest.mark.parametrize(("event_name", "action", "state"), ACTIONS)
def test_unfinished_states_follow_the_action(event_name: str, action: str, state: str) -> None:
    # The conclusion is ignored until the action is `completed` (octokit's requested.with-conclusion).
    payload = variant(event_name, action, status=action, conclusion="failure")
    event = parse(event_name, payload)
    assert (event.kind, event.state) == (f"{event_name}.{action}", state)


DEPLOYMENT_STATES = [
    ("error", "failed"),
    ("failure", "failed"),
    ("pending", "created"),
    ("queued", "created"),
    ("in_progress", "running"),
    ("success", "succeeded"),
    ("inactive", "unknown"),
    ("something_new", "unknown"),
]


@pytest.mark.parametrize(("deployment_state", "state"), DEPLOYMENT_STATES)
def test_deployment_states(deployment_state: str, state: str) -> None:
    assert parse("deployment_status", variant("deployment_status", state=deployment_state)).state == state


def test_every_mapped_state_is_a_known_state() -> None:
    mapped = {*github.CONCLUSIONS.values(), *github.DEPLOYMENT_STATES.values()}
    mapped |= {state for table in github.ACTIONS.values() for state in table.values()}
    assert mapped <= set(STATES)


# --- event selection and errors ------------------------------------------------------------------


@pytest.mark.parametrize("event_name", ["push", "pull_request", "check_run", "", "WORKFLOW_RUN"])
def test_unsupported_events_name_the_supported_ones(event_name: str) -> None:
    with pytest.raises(PayloadError, match="supported events: workflow_run, workflow_job") as info:
        parse(event_name, RUN_COMPLETED)
    assert info.value.json_path is None


@pytest.mark.parametrize(("event_name", "payload"), list(EXAMPLES.items()))
def test_without_the_event_header_the_payload_tells_the_event(event_name: str, payload: dict[str, Any]) -> None:
    assert github.parse(payload, {}) == parse(event_name, payload)


def test_a_payload_of_another_event_is_refused_with_its_path() -> None:
    with pytest.raises(PayloadError, match="not a GitHub workflow_job payload") as info:
        parse("workflow_job", RUN_COMPLETED)
    assert info.value.json_path == "$"


@pytest.mark.parametrize(
    ("event_name", "change", "json_path"),
    [
        ("workflow_run", {"id": "289782451"}, "$.workflow_run.id"),
        ("workflow_run", {"head_branch": 7}, "$.workflow_run.head_branch"),
        ("workflow_job", {"run_id": None}, "$.workflow_job.run_id"),
        ("deployment_status", {"state": None}, "$.deployment_status.state"),
        ("check_suite", {"conclusion": ["success"]}, "$.check_suite.conclusion"),
    ],
)
def test_wrong_types_are_refused_with_their_path(event_name: str, change: dict[str, Any], json_path: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse(event_name, variant(event_name, **change))
    assert info.value.json_path == json_path


def test_repository_is_required() -> None:
    payload = {k: v for k, v in RUN_COMPLETED.items() if k != "repository"}
    with pytest.raises(PayloadError, match="'repository' is a required property"):
        parse("workflow_run", payload)


# --- dedupe --------------------------------------------------------------------------------------


def test_the_delivery_id_is_the_key_when_present() -> None:
    first = parse("workflow_run", RUN_COMPLETED, **{"x-github-delivery": "d-1"})
    redelivered = parse("workflow_run", RUN_COMPLETED, **{"x-github-delivery": "d-1"})
    other = parse("workflow_run", RUN_COMPLETED, **{"x-github-delivery": "d-2"})
    assert first.delivery_id == "d-1"
    assert first.dedupe_key == redelivered.dedupe_key != other.dedupe_key


def test_without_a_delivery_id_the_key_comes_from_the_state_change() -> None:
    base = parse("workflow_run", RUN_COMPLETED).dedupe_key
    assert parse("workflow_run", copy.deepcopy(RUN_COMPLETED)).dedupe_key == base
    assert parse("workflow_run", variant("workflow_run", conclusion="failure")).dedupe_key != base
    assert parse("workflow_run", variant("workflow_run", run_attempt=2)).dedupe_key != base
    assert parse("workflow_run", variant("workflow_run", "in_progress")).dedupe_key != base


def test_two_jobs_of_one_run_have_different_keys() -> None:
    other_job = variant("workflow_job", id=JOB_COMPLETED["workflow_job"]["id"] + 1)
    assert parse("workflow_job", other_job).dedupe_key != parse("workflow_job", JOB_COMPLETED).dedupe_key


def test_long_text_is_bounded() -> None:
    payload = variant("workflow_run", display_title="y" * 4000)
    payload["action"] = "x" * 500
    event = parse("workflow_run", payload)
    assert event.message == "y" * 1000
    assert len(event.kind) <= 128


# --- hostile input -------------------------------------------------------------------------------


@settings(max_examples=100)
@given(st.sampled_from([*github.EVENTS, "push", ""]), JSON_VALUES)
def test_random_json_raises_only_payload_error(event_name: str, payload: object) -> None:
    try:
        parse(event_name, payload)
    except PayloadError:
        pass


@settings(max_examples=40)
@given(st.data())
@pytest.mark.parametrize("event_name", list(EXAMPLES))
def test_mutated_payloads_raise_only_payload_error(event_name: str, data: st.DataObject) -> None:
    payload = data.draw(mutations(EXAMPLES[event_name]))
    try:
        event = parse(event_name, payload)
    except PayloadError:
        return
    assert event.state in STATES
    assert all(value is None or isinstance(value, str) for value in event.to_dict().values())
