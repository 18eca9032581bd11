"""The Genesys Cloud API client: OAuth client-credentials token, pacing, one 401 refresh, typed errors.

This module makes calls and reports what happened; it never decides whether to retry a job (that is
receiver/deliver.py). What it does on its own:
- every request waits for the process-wide Pacer, carries a timeout and a bearer token;
- a 401 invalidates the token and the request is sent once more (a second 401 is returned as is);
- response rate-limit headers and a 429's Retry-After are fed to the Pacer;
- transport failures become PlatformTransportError (retryable; `timed_out` and `maybe_sent` say
  whether the platform may have acted); token failures become TokenError.

TokenError.error is the login host's OAuth error (`invalid_client`, `invalid_request`, ...) or one of
the local codes `not_configured`, `unreachable`, `timeout`, `bad_response`. Nothing here logs a
token, the client secret or an Authorization header.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import requests
import requests.auth
import urllib3.exceptions

from .actions import ACTIONS
from .config import Settings
from .contact import contact_id, render_contact
from .errors import PlatformError, TokenError
from .model import Event, Target
from .pacing import Pacer

log = logging.getLogger("receiver.platform")

#: Assumed token lifetime when the login host does not say (the platform's minimum).
DEFAULT_TOKEN_TTL = 300.0

USER_AGENT = "pipedial/0.1"

#: Event fields sent in a trigger body (besides source, kind, state and the ids).
_TRIGGER_FIELDS = (
    "organization",
    "workspace",
    "project",
    "repository",
    "branch",
    "environment",
    "run_id",
    "url",
    "actor",
    "message",
    "occurred_at",
)


@dataclass(frozen=True)
class PlatformResponse:
    """One platform answer: status, headers, parsed JSON body (or None) and ININ-Correlation-Id."""

    status: int
    headers: Mapping[str, str]
    body: Any
    correlation_id: str | None

    @property
    def ok(self) -> bool:
        """Return whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str | None:
        """Return the ErrorBody `code` (e.g. missing.permissions), if any."""
        return self._body_str("code")

    @property
    def error_message(self) -> str | None:
        """Return the ErrorBody `message`, if any."""
        return self._body_str("message")

    @property
    def context_id(self) -> str | None:
        """Return the ErrorBody `contextId` (the correlation id), if any."""
        return self._body_str("contextId")

    @property
    def retry_after(self) -> float | None:
        """Return the Retry-After header in seconds (number or HTTP date), if any."""
        return parse_retry_after(_header(self.headers, "Retry-After"))

    def _body_str(self, key: str) -> str | None:
        if isinstance(self.body, dict):
            value = self.body.get(key)
            if value is not None:
                return str(value)
        return None


class PlatformTransportError(PlatformError):
    """The request failed in transit (no answer); safe to retry, but the platform may have acted."""

    timed_out = False

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message, retryable=True)
        self.maybe_sent = maybe_sent


class PlatformTimeoutError(PlatformTransportError):
    """The platform did not answer within RECEIVER_REQUEST_TIMEOUT."""

    timed_out = True


