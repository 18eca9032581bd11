"""What every request goes through before and after its view: correlation id, auth, limits, scripts, faults, log."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import cast

from flask import Response, current_app, g, request

from .errors import ApiError, OAuthError, rate_limited
from .state import RateWindow, SandboxState, ScriptedResponse, Token

TOKEN_PATH = "/oauth/token"
API_PREFIX = "/api/"
ADMIN_PREFIX = "/sandbox"

#: Endpoints that perform a platform action (the ones a timeout fault can hang).
ACTION_ENDPOINTS: frozenset[str] = frozenset({"platform.trigger", "platform.add_contacts", "platform.start_campaign"})

_OAUTH_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("invalid_request", "rate limit exceeded"),
    401: ("invalid_client", "authentication failed"),
}


@dataclass(slots=True)
class Exchange:
    """What the sandbox knows about the request being answered."""

    correlation_id: str
    received_at: float
    client_id: str | None = None
    token: Token | None = None
    rate: RateWindow | None = None
    scripted: ScriptedResponse | None = None


def current_state() -> SandboxState:
    """Return the state of the sandbox app handling this request."""
    return cast(SandboxState, current_app.extensions["sandbox"])


def exchange() -> Exchange:
    """Return this request's Exchange (a fresh one if the gate has not run)."""
    ex = g.get("sandbox_exchange")
    if ex is None:
        ex = g.sandbox_exchange = Exchange(correlation_id=str(uuid.uuid4()), received_at=time.time())
    return cast(Exchange, ex)


def is_admin(path: str) -> bool:
    """Say whether the path is one of the /sandbox/ admin endpoints."""
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def begin_request() -> None:
    """Admit an API or token request, or raise the error the platform would answer with."""
    path = request.path
    if path == TOKEN_PATH:
        _admit_token_request(exchange(), current_state())
    elif path.startswith(API_PREFIX):
        _admit_api_request(exchange(), current_state())
    else:
        exchange()  # admin endpoints and unknown paths: no auth, limits or faults


def _admit_token_request(ex: Exchange, state: SandboxState) -> None:
    """Apply scripts (only) to the token endpoint."""
    ex.client_id = request.authorization.username if request.authorization else request.form.get("client_id")
    ex.scripted = state.take_scripted(request.method, request.path)
    if ex.scripted is not None and not ex.scripted.success:
        raise _scripted_oauth_error(ex.scripted)


def _admit_api_request(ex: Exchange, state: SandboxState) -> None:
    """Count, then apply scripts, latency, errors, auth, the rate limit and timeouts, in that order."""
    ex.token, failure = _authenticate(state)
    if ex.token is not None:
        ex.client_id = ex.token.client_id
        ex.rate = state.count_request(ex.token)
    ex.scripted = state.take_scripted(request.method, request.path)
    if ex.scripted is not None and not ex.scripted.success:
        raise _scripted_api_error(ex.scripted)
    faults = state.world.faults
    if faults.latency_ms:
        time.sleep(faults.latency_ms / 1000)
    if state.roll(faults.error_rate):
        raise ApiError(503)
    if failure is not None:
        raise failure
    if ex.rate is not None and ex.rate.exceeded:
        raise rate_limited(ex.rate.reset)
    if request.endpoint in ACTION_ENDPOINTS and state.roll(faults.timeout_rate):
        time.sleep(faults.timeout_seconds)  # hang past the client's timeout, then act and succeed


def finish_request(response: Response) -> Response:
    """Stamp the correlation id, rate-limit headers and scripted status; log the request."""
    ex = exchange()
    state = current_state()
    path = request.path
    response.headers["ININ-Correlation-Id"] = ex.correlation_id
    if is_admin(path):
        return response
    if path.startswith(API_PREFIX):
        rate = ex.rate or state.idle_window()
        for name, value in rate.headers().items():
            response.headers[name] = value
    scripted = ex.scripted
    if scripted is not None and (not scripted.success or 200 <= response.status_code < 300):
        response.status_code = scripted.status
        for name, value in scripted.headers.items():
            response.headers[name] = value
    state.log_request(request.method, path, response.status_code, ex.received_at, ex.client_id)
    return response


def _authenticate(state: SandboxState) -> tuple[Token | None, ApiError | None]:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None, ApiError(
            401, "authentication.required", "No authentication bearer token specified in authorization header."
        )
    token = state.find_token(value)
    if token is None or token.client_id not in state.world.clients:
        return None, ApiError(401, "bad.credentials", "Invalid login credentials.")
    if token.expired():
        return None, ApiError(401, "credentials.expired", "The supplied credentials are expired and cannot be used.")
    return token, None


def _scripted_api_error(scripted: ScriptedResponse) -> ApiError:
    if scripted.status == 429 and not scripted.code and not scripted.message:
        retry = scripted.headers.get("Retry-After", "1")
        return rate_limited(int(retry) if retry.isdigit() else 1, scripted.headers)
    return _WithBody(scripted)


def _scripted_oauth_error(scripted: ScriptedResponse) -> OAuthError:
    error, description = _OAUTH_DEFAULTS.get(scripted.status, ("server_error", f"status {scripted.status}"))
    return OAuthError(
        scripted.status, scripted.code or error, scripted.message or description, headers=scripted.headers
    )


class _WithBody(ApiError):
    """A scripted error; its body, if the script gives one, replaces the ErrorBody."""

    def __init__(self, scripted: ScriptedResponse) -> None:
        headers = dict(scripted.headers)
        if scripted.status == 429:
            headers.setdefault("Retry-After", "1")
        super().__init__(scripted.status, scripted.code, scripted.message, headers=headers)
        self.raw_body = scripted.body

    def body(self, context_id: str) -> dict[str, object]:
        if isinstance(self.raw_body, dict):
            return self.raw_body
        return super().body(context_id)
