"""GitLab webhooks: Pipeline Hook, Job Hook and Deployment Hook."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import PayloadError, SignatureError
from ..model import Event
from ..verify import WHSEC_PREFIX, lower_keys, usable_secrets, verify_standard, verify_token
from ._common import compile_schema, dig, digest, event, first, load_schema, text, validate

NAME = "gitlab"

#: Pipeline, job and deployment status -> state; other values (e.g. canceling) are unknown.
STATUSES: dict[str, str] = {
    "created": "created",
    "waiting_for_resource": "created",
    "preparing": "created",
    "pending": "created",
    "scheduled": "created",
    "running": "running",
    "manual": "needs_approval",
    "blocked": "needs_approval",  # a deployment waiting for approval
    "success": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
    "cancelled": "canceled",
    "skipped": "unknown",
}

#: X-Gitlab-Event value -> object_kind of its payload (and the $defs entry of its schema).
HOOKS: dict[str, str] = {"Pipeline Hook": "pipeline", "Job Hook": "build", "Deployment Hook": "deployment"}

_TOKEN = "X-Gitlab-Token"
_SCHEMA = load_schema(NAME)
_VALIDATORS = {kind: compile_schema(_SCHEMA, kind) for kind in HOOKS.values()}


@dataclass(frozen=True, slots=True)
class _Fields:
    """What one hook contributes to the Event, besides the project and user."""

    status: object
    object_id: object
    finished_at: object = None
    branch: object = None
    environment: object = None
    run_id: object = None
    url: object = None
    message: object = None
    occurred_at: object = None


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, now: float) -> None:
    """Accept a Standard Webhooks signature under a whsec_ secret, or an X-Gitlab-Token equal to another secret."""
    lowered = lower_keys(headers)
    usable = usable_secrets(secrets)
    signing = [s for s in usable if s.strip().startswith(WHSEC_PREFIX)]
    tokens = [s for s in usable if not s.strip().startswith(WHSEC_PREFIX)]
    problems: list[str] = []
    if signing:
        if "webhook-signature" in lowered:
            try:
                verify_standard(body, lowered, signing, now=now)
                return
            except SignatureError as exc:
                problems.append(exc.message)
        elif not tokens:
            problems.append("missing webhook-signature header (the configured secrets are whsec_ signing keys)")
    if tokens:
        try:
            verify_token(lowered.get(_TOKEN.lower()), tokens, header=_TOKEN)
            return
        except SignatureError as exc:
            problems.append(exc.message)
    raise SignatureError("; ".join(problems))


def parse(payload: object, headers: Mapping[str, str]) -> Event:
    """Validate a Pipeline, Job or Deployment Hook payload and normalize it."""
    lowered = lower_keys(headers)
    hook = lowered.get("x-gitlab-event")
    if hook is None:
        hook = _infer_hook(payload)
    if hook not in HOOKS:
        supported = ", ".join(HOOKS)
        shown = f"{text(hook, 64)!r}" if hook else "none (no X-Gitlab-Event header)"
        raise PayloadError(f"unsupported GitLab event {shown}; supported events: {supported}")
    kind = HOOKS[hook]
    data = validate(_VALIDATORS[kind], payload, f"GitLab {hook}")
    fields = _pipeline(data) if kind == "pipeline" else _job(data) if kind == "build" else _deployment(data)
    project_id = first(dig(data, "project", "id"), data.get("project_id"))
    project_name = text(data.get("project_name"))
    status = fields.status
    return event(
        NAME,
        kind=hook,
        state=STATUSES.get(status, "unknown") if isinstance(status, str) else "unknown",
        # Not the delivery id: the same state change re-sent under a new UUID must keep its key.
        dedupe_key=digest(NAME, project_id, kind, fields.object_id, status, fields.finished_at),
        delivery_id=first(lowered.get("idempotency-key"), lowered.get("x-gitlab-event-uuid")),
        organization=first(dig(data, "project", "namespace"), _namespace_name(project_name)),
        repository=first(
            dig(data, "project", "path_with_namespace"),
            _ssh_path(dig(data, "repository", "git_ssh_url")),
            project_name,
        ),
        branch=fields.branch,
        environment=fields.environment,
        run_id=fields.run_id,
        url=fields.url,
        actor=first(dig(data, "user", "username"), dig(data, "user", "name")),
        message=fields.message,
        occurred_at=fields.occurred_at,
    )


def _pipeline(data: dict[str, Any]) -> _Fields:
    attrs = data["object_attributes"]
    web_url = text(dig(data, "project", "web_url"), 1024)
    return _Fields(
        status=attrs["status"],
        object_id=attrs["id"],
        finished_at=attrs.get("finished_at"),
        branch=attrs.get("ref"),
        run_id=attrs["id"],
        url=first(attrs.get("url"), f"{web_url}/-/pipelines/{attrs['id']}" if web_url else None),
        message=first(dig(data, "commit", "message"), dig(data, "commit", "title"), attrs.get("name")),
        occurred_at=first(attrs.get("finished_at"), attrs.get("created_at")),
    )


def _job(data: dict[str, Any]) -> _Fields:
    web_url = text(dig(data, "project", "web_url"), 1024)
    finished_at = first(data.get("build_finished_at_iso"), data.get("build_finished_at"))
    return _Fields(
        status=data["build_status"],
        object_id=data["build_id"],
        finished_at=finished_at,
        branch=data.get("ref"),
        environment=dig(data, "environment", "name"),
        run_id=first(data.get("pipeline_id"), dig(data, "commit", "id")),
        url=f"{web_url}/-/jobs/{data['build_id']}" if web_url else None,
        message=first(dig(data, "commit", "message"), data.get("build_name")),
        occurred_at=first(
            finished_at,
            data.get("build_started_at_iso"),
            data.get("build_started_at"),
            data.get("build_created_at_iso"),
            data.get("build_created_at"),
        ),
    )


def _deployment(data: dict[str, Any]) -> _Fields:
    return _Fields(
        status=data["status"],
        object_id=first(data.get("deployment_id"), data.get("deployable_id")),
        finished_at=data.get("status_changed_at"),
        branch=data.get("ref"),
        environment=data.get("environment"),
        run_id=first(data.get("deployable_id"), data.get("deployment_id")),
        url=first(data.get("deployable_url"), data.get("environment_external_url"), data.get("commit_url")),
        message=data.get("commit_title"),
        occurred_at=data.get("status_changed_at"),
    )


def _namespace_name(project_name: str | None) -> str | None:
    # A Job Hook without a project object (older GitLab) names the project by its full name,
    # "Namespace / Project": the part before the project is what project.namespace would say.
    parts = project_name.split(" / ") if project_name else []
    return parts[-2] if len(parts) > 1 else None


def _ssh_path(url: object) -> str | None:
    # git@host:group/project.git or ssh://git@host:port/group/project.git -> group/project, the
    # path_with_namespace other hooks carry (a Job Hook without a project object has only this).
    value = text(url, 1024)
    if value is None:
        return None
    path = urlsplit(value).path if "://" in value else value.rpartition(":")[2]
    path = path.strip("/").removesuffix(".git")
    return path if "/" in path else None


def _infer_hook(payload: object) -> str | None:
    # Only when X-Gitlab-Event is absent (the `explain` CLI without --header): GitLab always sends it.
    kind = dig(payload, "object_kind")
    return next((hook for hook, known in HOOKS.items() if known == kind), None)
