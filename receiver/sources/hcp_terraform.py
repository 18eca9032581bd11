"""HCP Terraform / Terraform Enterprise notifications (notification configuration, destination "generic")."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import PayloadError
from ..model import Event
from ..verify import lower_keys, verify_hmac_hex
from ._common import compile_schema, dig, digest, event, first, load_schema, text, validate

NAME = "hcp-terraform"

#: Wall clock for the receipt hour of payloads that carry no id or time (tests replace it).
_clock: Callable[[], float] = time.time

#: Every trigger HCP Terraform sends and the state it means. `run:errored` and the auto-destroy
#: results are refined from the run status they carry (see _run_errored and _destroy_results).
TRIGGERS: dict[str, str] = {
    "run:created": "created",
    "run:planning": "running",
    "run:needs_attention": "needs_approval",
    "run:applying": "applying",
    "run:completed": "succeeded",
    "run:errored": "failed",
    "run:pending_apply_approval": "needs_approval",
    "run:cost_estimated": "running",
    "run:policy_override_required": "needs_approval",
    "run:policies_checked": "running",
    "run:run_errored": "failed",
    "run:run_canceled": "canceled",
    # A soft-mandatory policy failed. If it can be overridden the run also pauses and HCP Terraform
    # sends needs_attention / policy_override_required: that is the approval request, not this.
    "run:policy_soft_failed": "check_failed",
    "assessment:drifted": "drifted",
    "assessment:check_failure": "check_failed",
    "assessment:failed": "failed",
    "workspace:auto_destroy_reminder": "destroy_scheduled",
    "workspace:auto_destroy_run_results": "unknown",
    "workspace:auto_destroy_results": "unknown",  # what payloads say; the docs' trigger list says _run_results
    "workspace:deleted": "unknown",
    "change_request:created": "needs_approval",
    "team:change_request": "needs_approval",
    "verification": "verification",
}

#: run_status of an automatic destroy run -> state of its results notification; other statuses are unknown.
DESTROY_RESULTS: dict[str, str] = {
    "applied": "succeeded",
    "planned_and_finished": "succeeded",
    "errored": "failed",
    "canceled": "canceled",
    "force_canceled": "canceled",
    "discarded": "canceled",
}

_DESTROY_RESULTS_TRIGGERS = ("workspace:auto_destroy_run_results", "workspace:auto_destroy_results")
_CHANGE_REQUEST = "change_request:created"
_SIGNATURE = "X-TFE-Notification-Signature"
_VALIDATOR = compile_schema(load_schema(NAME))


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, now: float) -> None:
    """Check X-TFE-Notification-Signature: lowercase hex HMAC-SHA512 of the raw body (the scheme has no timestamp)."""
    signature = lower_keys(headers).get(_SIGNATURE.lower())
    verify_hmac_hex(body, signature, secrets, algorithm="sha512", header=_SIGNATURE)


def parse(payload: object, headers: Mapping[str, str]) -> Event:
    """Validate a notification and normalize it; a run payload's first notification is the one read."""
    data = validate(_VALIDATOR, payload, "HCP Terraform notification")
    if data["payload_version"] in (2, "2"):
        return _workspace_event(data)
    return _run_event(data)


def _run_event(data: dict[str, Any]) -> Event:
    notifications = data.get("notifications")
    note: dict[str, Any] = notifications[0] if isinstance(notifications, list) else {}
    # The documented change-request payload has no notifications[] (the schema then requires change_request_url).
    trigger: str = note.get("trigger", _CHANGE_REQUEST)
    state = _state(trigger, "$.notifications[0].trigger" if note else "$")
    if trigger == "run:errored":
        state = _run_errored(note.get("run_status"))
    run_id = first(data.get("run_id"), data.get("change_request_url"))
    updated_at = first(note.get("run_updated_at"), data.get("change_request_created_at"))
    return event(
        NAME,
        kind=trigger,
        state=state,
        dedupe_key=digest(NAME, data["notification_configuration_id"], run_id, trigger, updated_at),
        organization=data.get("organization_name"),
        workspace=data.get("workspace_name"),
        project=data.get("project_name"),
        run_id=data.get("run_id"),
        url=first(data.get("run_url"), data.get("change_request_url")),
        actor=first(note.get("run_updated_by"), data.get("run_created_by"), data.get("change_request_created_by")),
        message=first(data.get("run_message"), note.get("message"), data.get("change_request_subject")),
        occurred_at=first(updated_at, data.get("run_created_at")),
    )


def _workspace_event(data: dict[str, Any]) -> Event:
    trigger: str = data["trigger"]
    state = _state(trigger, "$.trigger")
    if trigger in _DESTROY_RESULTS_TRIGGERS:
        state = _destroy_results(data)
    assessment = dig(data, "details", "new_assessment_result")
    created_at = first(dig(assessment, "created_at"), dig(data, "details", "run_created_at"))
    message = text(data.get("message"))
    error = text(dig(data, "details", "run_create_error_message"))
    if error:
        message = f"{message}: {error}" if message else error
    identity = (dig(assessment, "id"), dig(data, "details", "run_external_id"), created_at,
                dig(data, "details", "auto_destroy_at"))
    # A payload with no id and no time at all (e.g. "auto-destroy run could not be created") would
    # give every such failure the same key, and a later one would be swallowed as a duplicate:
    # the hour of receipt tells them apart (a redelivery within the hour is still recognized).
    received = None if any(v is not None for v in identity) else time.strftime("%Y-%m-%dT%H", time.gmtime(_clock()))
    return event(
        NAME,
        kind=trigger,
        state=state,
        dedupe_key=digest(
            NAME,
            data["notification_configuration_id"],
            trigger,
            *identity,
            dig(data, "details", "workspace_id"),
            dig(data, "details", "workspace_name"),
            dig(data, "details", "organization_name"),
            received,
        ),
        organization=dig(data, "details", "organization_name"),
        workspace=dig(data, "details", "workspace_name"),
        project=dig(data, "details", "project_name"),
        run_id=dig(data, "details", "run_external_id"),
        url=dig(assessment, "url"),
        message=message,
        occurred_at=created_at,
    )


def _state(trigger: str, json_path: str) -> str:
    state = TRIGGERS.get(trigger)
    if state is None:
        known = ", ".join(TRIGGERS)
        raise PayloadError(
            f"unknown HCP Terraform trigger {text(trigger, 80)!r}; known triggers: {known}", json_path=json_path
        )
    return state


def _run_errored(run_status: object) -> str:
    # run:errored is sent for an error and for a cancellation alike; only run_status tells them apart.
    return "canceled" if run_status == "canceled" else "failed"


def _destroy_results(data: dict[str, Any]) -> str:
    status = dig(data, "details", "run_status")
    if isinstance(status, str) and status:
        return DESTROY_RESULTS.get(status, "unknown")
    if text(dig(data, "details", "run_create_error_message")):
        return "failed"  # the destroy run could not even be created
    return "unknown"
