"""Any Standard Webhooks sender posting pipedial's own event format (docs/senders.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..model import Event
from ..verify import lower_keys, verify_standard
from ._common import compile_schema, digest, event, load_schema, text, validate

NAME = "standard"

_VALIDATOR = compile_schema(load_schema(NAME))


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, now: float) -> None:
    """Check the webhook-id, webhook-timestamp and webhook-signature headers (tolerance 300 s either way)."""
    verify_standard(body, headers, secrets, now=now)


def parse(payload: object, headers: Mapping[str, str]) -> Event:
    """Validate a pipedial event body; webhook-id is both its delivery id and its dedupe key."""
    data = validate(_VALIDATOR, payload, "pipedial event")
    msg_id = text(lower_keys(headers).get("webhook-id"))
    # The specification keeps webhook-id stable across retries, so it identifies the state change.
    # Without it (the `explain` CLI) the body itself is the key.
    dedupe_key = digest(NAME, "webhook-id", msg_id) if msg_id else digest(NAME, "body", data)
    return event(
        NAME,
        kind=data.get("kind") or NAME,
        state=data["state"],
        dedupe_key=dedupe_key,
        delivery_id=msg_id,
        organization=data.get("organization"),
        workspace=data.get("workspace"),
        project=data.get("project"),
        repository=data.get("repository"),
        branch=data.get("branch"),
        environment=data.get("environment"),
        run_id=data.get("run_id"),
        url=data.get("url"),
        actor=data.get("actor"),
        message=data.get("message"),
        occurred_at=data.get("occurred_at"),
    )
