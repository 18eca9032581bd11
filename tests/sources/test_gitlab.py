"""GitLab: X-Gitlab-Token or Standard Webhooks signatures, the documented hooks, every status's state."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.errors import PayloadError, SignatureError
from receiver.model import STATES
from receiver.sources import gitlab
from receiver.verify import standard_signature
from tests.sources import JSON_VALUES, flip_byte, flip_char, load, mutations

SOURCE = "gitlab"
PIPELINE = load(SOURCE, "pipeline-hook.json")
# gitlab-org/gitlab doc/user/project/integrations/webhook_events.md, "Deployment events", verbatim;
# and "Job events" with its two `//` comments and one trailing comma removed so that it parses.
DEPLOYMENT = load(SOURCE, "deployment-hook.doc-example.json")
JOB = load(SOURCE, "job-hook.doc-example.json")
EXAMPLES: dict[str, dict[str, Any]] = {"Pipeline Hook": PIPELINE, "Job Hook": JOB, "Deployment Hook": DEPLOYMENT}

TOKEN = "gitlab-token-for-tests"
SIGNING = "whsec_aWFjLXJlY2VpdmVyLXRlc3Qta2V5LTMyLWJ5dGVzISE="
BODY = json.dumps(PIPELINE).encode()
NOW = 1_700_000_000


def signed(body: bytes = BODY, secret: str = SIGNING, msg_id: str = "idem-1", timestamp: int = NOW) -> dict[str, str]:
    """Headers of a GitLab delivery signed the Standard Webhooks way (webhook-id equals Idempotency-Key)."""
    return {
        "x-gitlab-event": "Pipeline Hook",
        "idempotency-key": msg_id,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, msg_id, timestamp, body),
    }


def parse(hook: str, payload: object, **headers: str) -> Any:
    """Parse payload as GitLab would deliver it: X-Gitlab-Event set, other headers as given."""
    return gitlab.parse(payload, {"x-gitlab-event": hook, **headers})


# --- verify: token -------------------------------------------------------------------------------


def test_token_equal_to_a_secret_is_accepted() -> None:
    gitlab.verify(BODY, {"x-gitlab-token": TOKEN}, [TOKEN], now=NOW)


def test_token_check_does_not_depend_on_header_case() -> None:
    gitlab.verify(BODY, {"X-Gitlab-Token": TOKEN}, [TOKEN], now=NOW)


def test_rotation_accepts_either_token() -> None:
    gitlab.verify(BODY, {"x-gitlab-token": "old"}, ["old", TOKEN], now=NOW)
    gitlab.verify(BODY, {"x-gitlab-token": TOKEN}, ["old", TOKEN], now=NOW)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Gitlab-Token header"),
        ({"x-gitlab-token": ""}, "empty X-Gitlab-Token header"),
        ({"x-gitlab-token": TOKEN + "x"}, "X-Gitlab-Token does not match"),
        ({"x-gitlab-token": TOKEN.upper()}, "X-Gitlab-Token does not match"),
    ],
)
def test_bad_tokens_are_refused(headers: dict[str, str], message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        gitlab.verify(BODY, headers, [TOKEN], now=NOW)


def test_empty_secrets_are_refused() -> None:
    with pytest.raises(SignatureError, match="no usable secret"):
        gitlab.verify(BODY, {"x-gitlab-token": ""}, ["", "  "], now=NOW)


def test_a_whsec_secret_is_never_compared_as_a_token() -> None:
    with pytest.raises(SignatureError, match="missing webhook-signature header"):
        gitlab.verify(BODY, {"x-gitlab-token": SIGNING}, [SIGNING], now=NOW)


# --- verify: Standard Webhooks signatures --------------------------------------------------------


def test_standard_webhooks_signature_under_a_whsec_secret_is_accepted() -> None:
    gitlab.verify(BODY, signed(), [SIGNING], now=NOW)
    gitlab.verify(BODY, signed(), [TOKEN, SIGNING], now=NOW)


def test_signature_headers_in_any_case_are_accepted() -> None:
    headers = {name.title(): value for name, value in signed().items()}
    gitlab.verify(BODY, headers, [SIGNING], now=NOW)


def test_one_byte_changed_in_the_body_is_refused() -> None:
    with pytest.raises(SignatureError, match="webhook-signature does not match"):
        gitlab.verify(flip_byte(BODY), signed(), [SIGNING], now=NOW)


def test_one_character_changed_in_the_signature_is_refused() -> None:
    headers = signed()
    headers["webhook-signature"] = flip_char(headers["webhook-signature"])
    with pytest.raises(SignatureError, match="webhook-signature does not match"):
        gitlab.verify(BODY, headers, [SIGNING], now=NOW)


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamps_beyond_the_tolerance_are_refused(offset: int) -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        gitlab.verify(BODY, signed(), [SIGNING], now=NOW + offset)


def test_a_valid_token_is_enough_when_the_signature_fails() -> None:
    headers = {**signed(), "webhook-signature": "v1," + "A" * 43 + "=", "x-gitlab-token": TOKEN}
    gitlab.verify(BODY, headers, [SIGNING, TOKEN], now=NOW)


def test_both_failures_are_reported() -> None:
    headers = {**signed(), "webhook-signature": "v1," + "A" * 43 + "=", "x-gitlab-token": "wrong"}
    with pytest.raises(SignatureError, match="webhook-signature does not match.*; X-Gitlab-Token does not match"):
        gitlab.verify(BODY, headers, [SIGNING, TOKEN], now=NOW)


def test_signature_headers_without_a_whsec_secret_fall_back_to_the_token() -> None:
    with pytest.raises(SignatureError, match="missing X-Gitlab-Token header"):
        gitlab.verify(BODY, signed(), [TOKEN], now=NOW)


# --- the documented payloads ---------------------------------------------------------------------


def test_pipeline_hook() -> None:
    event = parse("Pipeline Hook", PIPELINE, **{"x-gitlab-event-uuid": "uuid-1"})
    assert event.to_dict() | {"dedupe_key": None} == {
        "source": "gitlab",
        "kind": "Pipeline Hook",
        "state": "succeeded",
        "dedupe_key": None,
        "delivery_id": "uuid-1",
        "organization": "Gitlab Org",
        "workspace": None,
        "project": None,
        "repository": "gitlab-org/gitlab-test",
        "branch": "master",
        "environment": None,
        "run_id": "31",
        "url": "http://example.com/gitlab-org/gitlab-test/-/pipelines/31",
        "actor": "root",
        "message": "test",
        "occurred_at": "2016-08-12 15:26:29 UTC",
    }


def test_job_hook() -> None:
    event = parse("Job Hook", JOB)
    assert (event.kind, event.state, event.run_id, event.branch) == (
        "Job Hook",
        "created",
        "2366",
        "gitlab-script-trigger",
    )
    assert (event.url, event.actor, event.message) == (
        "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/1977",
        "User",
        "test",
    )
    assert (event.organization, event.repository, event.occurred_at) == (
        "Gitlab Org",
        "gitlab-org/gitlab-test",
        "2021-02-23T02:41:37Z",
    )


def test_job_hook_environment_name() -> None:
    payload = {**JOB, "environment": {"name": "production", "action": "start", "deployment_tier": "production"}}
    assert parse("Job Hook", payload).environment == "production"


def test_job_hook_of_an_old_instance_without_a_project_object() -> None:
    payload = {k: v for k, v in JOB.items() if k != "project"}
    event = parse("Job Hook", payload)
    assert (event.repository, event.organization, event.url) == ("gitlab-org/gitlab-test", None, None)


def test_deployment_hook() -> None:
    event = parse("Deployment Hook", DEPLOYMENT)
    assert (event.kind, event.state, event.environment, event.run_id) == (
        "Deployment Hook",
        "succeeded",
        "staging",
        "796",
    )
    assert event.url == "http://10.126.0.2:3000/root/test-deployment-webhooks/-/jobs/796"
    assert (event.actor, event.message, event.occurred_at) == ("root", "Add new file", "2021-04-28 21:50:00 +0200")
    assert parse("Deployment Hook", {**DEPLOYMENT, "ref": "main"}).branch == "main"


# --- every status --------------------------------------------------------------------------------

STATUSES = [
    ("created", "created"),
    ("waiting_for_resource", "created"),
    ("preparing", "created"),
    ("pending", "created"),
    ("scheduled", "created"),
    ("running", "running"),
    ("manual", "needs_approval"),
    ("blocked", "needs_approval"),
    ("success", "succeeded"),
    ("failed", "failed"),
    ("canceled", "canceled"),
    ("cancelled", "canceled"),
    ("skipped", "unknown"),
    ("canceling", "unknown"),
    ("something_new", "unknown"),
]


def with_status(hook: str, status: str) -> dict[str, Any]:
    """Return the example payload of hook with another status in the field that hook uses."""
    payload = copy.deepcopy(EXAMPLES[hook])
    if hook == "Pipeline Hook":
        payload["object_attributes"]["status"] = status
    elif hook == "Job Hook":
        payload["build_status"] = status
    else:
        payload["status"] = status
    return payload


@pytest.mark.parametrize("hook", list(EXAMPLES))
@pytest.mark.parametrize(("status", "state"), STATUSES)
def test_status_states(hook: str, status: str, state: str) -> None:
    assert parse(hook, with_status(hook, status)).state == state


def test_every_mapped_state_is_a_known_state() -> None:
    assert set(gitlab.STATUSES.values()) <= set(STATES)


# --- event selection and errors ------------------------------------------------------------------


@pytest.mark.parametrize("hook", ["Push Hook", "System Hook", "", "pipeline hook"])
def test_unsupported_events_name_the_supported_ones(hook: str) -> None:
    with pytest.raises(PayloadError, match="supported events: Pipeline Hook, Job Hook, Deployment Hook"):
        parse(hook, PIPELINE)


@pytest.mark.parametrize(("hook", "payload"), list(EXAMPLES.items()))
def test_without_the_event_header_object_kind_tells_the_hook(hook: str, payload: dict[str, Any]) -> None:
    assert gitlab.parse(payload, {}) == parse(hook, payload)


def test_a_payload_of_another_hook_is_refused_at_object_kind() -> None:
    with pytest.raises(PayloadError) as info:
        parse("Job Hook", {**PIPELINE, "build_id": 1, "build_status": "success"})
    assert info.value.json_path == "$.object_kind"


@pytest.mark.parametrize(
    ("hook", "payload", "json_path"),
    [
        (
            "Pipeline Hook",
            {**PIPELINE, "object_attributes": {**PIPELINE["object_attributes"], "id": "31"}},
            "$.object_attributes.id",
        ),
        ("Pipeline Hook", {**PIPELINE, "project": {**PIPELINE["project"], "namespace": 5}}, "$.project.namespace"),
        ("Job Hook", {**JOB, "build_status": None}, "$.build_status"),
        ("Deployment Hook", {**DEPLOYMENT, "environment": {"name": "x"}}, "$.environment"),
        ("Deployment Hook", {k: v for k, v in DEPLOYMENT.items() if k != "project"}, "$"),
    ],
)
def test_wrong_types_are_refused_with_their_path(hook: str, payload: dict[str, Any], json_path: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse(hook, payload)
    assert info.value.json_path == json_path


# --- delivery id and dedupe ----------------------------------------------------------------------


def test_idempotency_key_is_preferred_to_the_event_uuid() -> None:
    event = parse("Pipeline Hook", PIPELINE, **{"idempotency-key": "idem-1", "x-gitlab-event-uuid": "uuid-1"})
    assert event.delivery_id == "idem-1"
    assert parse("Pipeline Hook", PIPELINE, **{"x-gitlab-event-uuid": "uuid-1"}).delivery_id == "uuid-1"
    assert parse("Pipeline Hook", PIPELINE).delivery_id is None


def test_a_resend_under_a_new_uuid_keeps_its_dedupe_key() -> None:
    first = parse("Pipeline Hook", PIPELINE, **{"x-gitlab-event-uuid": "uuid-1"})
    again = parse("Pipeline Hook", PIPELINE, **{"x-gitlab-event-uuid": "uuid-2"})
    assert first.delivery_id != again.delivery_id
    assert first.dedupe_key == again.dedupe_key


@pytest.mark.parametrize("hook", list(EXAMPLES))
def test_another_status_has_another_key(hook: str) -> None:
    assert parse(hook, with_status(hook, "failed")).dedupe_key != parse(hook, with_status(hook, "running")).dedupe_key


def test_the_same_status_finished_again_has_another_key() -> None:
    retried = copy.deepcopy(PIPELINE)
    retried["object_attributes"]["finished_at"] = "2016-08-12 16:00:00 UTC"
    assert parse("Pipeline Hook", retried).dedupe_key != parse("Pipeline Hook", PIPELINE).dedupe_key


def test_different_jobs_of_one_pipeline_have_different_keys() -> None:
    assert parse("Job Hook", {**JOB, "build_id": 1978}).dedupe_key != parse("Job Hook", JOB).dedupe_key


# --- hostile input -------------------------------------------------------------------------------


@settings(max_examples=100)
@given(st.sampled_from([*gitlab.HOOKS, "Push Hook"]), JSON_VALUES)
def test_random_json_raises_only_payload_error(hook: str, payload: object) -> None:
    try:
        parse(hook, payload)
    except PayloadError:
        pass


@settings(max_examples=40)
@given(st.data())
@pytest.mark.parametrize("hook", list(EXAMPLES))
def test_mutated_payloads_raise_only_payload_error(hook: str, data: st.DataObject) -> None:
    payload = data.draw(mutations(EXAMPLES[hook]))
    try:
        event = parse(hook, payload)
    except PayloadError:
        return
    assert event.state in STATES
    assert all(value is None or isinstance(value, str) for value in event.to_dict().values())
