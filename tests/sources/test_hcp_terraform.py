"""HCP Terraform: signature, both payload shapes, every trigger's state, and hostile input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from receiver.errors import PayloadError, SignatureError
from receiver.model import STATES
from receiver.sources import hcp_terraform
from tests.sources import JSON_VALUES, flip_byte, flip_char, load, lowered, mutations, signed_example

SOURCE = "hcp-terraform"
RUN = load(SOURCE, "run.errored.canceled.sample.json")
VERIFICATION = load(SOURCE, "verification.send-a-test.json")
ASSESSMENT = load(SOURCE, "assessment.drifted.sample.json")
BODY, HEADERS, SECRET = signed_example(SOURCE)

# The three automatic-destroy payloads of the same documentation page as the fixtures
# (hashicorp/web-unified-docs .../api-docs/notification-configurations.mdx, "Automatic destroy runs").
_DESTROY: dict[str, Any] = {
    "payload_version": "2",
    "notification_configuration_id": "nc-SZ3V3cLFxK6sqLKn",
    "notification_configuration_url": "https://app.terraform.io/api/v2/notification-configurations/nc-SZ3V3cLFxK6sqLKn",
    "trigger_scope": "workspace",
}
DESTROY_REMINDER: dict[str, Any] = {
    **_DESTROY,
    "trigger": "workspace:auto_destroy_reminder",
    "message": "Auto Destroy Reminder",
    "details": {
        "auto_destroy_at": "2025-01-01T00:00:00Z",
        "run_created_at": None,
        "run_status": None,
        "run_external_id": None,
        "run_create_error_message": None,
        "trigger_type": "reminder",
        "workspace_name": "learned-english-dog",
        "organization_name": "acme-org",
    },
}
DESTROY_RESULTS: dict[str, Any] = {
    **_DESTROY,
    "trigger": "workspace:auto_destroy_results",
    "message": "Auto Destroy Results",
    "details": {
        "auto_destroy_at": None,
        "run_created_at": "2022-06-09T05:22:51Z",
        "run_status": "applied",
        "run_external_id": "run-vRVQxpqq64EA9V5a",
        "run_create_error_message": None,
        "trigger_type": "results",
        "workspace_name": "learned-english-dog",
        "organization_name": "acme-org",
    },
}
DESTROY_NOT_CREATED: dict[str, Any] = {
    **DESTROY_RESULTS,
    "details": {
        **DESTROY_RESULTS["details"],
        "run_created_at": None,
        "run_status": None,
        "run_external_id": None,
        "run_create_error_message": "Configuration version is missing",
    },
}
# The documented change-request payload: payload_version 1, change_request_* fields, no notifications[].
CHANGE_REQUEST: dict[str, Any] = {
    "payload_version": 1,
    "notification_configuration_id": "nc-AeUQ2zfKZzW9TiGZ",
    "change_request_url": "https://app.terraform.io/app/acme-org/workspaces/my-workspace/change-requests/cr-1",
    "change_request_subject": "Upgrade the provider",
    "change_request_message": "Please bump the AWS provider to 5.x",
    "change_request_created_at": "2024-05-01T12:00:00Z",
    "change_request_created_by": "alice",
    "workspace_id": "ws-XdeUVMWShTesDMME",
    "workspace_name": "my-workspace",
    "organization_name": "acme-org",
}


def run_payload(trigger: str, run_status: str | None = "applied", **top: Any) -> dict[str, Any]:
    """Build a run notification from the documented sample with one trigger and run_status."""
    payload: dict[str, Any] = copy.deepcopy(RUN)
    payload["notifications"][0].update(trigger=trigger, run_status=run_status)
    payload.update(top)
    return payload


def workspace_payload(trigger: str, **details: Any) -> dict[str, Any]:
    """Build a payload_version 2 notification from the documented assessment sample."""
    payload: dict[str, Any] = copy.deepcopy(ASSESSMENT)
    payload["trigger"] = trigger
    payload["details"].update(details)
    return payload


# --- verify --------------------------------------------------------------------------------------


def test_signed_example_verifies() -> None:
    hcp_terraform.verify(BODY, lowered(HEADERS), [SECRET], now=0.0)


def test_signed_example_verifies_whatever_the_header_case() -> None:
    hcp_terraform.verify(BODY, HEADERS, [SECRET], now=0.0)
    hcp_terraform.verify(BODY, {k.upper(): v for k, v in HEADERS.items()}, [SECRET], now=0.0)


def test_one_byte_changed_in_the_body_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        hcp_terraform.verify(flip_byte(BODY), lowered(HEADERS), [SECRET], now=0.0)


def test_one_character_changed_in_the_signature_is_refused() -> None:
    headers = lowered(HEADERS)
    headers["x-tfe-notification-signature"] = flip_char(headers["x-tfe-notification-signature"])
    with pytest.raises(SignatureError, match="does not match"):
        hcp_terraform.verify(BODY, headers, [SECRET], now=0.0)


def test_uppercase_hex_is_refused_as_malformed() -> None:
    headers = lowered(HEADERS)
    headers["x-tfe-notification-signature"] = headers["x-tfe-notification-signature"].upper()
    with pytest.raises(SignatureError, match="malformed X-TFE-Notification-Signature"):
        hcp_terraform.verify(BODY, headers, [SECRET], now=0.0)


def test_missing_signature_is_named() -> None:
    with pytest.raises(SignatureError, match="missing X-TFE-Notification-Signature header"):
        hcp_terraform.verify(BODY, {"content-type": "application/json"}, [SECRET], now=0.0)


def test_rotation_accepts_either_token() -> None:
    hcp_terraform.verify(BODY, lowered(HEADERS), ["new-token", SECRET], now=0.0)
    with pytest.raises(SignatureError):
        hcp_terraform.verify(BODY, lowered(HEADERS), ["new-token"], now=0.0)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="no usable secret"):
        hcp_terraform.verify(BODY, lowered(HEADERS), [""], now=0.0)


# --- the documented payloads ---------------------------------------------------------------------


def test_run_errored_with_canceled_status_is_canceled() -> None:
    event = hcp_terraform.parse(RUN, {})
    assert event.to_dict() | {"dedupe_key": None} == {
        "source": "hcp-terraform",
        "kind": "run:errored",
        "state": "canceled",
        "dedupe_key": None,
        "delivery_id": None,
        "organization": "acme-org",
        "workspace": "my-workspace",
        "project": None,
        "repository": None,
        "branch": None,
        "environment": None,
        "run_id": "run-FwnENkvDnrpyFC7M",
        "url": "https://app.terraform.io/app/acme-org/my-workspace/runs/run-FwnENkvDnrpyFC7M",
        "actor": "sample-user",
        "message": "Add five new queue workers",
        "occurred_at": "2019-01-25T18:37:04.000Z",
    }
    assert len(event.dedupe_key) == 64


def test_signed_example_body_parses_like_the_sample() -> None:
    assert hcp_terraform.parse(json.loads(BODY), {}) == hcp_terraform.parse(RUN, {})


def test_send_a_test_is_a_verification() -> None:
    event = hcp_terraform.parse(VERIFICATION, {})
    assert (event.kind, event.state, event.message) == ("verification", "verification", "Verification of test")
    assert (event.organization, event.workspace, event.run_id, event.url) == (None, None, None, None)


def test_assessment_drifted() -> None:
    event = hcp_terraform.parse(ASSESSMENT, {})
    assert (event.kind, event.state) == ("assessment:drifted", "drifted")
    assert (event.organization, event.workspace) == ("acme-org", "my-workspace")
    assert event.url == "https://app.terraform.io/api/v2/assessment-results/asmtres-vRVQxpqq64EA9V5a"
    assert (event.message, event.occurred_at) == ("Drift Detected", "2022-06-09T05:23:10Z")


def test_auto_destroy_reminder_is_destroy_scheduled() -> None:
    event = hcp_terraform.parse(DESTROY_REMINDER, {})
    assert (event.state, event.workspace, event.organization) == (
        "destroy_scheduled",
        "learned-english-dog",
        "acme-org",
    )


def test_auto_destroy_results_applied_is_succeeded() -> None:
    event = hcp_terraform.parse(DESTROY_RESULTS, {})
    assert (event.state, event.run_id, event.occurred_at) == (
        "succeeded",
        "run-vRVQxpqq64EA9V5a",
        "2022-06-09T05:22:51Z",
    )


def test_auto_destroy_run_that_could_not_be_created_is_failed() -> None:
    event = hcp_terraform.parse(DESTROY_NOT_CREATED, {})
    assert event.state == "failed"
    assert event.message == "Auto Destroy Results: Configuration version is missing"


def test_documented_change_request_needs_approval() -> None:
    event = hcp_terraform.parse(CHANGE_REQUEST, {})
    assert (event.kind, event.state) == ("change_request:created", "needs_approval")
    assert (event.url, event.actor, event.message) == (
        CHANGE_REQUEST["change_request_url"],
        "alice",
        "Upgrade the provider",
    )
    assert event.occurred_at == "2024-05-01T12:00:00Z"


# --- every trigger -------------------------------------------------------------------------------

RUN_TRIGGERS = [
    ("run:created", "pending", "created"),
    ("run:planning", "planning", "running"),
    ("run:needs_attention", "planned", "needs_approval"),
    ("run:applying", "applying", "applying"),
    ("run:completed", "applied", "succeeded"),
    ("run:errored", "errored", "failed"),
    ("run:errored", "canceled", "canceled"),
    ("run:errored", "discarded", "failed"),
    ("run:errored", None, "failed"),
    ("run:pending_apply_approval", "planned", "needs_approval"),
    ("run:cost_estimated", "cost_estimated", "running"),
    ("run:policy_override_required", "policy_override", "needs_approval"),
    ("run:policies_checked", "policy_checked", "running"),
    ("run:run_errored", "errored", "failed"),
    ("run:run_canceled", "canceled", "canceled"),
    ("run:policy_soft_failed", "policy_soft_failed", "check_failed"),
    ("change_request:created", None, "needs_approval"),
    ("team:change_request", None, "needs_approval"),
    ("verification", None, "verification"),
]


@pytest.mark.parametrize(("trigger", "run_status", "state"), RUN_TRIGGERS)
def test_run_trigger_states(trigger: str, run_status: str | None, state: str) -> None:
    event = hcp_terraform.parse(run_payload(trigger, run_status), {})
    assert (event.kind, event.state) == (trigger, state)


WORKSPACE_TRIGGERS = [
    ("assessment:drifted", {}, "drifted"),
    ("assessment:check_failure", {}, "check_failed"),
    ("assessment:failed", {}, "failed"),
    ("workspace:auto_destroy_reminder", {}, "destroy_scheduled"),
    ("workspace:deleted", {}, "unknown"),
    ("workspace:auto_destroy_run_results", {"run_status": "applied"}, "succeeded"),
    ("workspace:auto_destroy_results", {"run_status": "applied"}, "succeeded"),
    ("workspace:auto_destroy_results", {"run_status": "planned_and_finished"}, "succeeded"),
    ("workspace:auto_destroy_results", {"run_status": "errored"}, "failed"),
    ("workspace:auto_destroy_results", {"run_status": "canceled"}, "canceled"),
    ("workspace:auto_destroy_results", {"run_status": "discarded"}, "canceled"),
    ("workspace:auto_destroy_results", {"run_status": "applying"}, "unknown"),
    ("workspace:auto_destroy_results", {"run_status": None, "run_create_error_message": "boom"}, "failed"),
    ("workspace:auto_destroy_results", {"run_status": None}, "unknown"),
    ("workspace:auto_destroy_results", {}, "unknown"),
]


@pytest.mark.parametrize(("trigger", "details", "state"), WORKSPACE_TRIGGERS)
def test_workspace_trigger_states(trigger: str, details: dict[str, Any], state: str) -> None:
    event = hcp_terraform.parse(workspace_payload(trigger, **details), {})
    assert (event.kind, event.state) == (trigger, state)


def test_every_documented_trigger_is_mapped_to_a_known_state() -> None:
    documented = {
        "run:created", "run:planning", "run:needs_attention", "run:applying", "run:completed", "run:errored",
        "run:pending_apply_approval", "run:cost_estimated", "run:policy_override_required",
        "run:policies_checked", "run:run_errored", "run:run_canceled", "run:policy_soft_failed",
        "assessment:drifted", "assessment:check_failure", "assessment:failed", "workspace:auto_destroy_reminder",
        "workspace:auto_destroy_run_results", "workspace:auto_destroy_results", "workspace:deleted",
        "change_request:created", "team:change_request", "verification",
    }  # fmt: skip
    assert set(hcp_terraform.TRIGGERS) == documented
    assert set(hcp_terraform.TRIGGERS.values()) <= set(STATES)
    assert set(hcp_terraform.DESTROY_RESULTS.values()) <= set(STATES)


def test_unknown_run_trigger_is_a_payload_error_at_its_path() -> None:
    with pytest.raises(PayloadError, match="unknown HCP Terraform trigger 'run:exploded'") as info:
        hcp_terraform.parse(run_payload("run:exploded"), {})
    assert info.value.json_path == "$.notifications[0].trigger"
    assert "run:completed" in info.value.message  # the answer lists what is known


def test_unknown_workspace_trigger_is_a_payload_error_at_its_path() -> None:
    with pytest.raises(PayloadError, match="unknown HCP Terraform trigger") as info:
        hcp_terraform.parse(workspace_payload("workspace:renamed"), {})
    assert info.value.json_path == "$.trigger"


# --- shape details -------------------------------------------------------------------------------


def test_only_the_first_of_several_notifications_is_read() -> None:
    payload = run_payload("run:completed")
    payload["notifications"].append({**payload["notifications"][0], "trigger": "run:errored"})
    assert hcp_terraform.parse(payload, {}).state == "succeeded"


@pytest.mark.parametrize("version", [1, "1"])
def test_run_payload_version_as_number_or_string(version: object) -> None:
    assert hcp_terraform.parse(run_payload("run:completed", payload_version=version), {}).state == "succeeded"


@pytest.mark.parametrize("version", [2, "2"])
def test_workspace_payload_version_as_number_or_string(version: object) -> None:
    payload = workspace_payload("assessment:failed")
    payload["payload_version"] = version
    assert hcp_terraform.parse(payload, {}).state == "failed"


@pytest.mark.parametrize(
    ("payload", "json_path"),
    [
        (run_payload("run:completed", payload_version=3), "$.payload_version"),
        ({k: v for k, v in RUN.items() if k != "notifications"}, "$"),
        (run_payload("run:completed", notifications=[]), "$.notifications"),
        (run_payload("run:completed", run_id=42), "$.run_id"),
        ({k: v for k, v in ASSESSMENT.items() if k != "trigger"}, "$"),
        (workspace_payload("assessment:drifted", workspace_name=["x"]), "$.details.workspace_name"),
        ({k: v for k, v in RUN.items() if k != "notification_configuration_id"}, "$"),
        ([RUN], "$"),
        ("run:errored", "$"),
    ],
)
def test_invalid_payloads_are_refused_with_their_json_path(payload: object, json_path: str) -> None:
    with pytest.raises(PayloadError) as info:
        hcp_terraform.parse(payload, {})
    assert info.value.json_path == json_path


def test_project_is_read_when_a_payload_names_one() -> None:
    assert hcp_terraform.parse(run_payload("run:completed", project_name="platform"), {}).project == "platform"
    assert hcp_terraform.parse(workspace_payload("assessment:failed", project_name="ops"), {}).project == "ops"


def test_long_and_hostile_text_is_bounded() -> None:
    event = hcp_terraform.parse(run_payload("run:completed", run_message="x" * 5000, workspace_name="w\x00s"), {})
    assert event.message == "x" * 1000
    assert event.workspace == "ws"


# --- dedupe --------------------------------------------------------------------------------------


def test_the_same_state_change_has_the_same_key() -> None:
    assert hcp_terraform.parse(RUN, {}).dedupe_key == hcp_terraform.parse(copy.deepcopy(RUN), {}).dedupe_key


@pytest.mark.parametrize(
    "change",
    [
        {"notification_configuration_id": "nc-other"},
        {"run_id": "run-other"},
    ],
)
def test_a_different_run_or_configuration_has_another_key(change: dict[str, str]) -> None:
    assert hcp_terraform.parse({**RUN, **change}, {}).dedupe_key != hcp_terraform.parse(RUN, {}).dedupe_key


def test_a_later_update_or_another_trigger_has_another_key() -> None:
    base = hcp_terraform.parse(run_payload("run:applying"), {}).dedupe_key
    assert hcp_terraform.parse(run_payload("run:completed"), {}).dedupe_key != base
    later = run_payload("run:applying")
    later["notifications"][0]["run_updated_at"] = "2019-01-25T18:40:00.000Z"
    assert hcp_terraform.parse(later, {}).dedupe_key != base


def test_assessments_are_keyed_by_their_result() -> None:
    other = workspace_payload("assessment:drifted")
    other["details"]["new_assessment_result"]["id"] = "asmtres-other"
    assert hcp_terraform.parse(other, {}).dedupe_key != hcp_terraform.parse(ASSESSMENT, {}).dedupe_key


# --- hostile input -------------------------------------------------------------------------------


@settings(max_examples=100)
@given(JSON_VALUES)
def test_random_json_raises_only_payload_error(payload: object) -> None:
    try:
        hcp_terraform.parse(payload, {})
    except PayloadError:
        pass


@settings(max_examples=100)
@given(mutations(RUN) | mutations(ASSESSMENT) | mutations(VERIFICATION) | mutations(DESTROY_RESULTS))
def test_mutated_payloads_raise_only_payload_error(payload: object) -> None:
    try:
        event = hcp_terraform.parse(payload, {})
    except PayloadError:
        return
    assert event.state in STATES
    assert all(value is None or isinstance(value, str) for value in event.to_dict().values())


def test_identityless_failures_on_different_hours_are_different_state_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A payload with no id and no time gets the receipt hour in its key: not one call forever."""
    from receiver.sources import hcp_terraform

    path = Path(__file__).resolve().parents[1] / "data" / "published" / "hcp-terraform"
    payload = json.loads((path / "workspace.auto_destroy_results.failed-run-creation.sample.json").read_text())
    monkeypatch.setattr(hcp_terraform, "_clock", lambda: 1_700_000_000.0)
    first = hcp_terraform.parse(payload, {})
    monkeypatch.setattr(hcp_terraform, "_clock", lambda: 1_700_000_000.0 + 600)
    same_hour = hcp_terraform.parse(payload, {})
    monkeypatch.setattr(hcp_terraform, "_clock", lambda: 1_700_000_000.0 + 86_400)
    next_day = hcp_terraform.parse(payload, {})
    assert first.state == "failed"
    assert first.dedupe_key == same_hour.dedupe_key
    assert first.dedupe_key != next_day.dedupe_key


def test_payloads_with_an_identity_ignore_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    from receiver.sources import hcp_terraform

    path = Path(__file__).resolve().parents[1] / "data" / "hcp-terraform" / "assessment.drifted.sample.json"
    payload = json.loads(path.read_text())
    monkeypatch.setattr(hcp_terraform, "_clock", lambda: 1_700_000_000.0)
    first = hcp_terraform.parse(payload, {})
    monkeypatch.setattr(hcp_terraform, "_clock", lambda: 1_800_000_000.0)
    assert hcp_terraform.parse(payload, {}).dedupe_key == first.dedupe_key
