"""Turn a failed platform call into {"cause", "fix"} an operator can act on.

The texts live in one table, TEXTS (name -> cause and fix templates over the facts of the call), so
preflight can reuse them with `explain(name, **facts)`; `diagnose()` only decides which entry applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .actions import ACTIONS
from .errors import PlatformError, TokenError
from .model import Target
from .platform import PlatformResponse, PlatformTimeoutError, PlatformTransportError

_SCOPES_NOTE = (
    "OAuth scopes do not matter for a client-credentials client: only the roles granted to it per division do"
)

#: name -> (cause, fix), formatted with the facts of the failure (missing facts render as "?").
TEXTS: dict[str, tuple[str, str]] = {
    "missing_permission": (
        "client lacks {permission} in division {division_id} (platform: {status} {code}: {message})",
        "grant the OAuth client a role with {permission} in division {division_id} (Terraform grants the role in "
        "every division the routes name: give route {route} target.division_id {division_id} in var.routes, or "
        "set var.default_division_id, then terraform apply); " + _SCOPES_NOTE,
    ),
    "trigger_not_available_definite": (
        "contact list {contact_list_id} exists, but POST {path} answered 404: the trigger endpoint is not "
        "available on this platform (Genesys Cloud has none)",
        "set route {route} to action: add_contact with a contact template of the list's columns; it adds the "
        "contact with priority=true, so the list's running campaign dials it next",
    ),
    "trigger_not_available": (
        "POST {path} answered 404: the trigger endpoint is most likely not available on this platform (Genesys "
        "Cloud has none); the contact list {contact_list_id} itself may well exist",
        "set route {route} to action: add_contact with a contact template of the list's columns (it adds the "
        "contact with priority=true, so the list's running campaign dials it next); run `receiver preflight` to "
        "confirm the contact list exists",
    ),
    "not_found": (
        "{subject} {object_id} was not found in this org and region (platform: {status} {code})",
        "check {id_field} of route {route} in the mapping file and GENESYSCLOUD_REGION: the {subject} must exist in "
        "the OAuth client's org, in that region",
    ),
    "bad_contact_data": (
        "the platform rejected the contact data of route {route} (platform: {status} {code}: {message})",
        "make the contact template of route {route} (columns: {columns}) use only columns of contact list "
        "{contact_list_id}, with a phone number in its phone column; `receiver preflight` shows the list's columns",
    ),
    "bad_request": (
        "the platform rejected the request of route {route} (platform: {status} {code}: {message})",
        "check the ids of route {route}; if they are right, quote correlation id {correlation_id} to Genesys support",
    ),
    "unauthorized": (
        "the platform refused a freshly fetched token (platform: {status} {code}): the OAuth client's credentials "
        "were revoked or expired, or the client belongs to another org",
        "check GENESYSCLOUD_OAUTHCLIENT_ID/SECRET and GENESYSCLOUD_REGION; if the OAuth client was re-created or "
        "its secret rotated, update the secret and restart the receiver",
    ),
    "token_not_configured": (
        "{error}",
        "set GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET (or their _FILE variants) to the OAuth "
        "client Terraform created",
    ),
    "token_bad_client": (
        "{error}",
        "check that GENESYSCLOUD_OAUTHCLIENT_ID/SECRET are those of the OAuth client (Terraform outputs) and that "
        "GENESYSCLOUD_REGION is the region of its org",
    ),
    "token_unauthorized_client": (
        "{error}",
        "create the OAuth client with authorized_grant_type = CLIENT-CREDENTIALS",
    ),
    "token_unreachable": (
        "{error}",
        "check GENESYSCLOUD_REGION (or GENESYSCLOUD_LOGIN_URL) and that this host can reach the login host (DNS, "
        "proxy, firewall)",
    ),
    "token_throttled": (
        "{error}",
        "wait and retry: the login host throttles token requests for this client; tokens are cached per process, "
        "so look for many processes or frequent restarts using the same client",
    ),
    "token_failed": (
        "{error}",
        "check GENESYSCLOUD_REGION and the OAuth client's id and secret",
    ),
    "rate_limited": (
        "the platform answered 429 too many requests (Retry-After {retry_after}s)",
        "lower RECEIVER_RATE_LIMIT_PER_MINUTE or the number of processes sharing this OAuth client (the limit is "
        "per token)",
    ),
    "unavailable": (
        "the platform answered {status} {code}: {message}",
        "the platform is failing: check the Genesys Cloud status page and replay the job (`receiver outbox replay "
        "ID`) once it recovers; quote correlation id {correlation_id} to Genesys support",
    ),
    "timeout": (
        "{error}",
        "the platform did not answer within RECEIVER_REQUEST_TIMEOUT: check the network path to the API host, "
        "then replay the job",
    ),
    "transport": (
        "{error}",
        "check GENESYSCLOUD_REGION (or GENESYSCLOUD_API_URL) and that this host can reach the API host (DNS, "
        "proxy, firewall)",
    ),
    "ambiguous_not_retried": (
        "the platform may have acted without confirming it ({error}{status}); action {action} is not retried "
        "after an ambiguous failure ({why})",
        "check whether the call happened (correlation id {correlation_id}); if it did not, replay the job "
        "(`receiver outbox replay ID`)",
    ),
    "config": (
        "{error}",
        "fix route {route} in the mapping file (`receiver check-mapping`), then replay the job",
    ),
    "unexpected": (
        "the platform answered {status} {code}: {message}",
        "quote correlation id {correlation_id} to Genesys support; replay the job once the cause is fixed",
    ),
    "error": (
        "{error}",
        "see the error above; replay the job (`receiver outbox replay ID`) once the cause is fixed",
    ),
}

#: TokenError.error -> TEXTS entry (anything else: token_failed).
_TOKEN_TEXTS: dict[str | None, str] = {
    "not_configured": "token_not_configured",
    "invalid_client": "token_bad_client",
    "unauthorized_client": "token_unauthorized_client",
    "unreachable": "token_unreachable",
    "timeout": "token_unreachable",
    "invalid_request": "token_throttled",
}

_SUBJECTS: dict[str, tuple[str, str]] = {
    "contact_list": ("contact list", "contact_list_id"),
    "campaign": ("campaign", "campaign_id"),
}


class _Facts(dict[str, Any]):
    """Format values; a fact nobody knows renders as '?'."""

    def __missing__(self, key: str) -> str:
        return "?"


def explain(name: str, **facts: Any) -> dict[str, str]:
    """Return the {"cause", "fix"} entry `name` of TEXTS filled in with the facts."""
    cause, fix = TEXTS[name]
    values = _Facts({k: v for k, v in facts.items() if v is not None})
    return {"cause": cause.format_map(values), "fix": fix.format_map(values)}


def _facts(target: Target, response: PlatformResponse | None, error: Exception | None) -> dict[str, Any]:
    action = ACTIONS.get(target.action)
    subject, id_field = _SUBJECTS.get(action.subject if action else "", ("contact list", "contact_list_id"))
    object_id = target.campaign_id if id_field == "campaign_id" else target.contact_list_id
    ids = {"contact_list_id": target.contact_list_id or "", "campaign_id": target.campaign_id or ""}
    facts: dict[str, Any] = {
        "route": target.route,
        "action": target.action,
        "division_id": target.division_id,
        "contact_list_id": target.contact_list_id,
        "campaign_id": target.campaign_id,
        "permission": action.permission if action else None,
        "path": action.path.format(**ids) if action else None,
        "subject": subject,
        "id_field": id_field,
        "object_id": object_id,
        "columns": ", ".join(target.contact) if target.contact else "none",
        "error": str(error) if error is not None else "no answer from the platform",
    }
    if response is not None:
        facts.update(
            status=response.status,
            code=response.error_code or "-",
            message=response.error_message or "-",
            correlation_id=response.correlation_id,
            retry_after=None if response.retry_after is None else f"{response.retry_after:g}",
        )
    return facts


def _choose(
    target: Target, response: PlatformResponse | None, error: Exception | None, context: Mapping[str, Any]
) -> str:
    """Return the TEXTS entry that explains this failure."""
    if isinstance(error, TokenError):
        return _TOKEN_TEXTS.get(error.error, "token_failed")
    if isinstance(error, PlatformTimeoutError):
        return "timeout"
    if isinstance(error, PlatformTransportError):
        return "transport"
    if isinstance(error, PlatformError):
        return "config" if not error.retryable else "error"
    if response is None:
        return "error"
    status = response.status
    if status == 403:
        return "missing_permission"
    if status == 404 and target.action == "trigger":
        return "trigger_not_available_definite" if context.get("contact_list_exists") else "trigger_not_available"
    if status == 404:
        return "not_found"
    if status == 400 and target.action == "add_contact":
        return "bad_contact_data"
    if status == 400:
        return "bad_request"
    if status == 401:
        return "unauthorized"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "unavailable"
    return "unexpected"


def diagnose(
    target: Target,
    response: PlatformResponse | None,
    *,
    error: Exception | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Return {"cause", "fix"} for a failed action.

    context keys: attempts (N: retries exhausted), contact_list_exists (bool: makes a trigger 404 definite),
    ambiguous_not_retried (why: the AMBIGUITY policy made an ambiguous failure dead).
    """
    ctx = context or {}
    name = "ambiguous_not_retried" if ctx.get("ambiguous_not_retried") else _choose(target, response, error, ctx)
    facts = _facts(target, response, error)
    if name == "ambiguous_not_retried":
        facts.update(
            why=ctx["ambiguous_not_retried"],
            error=str(error) if error is not None else "",
            status=f"HTTP {response.status}" if response is not None else "",
        )
    result = explain(name, **facts)
    attempts = ctx.get("attempts")
    if attempts:
        result["cause"] = f"gave up after {attempts} attempts: last error: {result['cause']}"
    return result
