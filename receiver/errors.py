"""The receiver's one error hierarchy; rendered over HTTP by one handler in views.py."""

from __future__ import annotations

from typing import Any


class ReceiverError(Exception):
    """Base of every error the receiver raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, json_path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.json_path = json_path

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "json_path": self.json_path}


class SignatureError(ReceiverError):
    """The signature or token is missing or wrong; the sender must be configured with the secret."""

    status_code = 401
    code = "bad_signature"


class UnsignedSourceError(SignatureError):
    """No secret is configured for this source and RECEIVER_ALLOW_UNSIGNED does not name it."""

    code = "source_not_configured"


class PayloadError(ReceiverError, ValueError):
    """The body is not JSON or not a payload of this source; json_path says where."""

    status_code = 400
    code = "invalid_payload"


class UnknownSourceError(ReceiverError):
    """No sender of that name is known."""

    status_code = 404
    code = "unknown_source"


class BodyTooLargeError(ReceiverError):
    """The body is larger than RECEIVER_MAX_BODY."""

    status_code = 413
    code = "body_too_large"


class UnsupportedMediaTypeError(ReceiverError):
    """The body is not declared as JSON."""

    status_code = 415
    code = "unsupported_media_type"


class OutboxUnavailableError(ReceiverError):
    """The outbox could not store the event durably; the sender should retry."""

    status_code = 503
    code = "outbox_unavailable"


class ConfigError(ReceiverError):
    """Configuration is invalid; raised at start-up only, never over HTTP."""

    code = "config_error"


class MappingError(ConfigError):
    """The mapping file is invalid; `errors` lists (json_path, message) for every problem."""

    code = "invalid_mapping"

    def __init__(self, path: str, errors: list[tuple[str, str]]) -> None:
        lines = "\n".join(f"  {p}: {m}" for p, m in errors)
        super().__init__(f"mapping file {path} is invalid:\n{lines}")
        self.path = path
        self.errors = errors


class PlatformError(ReceiverError):
    """A call to the contact-center platform could not be made or answered."""

    status_code = 502
    code = "platform_error"

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class TokenError(PlatformError):
    """The OAuth token could not be obtained (bad client id/secret, wrong region, throttled)."""

    code = "token_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        error: str | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.http_status = status_code
        self.error = error