class PacingTimeoutError(PlatformError):
    """The local rate-limit pause would outlast the caller's deadline; nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)
        self.maybe_sent = False


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Return a Retry-After value (delta seconds or HTTP date) as seconds from now, or None."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None


def _json_body(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _connection_reason(exc: BaseException) -> str:
    text = str(exc)
    if "NameResolution" in text or "Name or service not known" in text or "getaddrinfo" in text:
        return "DNS lookup failed"
    if "refused" in text.lower():
        return "connection refused"
    return "connection failed"


def _maybe_sent(exc: requests.RequestException) -> bool:
    """Return whether the request may have reached the platform before the failure."""
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.Timeout):
        return True
    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return not isinstance(reason, urllib3.exceptions.NewConnectionError)


class ClientCredentialsAuth(requests.auth.AuthBase):
    """Apply a cached client-credentials bearer token; one token request at a time per process."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._session = session or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._valid_until = 0.0
        self._finished = 0  # token requests finished (either way); lets waiting threads share a failure
        self._last_error: TokenError | None = None
        self.fetches = 0  # token requests made, for tests and metrics

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        return r

    def __repr__(self) -> str:
        return f"ClientCredentialsAuth(login_base={self._settings.login_base!r})"

    def token(self) -> str:
        """Return a valid token, fetching one if needed; threads waiting meanwhile reuse the result."""
        seen = self._finished
        with self._lock:
            if self._token is not None and self._clock() < self._valid_until:
                return self._token
            if self._finished != seen and self._last_error is not None:
                err = self._last_error  # another thread failed while we waited: share its answer
                raise TokenError(str(err), retryable=err.retryable, status_code=err.http_status, error=err.error)
            try:
                token, lifetime = self._fetch()
            except TokenError as exc:
                self._last_error = exc
                raise
            finally:
                self._finished += 1
            self._last_error = None
            self._token = token
            self._valid_until = self._clock() + lifetime
            return token

    def invalidate(self, token: str) -> None:
        """Forget the cached token if it is still `token` (the one the platform refused)."""
        with self._lock:
            if self._token == token:
                self._token = None
                self._valid_until = 0.0

    def _fetch(self) -> tuple[str, float]:
        """Request a token from the login host; return (token, seconds to keep it)."""
        s = self._settings
        if not s.client_id or not s.client_secret:
            raise TokenError("GENESYSCLOUD_OAUTHCLIENT_ID/SECRET not set", retryable=False, error="not_configured")
        url = f"{s.login_base}/oauth/token"
        host = urlsplit(url).netloc or url
        self.fetches += 1
        started = time.monotonic()
        try:
            response = self._session.post(
                url,
                data={"grant_type": "client_credentials"},
                auth=requests.auth.HTTPBasicAuth(s.client_id, s.client_secret),
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                timeout=s.request_timeout,
            )
        except requests.Timeout:
            raise TokenError(
                f"login host {host} did not answer within {s.request_timeout:g}s", retryable=True, error="timeout"
            ) from None
        except requests.RequestException as exc:
            raise TokenError(
                f"cannot reach login host {host} (wrong GENESYSCLOUD_REGION?): {_connection_reason(exc)}",
                retryable=True,
                error="unreachable",
            ) from None
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        body = _json_body(response)
        status = response.status_code
        if status == 200 and isinstance(body, dict) and isinstance(body.get("access_token"), str):
            ttl = _number(body.get("expires_in"), DEFAULT_TOKEN_TTL)
            lifetime = max(ttl - s.token_refresh_margin, 0.8 * ttl, 0.0)
            log.info("platform token fetched", extra={"expires_in": ttl, "duration_ms": duration_ms})
            return body["access_token"], lifetime
        error, description = _oauth_error(body)
        log.debug(  # the TokenError raised below carries all of this; its caller logs it once
            "platform token request failed",
            extra={"status_code": status, "error": error, "description": description, "duration_ms": duration_ms},
        )
        raise _token_error(host, status, error, description)


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _oauth_error(body: Any) -> tuple[str | None, str]:
    if not isinstance(body, dict):
        return None, ""
    error = body.get("error")
    description = body.get("error_description") or body.get("description") or ""
    return (str(error) if error is not None else None), str(description)


def _token_error(host: str, status: int, error: str | None, description: str) -> TokenError:
    """Turn a refused token request into a TokenError whose message names the cause."""
    detail = f"login host {host} answered {status}" + (f" {error}" if error else "")
    if description:
        detail += f": {description}"
    if error == "invalid_client" or status == 401:
        return TokenError(f"bad client id or secret ({detail})", retryable=False, status_code=status, error=error)
    if error == "unauthorized_client":
        return TokenError(
            f"the OAuth client may not use the client-credentials grant ({detail})",
            retryable=False,
            status_code=status,
            error=error,
        )
    if status == 400 and error == "invalid_request" and "rate limit" in description.lower():
        return TokenError(
            f"token endpoint rate limit exceeded ({detail})", retryable=True, status_code=status, error=error
        )
    if status == 429 or status >= 500:
        return TokenError(f"token endpoint unavailable ({detail})", retryable=True, status_code=status, error=error)
    if status == 200:
        return TokenError(
            f"login host {host} answered without an access token (check GENESYSCLOUD_LOGIN_URL)",
            retryable=False,
            status_code=status,
            error="bad_response",
        )
    return TokenError(f"token request refused ({detail})", retryable=False, status_code=status, error=error)


def _bearer(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value and value.startswith("Bearer "):
        return value[len("Bearer ") :]
    return None


def _trigger_body(target: Target, event: Event) -> Any:
    body: dict[str, Any] = {
        "id": contact_id(target, event),
        "source": event.source,
        "kind": event.kind,
        "state": event.state,
        "dedupeKey": event.dedupe_key,
        "route": target.route,
    }
    if event.delivery_id:
        body["deliveryId"] = event.delivery_id
    for name in _TRIGGER_FIELDS:
        value = getattr(event, name)
        if value is not None:
            camel = name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:])
            body[camel] = value
    return body


def _add_contact_body(target: Target, event: Event) -> Any:
    return [
        {
            "id": contact_id(target, event),
            "contactListId": target.contact_list_id,
            "data": render_contact(target.contact or {}, event),
            "callable": True,
        }
    ]


def _no_body(target: Target, event: Event) -> Any:
    return None


#: Request body of each action in receiver.actions.ACTIONS (a test keeps the keys in step).
BODIES: dict[str, Callable[[Target, Event], Any]] = {
    "trigger": _trigger_body,
    "add_contact": _add_contact_body,
    "start_campaign": _no_body,
}


def platform_session(settings: Settings) -> requests.Session:
    """Return a session whose proxy and CA settings are read from the environment once, not per call.

    requests re-reads HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE... on every request while
    `trust_env` is on (a measurable share of a delivery's CPU). Both platform hosts are resolved up
    front; if they would need different proxies, the session keeps the per-call behaviour.
    """
    session = requests.Session()
    hosts = {settings.api_base, settings.login_base}
    resolved = [session.merge_environment_settings(url, {}, None, None, None) for url in hosts]
    if all(r["proxies"] == resolved[0]["proxies"] for r in resolved):
        session.proxies.update(resolved[0]["proxies"])
        session.verify = resolved[0]["verify"]
        session.cert = resolved[0]["cert"]
        session.trust_env = False
    return session


