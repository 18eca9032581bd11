"""The platform client: token caching and refresh, errors, pacing feedback, action bodies; no secret in logs."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from receiver.actions import ACTIONS
from receiver.config import Settings
from receiver.contact import contact_id
from receiver.errors import PlatformError, TokenError
from receiver.model import Event, Target
from receiver.pacing import Pacer
from receiver.platform import (
    BODIES,
    ClientCredentialsAuth,
    PlatformClient,
    PlatformResponse,
    PlatformTimeoutError,
    PlatformTransportError,
    parse_retry_after,
)

API = "https://api.test.example"
LOGIN = "https://login.test.example"
TOKEN_URL = f"{LOGIN}/oauth/token"
SECRET = "s3cr3t-client-secret-value"
SETTINGS = Settings(client_id="client-1", client_secret=SECRET, api_url=API, request_timeout=7.5)
EVENT = Event(
    source="hcp-terraform",
    kind="run:errored",
    state="failed",
    dedupe_key="nc-1:run-1:errored",
    delivery_id="d-1",
    workspace="prod-network",
    run_id="run-1",
    message="apply failed",
)
ADD = Target(
    route="prod",
    action="add_contact",
    division_id="div-ops",
    contact_list_id="cl-oncall",
    contact={"Phone": "+15550100", "Reason": "{state}: {message}"},
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class TokenServer:
    """A responses callback issuing numbered tokens."""

    def __init__(self, expires_in: float = 86400, delay: float = 0.0) -> None:
        self.issued: list[str] = []
        self.expires_in = expires_in
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            token = f"tok-{len(self.issued) + 1}-abcdef"
            self.issued.append(token)
        return 200, {}, json.dumps({"access_token": token, "token_type": "bearer", "expires_in": self.expires_in})


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def client(settings: Settings = SETTINGS, **kwargs: Any) -> PlatformClient:
    clock = FakeClock()
    kwargs.setdefault("pacer", Pacer(0, clock=clock, sleep=clock.sleep))
    return PlatformClient(settings, **kwargs)


def bearer(call: Any) -> str:
    return str(call.request.headers["Authorization"])


# --- token ---------------------------------------------------------------------------------------


def test_token_is_fetched_once_and_cached(rsps: responses.RequestsMock) -> None:
    tokens = TokenServer()
    rsps.add_callback(responses.POST, TOKEN_URL, callback=tokens)
    rsps.get(f"{API}/api/v2/tokens/me", json={"organization": {"id": "org"}})
    c = client()
    c.token_info()
    c.token_info()
    assert tokens.issued == ["tok-1-abcdef"]
    api_calls = [call for call in rsps.calls if call.request.url.startswith(API)]
    assert [bearer(call) for call in api_calls] == ["Bearer tok-1-abcdef"] * 2


def test_token_request_uses_basic_auth_and_the_client_credentials_form(rsps: responses.RequestsMock) -> None:
    rsps.post(
        TOKEN_URL,
        json={"access_token": "t", "expires_in": 100},
        match=[
            matchers.header_matcher({"Authorization": requests.auth._basic_auth_str("client-1", SECRET)}),
            matchers.urlencoded_params_matcher({"grant_type": "client_credentials"}),
        ],
    )
    assert ClientCredentialsAuth(SETTINGS).token() == "t"


def test_one_token_request_under_8_concurrent_threads(rsps: responses.RequestsMock) -> None:
    tokens = TokenServer(delay=0.1)
    rsps.add_callback(responses.POST, TOKEN_URL, callback=tokens)
    rsps.get(f"{API}/api/v2/tokens/me", json={})
    c = client()
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def call() -> None:
        barrier.wait()
        try:
            c.request("GET", "/api/v2/tokens/me")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(tokens.issued) == 1


def test_threads_waiting_on_a_failing_token_request_share_its_error(rsps: responses.RequestsMock) -> None:
    def slow_failure(request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(0.2)
        return 503, {}, "{}"

    rsps.add_callback(responses.POST, TOKEN_URL, callback=slow_failure)
    auth = ClientCredentialsAuth(SETTINGS)
    barrier = threading.Barrier(8)
    errors: list[TokenError] = []

    def call() -> None:
        barrier.wait()
        try:
            auth.token()
        except TokenError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 8 and all(e.retryable for e in errors)
    assert len(rsps.calls) < 8


@pytest.mark.parametrize(
    ("expires_in", "margin", "kept"),
    [(86400, 60, 86340), (300, 60, 240), (60, 60, 48), (10, 60, 8)],
)
def test_token_is_refreshed_before_it_expires(
    rsps: responses.RequestsMock, expires_in: float, margin: float, kept: float
) -> None:
    tokens = TokenServer(expires_in=expires_in)
    rsps.add_callback(responses.POST, TOKEN_URL, callback=tokens)
    clock = FakeClock()
    auth = ClientCredentialsAuth(SETTINGS.replace(token_refresh_margin=margin), clock=clock)
    auth.token()
    clock.now += kept - 0.5
    auth.token()
    assert len(tokens.issued) == 1
    clock.now += 1.0
    auth.token()
    assert len(tokens.issued) == 2


def test_invalidate_only_forgets_the_refused_token(rsps: responses.RequestsMock) -> None:
    tokens = TokenServer()
    rsps.add_callback(responses.POST, TOKEN_URL, callback=tokens)
    auth = ClientCredentialsAuth(SETTINGS)
    first = auth.token()
    auth.invalidate("some-older-token")
    assert auth.token() == first
    auth.invalidate(first)
    assert auth.token() != first
    assert len(tokens.issued) == 2


def test_401_refreshes_the_token_and_retries_once(rsps: responses.RequestsMock) -> None:
    tokens = TokenServer()
    rsps.add_callback(responses.POST, TOKEN_URL, callback=tokens)
    me = f"{API}/api/v2/tokens/me"
    rsps.get(me, status=401, json={"code": "credentials.expired", "status": 401})
    rsps.get(me, json={"organization": {}})
    assert client().token_info() == {"organization": {}}
    api = [bearer(call) for call in rsps.calls if call.request.url == me]
    assert api == ["Bearer tok-1-abcdef", "Bearer tok-2-abcdef"]


def test_a_second_401_is_returned_as_is(rsps: responses.RequestsMock) -> None:
    tokens = TokenServer()
    rsps.add_callback(responses.POST, TOKEN_URL, callback=tokens)
    path = "/api/v2/outbound/contactlists/cl-1"
    rsps.get(f"{API}{path}", status=401, json={"code": "bad.credentials", "message": "Invalid login credentials."})
    result = client().get_contact_list("cl-1")
    assert result.status == 401 and result.error_code == "bad.credentials"
    assert len([c for c in rsps.calls if c.request.url.startswith(API)]) == 2
    assert len(tokens.issued) == 2


def test_every_request_carries_the_timeout(rsps: responses.RequestsMock) -> None:
    tokens = TokenServer()
    rsps.add_callback(responses.POST, TOKEN_URL, callback=tokens)
    rsps.post(f"{API}/api/v2/outbound/contactlists/cl-oncall/contacts", json=[{}])
    rsps.get(f"{API}/api/v2/outbound/campaigns/c-1", json={})
    c = client()
    c.act(ADD, EVENT)
    c.get_campaign("c-1")
    c.request("GET", "/api/v2/outbound/campaigns/c-1", timeout=1.5)
    timeouts = [call.request.req_kwargs["timeout"] for call in rsps.calls]
    assert timeouts == [7.5, 7.5, 7.5, 1.5]


@pytest.mark.parametrize(
    ("status", "body", "needle", "retryable"),
    [
        (401, {"error": "invalid_client", "description": "authentication failed"}, "bad client id or secret", False),
        (400, {"error": "invalid_client", "description": "client not found"}, "bad client id or secret", False),
        (400, {"error": "invalid_request", "error_description": "rate limit exceeded"}, "rate limit exceeded", True),
        (400, {"error": "unauthorized_client"}, "client-credentials grant", False),
        (503, None, "token endpoint unavailable", True),
        (429, None, "token endpoint unavailable", True),
        (200, {"token_type": "bearer"}, "without an access token", False),
        (400, {"error": "unsupported_grant_type"}, "token request refused", False),
    ],
)
def test_token_errors_say_which(
    rsps: responses.RequestsMock, status: int, body: Any, needle: str, retryable: bool
) -> None:
    rsps.post(TOKEN_URL, status=status, json=body)
    with pytest.raises(TokenError) as info:
        client().token_info()
    assert needle in str(info.value)
    assert info.value.retryable is retryable
    assert info.value.http_status == status


def test_unreachable_login_host_names_the_host_and_region(rsps: responses.RequestsMock) -> None:
    rsps.post(TOKEN_URL, body=requests.ConnectionError("Failed to resolve 'login.test.example' NameResolutionError"))
    with pytest.raises(TokenError) as info:
        client().token_info()
    message = str(info.value)
    assert "cannot reach login host login.test.example (wrong GENESYSCLOUD_REGION?)" in message
    assert "DNS" in message
    assert info.value.retryable and info.value.error == "unreachable"


def test_login_timeout_is_retryable(rsps: responses.RequestsMock) -> None:
    rsps.post(TOKEN_URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(TokenError) as info:
        client().token_info()
    assert info.value.retryable and info.value.error == "timeout"


def test_missing_credentials_fail_without_a_request(rsps: responses.RequestsMock) -> None:
    with pytest.raises(TokenError) as info:
        client(SETTINGS.replace(client_secret=None)).token_info()
    assert str(info.value) == "GENESYSCLOUD_OAUTHCLIENT_ID/SECRET not set"
    assert info.value.retryable is False
    assert len(rsps.calls) == 0


def test_region_selects_the_api_and_login_hosts(rsps: responses.RequestsMock) -> None:
    settings = Settings(region="eu-west-1", client_id="c", client_secret=SECRET)
    rsps.post("https://login.mypurecloud.ie/oauth/token", json={"access_token": "t", "expires_in": 600})
    rsps.get("https://api.mypurecloud.ie/api/v2/tokens/me", json={"ok": True})
    assert client(settings).token_info() == {"ok": True}


# --- transport and responses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "cls", "timed_out", "maybe_sent"),
    [
        (requests.ReadTimeout("read timed out"), PlatformTimeoutError, True, True),
        (requests.ConnectTimeout("connect timed out"), PlatformTimeoutError, True, False),
        (requests.ConnectionError("Connection aborted. RemoteDisconnected"), PlatformTransportError, False, True),
    ],
)
def test_transport_errors_are_retryable_platform_errors(
    rsps: responses.RequestsMock, exc: Exception, cls: type, timed_out: bool, maybe_sent: bool
) -> None:
    rsps.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
    rsps.post(f"{API}/api/v2/outbound/contactlists/cl-oncall/contacts", body=exc)
    with pytest.raises(PlatformError) as info:
        client().act(ADD, EVENT)
    err = info.value
    assert type(err) is cls and err.retryable
    assert isinstance(err, PlatformTransportError)
    assert err.timed_out is timed_out and err.maybe_sent is maybe_sent
    if timed_out:
        assert "timed out after 7.5s" in str(err)


def test_error_body_and_correlation_id_are_exposed(rsps: responses.RequestsMock) -> None:
    rsps.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
    body = {
        "status": 403,
        "code": "missing.permissions",
        "message": "missing [outbound:contact:add]",
        "contextId": "ctx",
    }
    rsps.post(
        f"{API}/api/v2/outbound/contactlists/cl-oncall/contacts",
        status=403,
        json=body,
        headers={"ININ-Correlation-Id": "corr-1"},
    )
    result = client().act(ADD, EVENT)
    assert (result.status, result.error_code, result.correlation_id) == (403, "missing.permissions", "corr-1")
    assert result.error_message == "missing [outbound:contact:add]" and result.context_id == "ctx"
    assert not result.ok


def test_correlation_id_falls_back_to_context_id(rsps: responses.RequestsMock) -> None:
    rsps.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
    rsps.get(f"{API}/api/v2/outbound/campaigns/x", status=404, json={"code": "not.found", "contextId": "ctx-9"})
    assert client().get_campaign("x").correlation_id == "ctx-9"


def test_non_json_body_is_none(rsps: responses.RequestsMock) -> None:
    rsps.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
    rsps.get(f"{API}/api/v2/outbound/campaigns/x", status=502, body="<html>bad gateway</html>")
    result = client().get_campaign("x")
    assert result.body is None and result.error_code is None


def test_429_pauses_the_pacer_for_retry_after(rsps: responses.RequestsMock) -> None:
    rsps.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
    rsps.get(
        f"{API}/api/v2/outbound/campaigns/x",
        status=429,
        json={"code": "too.many.requests.retry.after"},
        headers={"Retry-After": "7"},
    )
    clock = FakeClock()
    pacer = Pacer(300, clock=clock, sleep=clock.sleep)
    result = client(pacer=pacer).get_campaign("x")
    assert result.status == 429 and result.retry_after == 7.0
    assert pacer.ready_in() == pytest.approx(7.0)


def test_rate_limit_headers_reach_the_pacer(rsps: responses.RequestsMock) -> None:
    seen: list[dict[str, str]] = []

    class SpyPacer(Pacer):
        def observe(self, headers: Any) -> None:
            seen.append(dict(headers))
            super().observe(headers)

    rsps.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
    headers = {"inin-ratelimit-allowed": "300", "inin-ratelimit-count": "300", "inin-ratelimit-reset": "9"}
    rsps.get(f"{API}/api/v2/outbound/campaigns/x", json={}, headers=headers)
    clock = FakeClock()
    pacer = SpyPacer(300, clock=clock, sleep=clock.sleep)
    client(pacer=pacer).get_campaign("x")
    assert seen and seen[0]["inin-ratelimit-count"] == "300"
    assert pacer.ready_in() == pytest.approx(9.0)


def test_every_request_waits_for_the_pacer(rsps: responses.RequestsMock) -> None:
    rsps.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
    rsps.get(f"{API}/api/v2/outbound/campaigns/x", json={})
    clock = FakeClock()
    pacer = Pacer(300, clock=clock, sleep=clock.sleep)
    c = client(pacer=pacer)
    for _ in range(pacer.burst + 2):
        c.get_campaign("x")
    assert clock.now > 100.0


def test_parse_retry_after_accepts_seconds_and_dates() -> None:
    assert parse_retry_after("42") == 42.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412480.0 - 10) == pytest.approx(10)


# --- actions -------------------------------------------------------------------------------------


def test_every_action_has_a_body_builder() -> None:
    assert set(BODIES) == set(ACTIONS)


def test_add_contact_posts_one_writable_contact_with_priority(rsps: responses.RequestsMock) -> None:
    rsps.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
    expected = [
        {
            "id": contact_id(ADD, EVENT),
            "contactListId": "cl-oncall",
            "data": {"Phone": "+15550100", "Reason": "failed: apply failed"},
            "callable": True,
        }
    ]
    rsps.post(
        f"{API}/api/v2/outbound/contactlists/cl-oncall/contacts",
        json=[{"id": "x"}],
        match=[matchers.query_param_matcher({"priority": "true"}), matchers.json_params_matcher(expected)],
    )
    c = client()
    assert c.act(ADD, EVENT).status == 200
    assert c.act(ADD, EVENT).status == 200  # a retry sends the same contact id: an upsert


def test_trigger_posts_a_small_event_description(rsps: responses.RequestsMock) -> None:
    target = Target(route="prod", action="trigger", division_id="div-ops", contact_list_id="cl-oncall")
    rsps.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
    rsps.post(f"{API}/api/v2/outbound/contactlists/cl-oncall/trigger", status=202, json={})
    client().act(target, EVENT)
    sent = json.loads(rsps.calls[-1].request.body)
    assert sent["source"] == "hcp-terraform" and sent["kind"] == "run:errored" and sent["state"] == "failed"
    assert sent["dedupeKey"] == EVENT.dedupe_key and sent["deliveryId"] == "d-1"
    assert sent["workspace"] == "prod-network" and sent["runId"] == "run-1" and sent["id"] == contact_id(target, EVENT)
    assert "repository" not in sent


def test_start_campaign_posts_an_empty_body(rsps: responses.RequestsMock) -> None:
    target = Target(route="prod", action="start_campaign", division_id="div-ops", campaign_id="camp/1")
    rsps.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
    rsps.post(f"{API}/api/v2/outbound/campaigns/camp%2F1/start", json={"campaignStatus": "on"})
    assert client().act(target, EVENT).ok
    assert rsps.calls[-1].request.body is None


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        (Target(route="r", action="dial", division_id="d", contact_list_id="c"), "unknown action"),
        (Target(route="r", action="add_contact", division_id="d"), "needs contact_list_id"),
        (Target(route="r", action="start_campaign", division_id="d", contact_list_id="c"), "needs campaign_id"),
        (
            Target(route="r", action="add_contact", division_id="d", contact_list_id="c", contact={"A": "{bad}"}),
            "unknown placeholder",
        ),
    ],
)
def test_unusable_targets_are_permanent_errors(rsps: responses.RequestsMock, target: Target, needle: str) -> None:
    with pytest.raises(PlatformError) as info:
        client().act(target, EVENT)
    assert needle in str(info.value) and not info.value.retryable
    assert len(rsps.calls) == 0


def test_token_info_raises_on_an_error_answer(rsps: responses.RequestsMock) -> None:
    rsps.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
    rsps.get(f"{API}/api/v2/tokens/me", status=503, json={"code": "service.unavailable", "message": "down"})
    with pytest.raises(PlatformError, match="503 service.unavailable: down") as info:
        client().token_info()
    assert info.value.retryable


def test_platform_response_helpers_tolerate_non_dict_bodies() -> None:
    r = PlatformResponse(status=200, headers={"retry-after": "3"}, body=[1, 2], correlation_id=None)
    assert r.ok and r.error_code is None and r.error_message is None and r.retry_after == 3.0


# --- secrets never logged ------------------------------------------------------------------------


def test_no_secret_token_or_authorization_reaches_the_logs(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = TokenServer()
    rsps.add_callback(responses.POST, TOKEN_URL, callback=tokens)
    me = f"{API}/api/v2/tokens/me"
    rsps.get(me, status=401, json={"code": "credentials.expired"})
    rsps.get(me, json={})
    c = client()
    c.token_info()
    bad = client(SETTINGS.replace(api_url="https://api.other.example"))
    rsps.post("https://login.other.example/oauth/token", status=401, json={"error": "invalid_client"})
    with pytest.raises(TokenError):
        bad.token_info()
    assert caplog.records
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for forbidden in [SECRET, "Authorization", "Bearer", "Basic ", *tokens.issued]:
        assert forbidden not in text
    assert "secret" not in repr(c.auth).lower()


# --- over real HTTP, against the sandbox platform ----------------------------------------------


def test_sandbox_token_refresh_after_tokens_expire() -> None:
    from receiver.sandbox import SandboxServer
    from tests.helpers.sandbox import CLIENT_ID, CLIENT_SECRET, sandbox_config

    with SandboxServer(sandbox_config()) as sb:
        settings = Settings(
            api_url=sb.url, login_url=sb.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, request_timeout=5
        )
        c = PlatformClient(settings)
        assert c.token_info()["OAuthClient"]["id"] == CLIENT_ID
        assert requests.post(f"{sb.url}/sandbox/expire-tokens", timeout=5).ok
        assert c.token_info()["OAuthClient"]["id"] == CLIENT_ID
        assert c.auth.fetches == 2
        log = [
            (r["method"], r["path"], r["status"]) for r in requests.get(f"{sb.url}/sandbox/requests", timeout=5).json()
        ]
        me = ("GET", "/api/v2/tokens/me")
        assert log == [
            ("POST", "/oauth/token", 200),
            (*me, 200),
            (*me, 401),
            ("POST", "/oauth/token", 200),
            (*me, 200),
        ]


def test_sandbox_rejects_a_wrong_secret_with_a_clear_message() -> None:
    from receiver.sandbox import SandboxServer
    from tests.helpers.sandbox import CLIENT_ID, sandbox_config

    with SandboxServer(sandbox_config()) as sb:
        settings = Settings(api_url=sb.url, login_url=sb.url, client_id=CLIENT_ID, client_secret="wrong")
        with pytest.raises(TokenError, match="bad client id or secret") as info:
            PlatformClient(settings).token_info()
        assert not info.value.retryable


def test_unreachable_login_host_over_real_http() -> None:
    from tests.helpers.receiver import free_port

    url = f"http://127.0.0.1:{free_port()}"
    settings = Settings(api_url=url, login_url=url, client_id="c", client_secret=SECRET, request_timeout=2)
    with pytest.raises(TokenError, match="cannot reach login host 127.0.0.1") as info:
        PlatformClient(settings).token_info()
    assert info.value.retryable


def test_session_reads_proxies_once_and_keeps_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy environment is resolved when the client is built, then not re-read per call."""
    from receiver.platform import platform_session

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = platform_session(Settings(api_url="https://api.example.test"))
    assert session.trust_env is False
    assert session.proxies.get("https") == "http://proxy.example:3128"


def test_session_keeps_per_call_behaviour_when_hosts_need_different_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    from receiver.platform import platform_session

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "login.example.test")
    session = platform_session(Settings(api_url="https://api.example.test"))
    assert session.trust_env is True
