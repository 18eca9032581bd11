"""GitHub webhooks: workflow_run, workflow_job, deployment_status, check_suite and ping."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PayloadError
from ..model import Event
from ..verify import lower_keys, verify_hmac_hex
from ._common import compile_schema, dig, digest, event, first, load_schema, text, validate

NAME = "github"

#: conclusion of a completed workflow run, workflow job or check suite -> state; other values are unknown.
CONCLUSIONS: dict[str, str] = {
    "success": "succeeded",
    "failure": "failed",
    "timed_out": "failed",
    "startup_failure": "failed",
    "cancelled": "canceled",
    "action_required": "needs_approval",
    "neutral": "unknown",
    "skipped": "unknown",
    "stale": "unknown",
}

#: action of a not-yet-completed event -> state, per event; `completed` is read from CONCLUSIONS.
ACTIONS: dict[str, dict[str, str]] = {
    "workflow_run": {
        "requested": "created",
        "queued": "created",
        "in_progress": "running",
        "waiting": "needs_approval",
    },
    # `started` is what workflow_job sent for in_progress while in beta (octokit started.with-organization).
    "workflow_job": {"queued": "created", "waiting": "needs_approval", "in_progress": "running", "started": "running"},
    "check_suite": {"requested": "created", "rerequested": "created"},
}

#: deployment_status.state -> state; other values are unknown.
DEPLOYMENT_STATES: dict[str, str] = {
    "error": "failed",
    "failure": "failed",
    "pending": "created",
    "queued": "created",
    "in_progress": "running",
    "success": "succeeded",
    "inactive": "unknown",
}

EVENTS: tuple[str, ...] = ("workflow_run", "workflow_job", "deployment_status", "check_suite", "ping")

_SIGNATURE = "X-Hub-Signature-256"
_SCHEMA = load_schema(NAME)
_VALIDATORS = {name: compile_schema(_SCHEMA, name) for name in EVENTS}


@dataclass(frozen=True, slots=True)
class _Fields:
    """What one event type contributes to the Event, besides the envelope."""

    state: str
    object_id: object
    run_id: object = None
    attempt: object = None
    outcome: object = None
    branch: object = None
    environment: object = None
    url: object = None
    actor: object = None
    message: object = None
    occurred_at: object = None


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, now: float) -> None:
    """Check X-Hub-Signature-256: `sha256=` + lowercase hex HMAC-SHA256 of the raw body."""
    signature = lower_keys(headers).get(_SIGNATURE.lower())
    verify_hmac_hex(body, signature, secrets, algorithm="sha256", header=_SIGNATURE, prefix="sha256=")


def parse(payload: object, headers: Mapping[str, str]) -> Event:
    """Validate a delivery against its X-GitHub-Event schema and normalize it."""
    lowered = lower_keys(headers)
    name = lowered.get("x-github-event")
    if name is None:
        name = _infer_event(payload)
    if name not in _VALIDATORS:
        supported = ", ".join(EVENTS)
        shown = f"{text(name, 64)!r}" if name else "none (no X-GitHub-Event header)"
        raise PayloadError(f"unsupported GitHub event {shown}; supported events: {supported}")
    data = validate(_VALIDATORS[name], payload, f"GitHub {name}")
    fields = _NORMALIZE[name](data)
    action = text(data.get("action"), 64)
    delivery_id = text(lowered.get("x-github-delivery"))
    repository = dig(data, "repository", "full_name")
    if delivery_id:
        dedupe_key = digest(NAME, "delivery", delivery_id)
    else:
        dedupe_key = digest(NAME, repository, name, fields.object_id, fields.attempt, action, fields.outcome)
    return event(
        NAME,
        kind=f"{name}.{action}" if action else name,
        state=fields.state,
        dedupe_key=dedupe_key,
        delivery_id=delivery_id,
        organization=first(dig(data, "repository", "owner", "login"), dig(data, "organization", "login")),
        repository=repository,
        branch=fields.branch,
        environment=fields.environment,
        run_id=fields.run_id,
        url=fields.url,
        actor=first(dig(data, "sender", "login"), fields.actor),
        message=fields.message,
        occurred_at=fields.occurred_at,
    )


def _progress(name: str, action: object, conclusion: object) -> str:
    if action == "completed":
        return CONCLUSIONS.get(conclusion, "unknown") if isinstance(conclusion, str) else "unknown"
    return ACTIONS[name].get(action, "unknown") if isinstance(action, str) else "unknown"


def _workflow_run(data: dict[str, Any]) -> _Fields:
    run = data["workflow_run"]
    return _Fields(
        state=_progress("workflow_run", data["action"], run.get("conclusion")),
        object_id=run["id"],
        run_id=run["id"],
        attempt=run.get("run_attempt"),
        outcome=run.get("conclusion"),
        branch=run.get("head_branch"),
        url=run.get("html_url"),
        actor=dig(run, "triggering_actor", "login"),
        message=first(run.get("display_title"), dig(run, "head_commit", "message"), run.get("name")),
        occurred_at=run.get("updated_at"),
    )


def _workflow_job(data: dict[str, Any]) -> _Fields:
    job = data["workflow_job"]
    return _Fields(
        state=_progress("workflow_job", data["action"], job.get("conclusion")),
        object_id=job["id"],
        run_id=job["run_id"],
        attempt=job.get("run_attempt"),
        outcome=job.get("conclusion"),
        branch=job.get("head_branch"),
        environment=dig(data, "deployment", "environment"),
        url=job.get("html_url"),
        message=" / ".join(filter(None, (text(job.get("workflow_name")), text(job.get("name"))))),
        occurred_at=first(job.get("completed_at"), job.get("started_at"), job.get("created_at")),
    )


def _deployment_status(data: dict[str, Any]) -> _Fields:
    status = data["deployment_status"]
    deployment = data["deployment"]
    return _Fields(
        state=DEPLOYMENT_STATES.get(status["state"], "unknown"),
        object_id=status["id"],
        run_id=deployment["id"],
        outcome=status["state"],
        branch=deployment.get("ref"),
        environment=first(status.get("environment"), deployment.get("environment")),
        url=first(status.get("target_url"), status.get("log_url"), status.get("environment_url")),
        actor=dig(status, "creator", "login"),
        message=first(status.get("description"), deployment.get("description")),
        occurred_at=status.get("updated_at"),
    )


def _check_suite(data: dict[str, Any]) -> _Fields:
    suite = data["check_suite"]
    return _Fields(
        state=_progress("check_suite", data["action"], suite.get("conclusion")),
        object_id=suite["id"],
        run_id=suite["id"],
        outcome=suite.get("conclusion"),
        branch=suite.get("head_branch"),
        url=suite.get("url"),
        message=dig(suite, "head_commit", "message"),
        occurred_at=suite.get("updated_at"),
    )


def _ping(data: dict[str, Any]) -> _Fields:
    return _Fields(
        state="verification",
        object_id=data["hook_id"],
        message=data["zen"],
        occurred_at=dig(data, "hook", "updated_at"),
    )


_NORMALIZE: dict[str, Callable[[dict[str, Any]], _Fields]] = {
    "workflow_run": _workflow_run,
    "workflow_job": _workflow_job,
    "deployment_status": _deployment_status,
    "check_suite": _check_suite,
    "ping": _ping,
}


def _infer_event(payload: object) -> str | None:
    # Only when X-GitHub-Event is absent (the `explain` CLI without --header): GitHub always sends it.
    if not isinstance(payload, dict):
        return None
    for name in ("deployment_status", "workflow_job", "check_suite", "workflow_run"):
        if name in payload:
            return name
    return "ping" if "zen" in payload and "hook_id" in payload else None