class PlatformClient:
    """Calls the platform API for one OAuth client: paced, authenticated, with typed failures."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        pacer: Pacer | None = None,
        auth: ClientCredentialsAuth | None = None,
    ) -> None:
        self.settings = settings
        self.session = session or platform_session(settings)
        self.pacer = pacer or Pacer.from_settings(settings)
        self.auth = auth or ClientCredentialsAuth(settings, session=self.session)

    def ready_in(self) -> float:
        """Return seconds until the pacer lets a request go (0 when one may go now)."""
        return self.pacer.ready_in()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
        pace_timeout: float | None = None,
    ) -> PlatformResponse:
        """Send one API request (once more after a 401 with a fresh token) and return the answer."""
        url = self.settings.api_base + path
        timeout = timeout if timeout is not None else self.settings.request_timeout
        for refreshed in (False, True):
            if not self.pacer.acquire(pace_timeout):
                raise PacingTimeoutError(f"{method} {path}: rate-limit pause outlasts the job's lease; not sent")
            started = time.monotonic()
            try:
                response = self.session.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    auth=self.auth,
                    timeout=timeout,
                    headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                )
            except requests.Timeout as exc:
                raise PlatformTimeoutError(
                    f"{method} {path} timed out after {timeout:g}s", maybe_sent=_maybe_sent(exc)
                ) from None
            except requests.RequestException as exc:
                host = urlsplit(url).netloc
                raise PlatformTransportError(
                    f"{method} {path}: cannot reach {host}: {_connection_reason(exc)}", maybe_sent=_maybe_sent(exc)
                ) from None
            body = _json_body(response)
            context_id = body.get("contextId") if isinstance(body, dict) else None
            result = PlatformResponse(
                status=response.status_code,
                headers=response.headers,
                body=body,
                correlation_id=_header(response.headers, "ININ-Correlation-Id") or (str(context_id or "") or None),
            )
            self.pacer.observe(response.headers)
            if result.status == 429:
                self.pacer.pause(result.retry_after if result.retry_after is not None else 1.0)
            log.debug(
                "platform call",
                extra={
                    "method": method,
                    "path": path,
                    "status_code": result.status,
                    "correlation_id": result.correlation_id,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            if result.status == 401 and not refreshed:
                used = _bearer(response.request.headers.get("Authorization"))
                if used is not None:
                    self.auth.invalidate(used)
                log.info("platform refused the token, refreshing once", extra={"correlation_id": result.correlation_id})
                continue
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def act(self, target: Target, event: Event, *, pace_timeout: float | None = None) -> PlatformResponse:
        """Perform the target's action (ACTIONS table) for the event."""
        action = ACTIONS.get(target.action)
        if action is None or action.name not in BODIES:
            raise PlatformError(f"route {target.route}: unknown action {target.action!r}", retryable=False)
        ids = {"contact_list_id": target.contact_list_id, "campaign_id": target.campaign_id}
        needed = "campaign_id" if action.subject == "campaign" else "contact_list_id"
        if not ids[needed]:
            raise PlatformError(f"route {target.route}: action {action.name} needs {needed}", retryable=False)
        path = action.path.format(**{k: quote(v or "", safe="") for k, v in ids.items()})
        params = dict(parse_qsl(action.query)) or None
        try:
            body = BODIES[action.name](target, event)
        except ValueError as exc:
            raise PlatformError(f"route {target.route}: {exc}", retryable=False) from None
        return self.request(action.method, path, json=body, params=params, pace_timeout=pace_timeout)

    def token_info(self) -> dict[str, Any]:
        """Return GET /api/v2/tokens/me (organization, OAuthClient with roleDivisions, ...)."""
        response = self.request("GET", "/api/v2/tokens/me")
        if not response.ok or not isinstance(response.body, dict):
            raise PlatformError(
                f"GET /api/v2/tokens/me answered {response.status} {response.error_code or ''}".rstrip()
                + (f": {response.error_message}" if response.error_message else ""),
                retryable=response.status == 429 or response.status >= 500,
            )
        return response.body

    def get_role(self, role_id: str) -> PlatformResponse:
        """Return GET /api/v2/authorization/roles/{role_id}."""
        return self.request("GET", f"/api/v2/authorization/roles/{quote(role_id, safe='')}")

    def get_contact_list(self, contact_list_id: str) -> PlatformResponse:
        """Return GET /api/v2/outbound/contactlists/{id}."""
        return self.request("GET", f"/api/v2/outbound/contactlists/{quote(contact_list_id, safe='')}")

    def get_campaign(self, campaign_id: str) -> PlatformResponse:
        """Return GET /api/v2/outbound/campaigns/{id}."""
        return self.request("GET", f"/api/v2/outbound/campaigns/{quote(campaign_id, safe='')}")

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()
