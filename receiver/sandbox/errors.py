"""Genesys-shaped error bodies (CONTRACT.md §4) and the exceptions that produce them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Default (code, message) per HTTP status, for errors and scripted responses that name none.
DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("bad.request", "The request could not be understood by the server due to malformed syntax."),
    401: ("bad.credentials", "Invalid login credentials."),
    403: ("not.authorized", "You are not authorized to perform the requested action."),
    404: ("not.found", "The requested operation failed with status 404"),
    405: ("method.not.allowed", "The requested operation failed with status 405"),
    409: ("conflict", "The requested operation failed with status 409"),
    429: ("too.many.requests.retry.after", "Rate limit exceeded the maximum. Retry the request in [{retry}] seconds"),
    500: ("internal.server.error", "The server encountered an unexpected condition."),
    502: ("bad.gateway", "The requested operation failed with status 502"),
    503: ("service.unavailable", "Service Unavailable"),
    504: ("request.timeout", "The request timed out."),
}

_MISSING = "Unable to perform the requested action. You are missing the following permission(s): "


class ApiError(Exception):
    """An API failure rendered as a Genesys ErrorBody with ININ-Correlation-Id as its contextId."""

    def __init__(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        *,
        params: Mapping[str, str] | None = None,
        message_with_params: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        default_code, default_message = DEFAULTS.get(status, _fallback(status))
        self.status = status
        self.code = code or default_code
        self.message = message or default_message
        super().__init__(self.message)
        self.params = dict(params or {})
        self.message_with_params = message_with_params or self.message
        self.headers = dict(headers or {})
        self.details = list(details or [])

    def body(self, context_id: str) -> dict[str, Any]:
        """Return the ErrorBody JSON."""
        return {
            "message": self.message,
            "code": self.code,
            "status": self.status,
            "messageWithParams": self.message_with_params,
            "messageParams": self.params,
            "contextId": context_id,
            "details": self.details,
            "errors": [],
        }


class OAuthError(Exception):
    """A token-endpoint failure rendered as {"error", "description", "error_description"}."""

    def __init__(self, status: int, error: str, description: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str]:
        """Return the OAuth error JSON."""
        return {"error": self.error, "description": self.description, "error_description": self.description}


class AdminError(Exception):
    """A bad request to a /sandbox/ endpoint; `problems` lists what to fix."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def body(self) -> dict[str, Any]:
        """Return the admin error JSON."""
        return {"error": "invalid_request", "message": self.message, "problems": self.problems}


def missing_permission(permission: str) -> ApiError:
    """Return the 403 naming the one permission the client lacks."""
    return ApiError(
        403,
        "missing.permissions",
        f"{_MISSING}[{permission}]",
        params={"permissions": permission},
        message_with_params=_MISSING + "[{permissions}]",
    )


def not_found() -> ApiError:
    """Return the Genesys 404."""
    return ApiError(404)


def rate_limited(retry_after: int, headers: Mapping[str, str] | None = None) -> ApiError:
    """Return the 429 with Retry-After in the header and the message."""
    template = DEFAULTS[429][1]
    return ApiError(
        429,
        message=template.format(retry=retry_after),
        params={"retryAfter": str(retry_after)},
        message_with_params=template.replace("{retry}", "{retryAfter}"),
        headers={"Retry-After": str(retry_after), **(headers or {})},
    )


def invalid_value(message: str, *, field: str, entity_id: str, entity_name: str) -> ApiError:
    """Return a 400 invalid.value naming the offending field."""
    detail = {"errorCode": "invalid.value", "fieldName": field, "entityId": entity_id, "entityName": entity_name}
    return ApiError(400, "invalid.value", message, details=[detail])


def _fallback(status: int) -> tuple[str, str]:
    code = "internal.server.error" if status >= 500 else "bad.request"
    return code, f"The requested operation failed with status {status}"
