"""diagnose(): every failure names its cause and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.diagnose import TEXTS, diagnose, explain
from receiver.errors import PlatformError, TokenError
from receiver.model import Target
from receiver.platform import PlatformResponse, PlatformTimeoutError, PlatformTransportError

ADD = Target(
    route="prod-apply-failed",
    action="add_contact",
    division_id="div-ops",
    contact_list_id="cl-oncall",
    contact={"Phone": "+1555", "Reason": "{state}"},
)
TRIGGER = Target(route="prod-trigger", action="trigger", division_id="div-ops", contact_list_id="cl-oncall")
START = Target(route="prod-start", action="start_campaign", division_id="div-home", campaign_id="camp-1")


def answer(status: int, code: str | None = None, message: str | None = None, **headers: str) -> PlatformResponse:
    body: dict[str, Any] = {"status": status}
    if code:
        body["code"] = code
    if message:
        body["message"] = message
    return PlatformResponse(status=status, headers=headers, body=body, correlation_id="corr-42")


@pytest.mark.parametrize(
    "code", ["missing.permissions", "missing.any.permissions", "missing.division.permission", "not.authorized"]
)
def test_403_names_the_permission_and_division(code: str) -> None:
    result = diagnose(ADD, answer(403, code, "You are missing the following permission(s): [outbound:contact:add]"))
    assert result["cause"].startswith("client lacks outbound:contact:add in division div-ops")
    assert code in result["cause"]
    assert "var.routes" in result["fix"] and "division div-ops" in result["fix"] and "terraform apply" in result["fix"]
    assert "scopes do not matter" in result["fix"]


def test_403_on_start_campaign_names_its_own_permission() -> None:
    result = diagnose(START, answer(403, "missing.permissions"))
    assert "outbound:campaign:start in division div-home" in result["cause"]


def test_404_on_trigger_points_to_add_contact() -> None:
    result = diagnose(TRIGGER, answer(404, "not.found"))
    assert "trigger endpoint" in result["cause"] and "not available" in result["cause"]
    assert "/api/v2/outbound/contactlists/cl-oncall/trigger" in result["cause"]
    assert "action: add_contact" in result["fix"] and "prod-trigger" in result["fix"]


def test_404_on_trigger_is_definite_when_the_list_exists() -> None:
    result = diagnose(TRIGGER, answer(404, "not.found"), context={"contact_list_exists": True})
    assert result["cause"].startswith("contact list cl-oncall exists")
    assert "most likely" not in result["cause"]
    assert "action: add_contact" in result["fix"]


@pytest.mark.parametrize(
    ("target", "subject", "field"),
    [(ADD, "contact list cl-oncall", "contact_list_id"), (START, "campaign camp-1", "campaign_id")],
)
def test_404_otherwise_points_to_the_id_and_region(target: Target, subject: str, field: str) -> None:
    result = diagnose(target, answer(404, "not.found"))
    assert subject in result["cause"] and "not found in this org and region" in result["cause"]
    assert field in result["fix"] and "GENESYSCLOUD_REGION" in result["fix"]


@pytest.mark.parametrize("code", ["bad.request", "invalid.value"])
def test_400_on_add_contact_names_the_template(code: str) -> None:
    result = diagnose(ADD, answer(400, code, "'Foo' is not a column"))
    assert "contact data of route prod-apply-failed" in result["cause"] and "'Foo' is not a column" in result["cause"]
    assert "columns: Phone, Reason" in result["fix"] and "cl-oncall" in result["fix"]


def test_400_on_other_actions_points_to_support_with_the_correlation_id() -> None:
    assert "corr-42" in diagnose(START, answer(400, "bad.request"))["fix"]


def test_401_after_refresh_blames_the_credentials() -> None:
    result = diagnose(ADD, answer(401, "bad.credentials"))
    assert "revoked or expired" in result["cause"]
    assert "GENESYSCLOUD_OAUTHCLIENT_ID/SECRET" in result["fix"]


@pytest.mark.parametrize(
    ("error", "fix_needle"),
    [
        (
            TokenError("GENESYSCLOUD_OAUTHCLIENT_ID/SECRET not set", retryable=False, error="not_configured"),
            "set GENESYSCLOUD_OAUTHCLIENT_ID",
        ),
        (
            TokenError("bad client id or secret (…)", retryable=False, status_code=401, error="invalid_client"),
            "Terraform outputs",
        ),
        (
            TokenError(
                "cannot reach login host login.x (wrong GENESYSCLOUD_REGION?)", retryable=True, error="unreachable"
            ),
            "GENESYSCLOUD_REGION",
        ),
        (TokenError("login host login.x did not answer", retryable=True, error="timeout"), "GENESYSCLOUD_REGION"),
        (
            TokenError("token endpoint rate limit exceeded", retryable=True, status_code=400, error="invalid_request"),
            "throttles",
        ),
        (
            TokenError("the OAuth client may not use …", retryable=False, error="unauthorized_client"),
            "CLIENT-CREDENTIALS",
        ),
        (TokenError("token request refused", retryable=False, error="weird"), "GENESYSCLOUD_REGION"),
    ],
)
def test_token_errors(error: TokenError, fix_needle: str) -> None:
    result = diagnose(ADD, None, error=error)
    assert result["cause"] == str(error)
    assert fix_needle in result["fix"]


@pytest.mark.parametrize(
    ("response", "error", "cause_needle", "fix_needle"),
    [
        (answer(503, "service.unavailable", "down"), None, "503 service.unavailable: down", "status page"),
        (
            answer(429, "too.many.requests.retry.after", **{"Retry-After": "30"}),
            None,
            "Retry-After 30s",
            "RECEIVER_RATE_LIMIT_PER_MINUTE",
        ),
        (None, PlatformTimeoutError("POST /x timed out after 10s", maybe_sent=True), "timed out", "REQUEST_TIMEOUT"),
        (None, PlatformTransportError("POST /x: cannot reach api.x", maybe_sent=False), "cannot reach", "DNS"),
    ],
)
def test_retries_exhausted_name_the_last_error(
    response: PlatformResponse | None, error: Exception | None, cause_needle: str, fix_needle: str
) -> None:
    result = diagnose(ADD, response, error=error, context={"attempts": 12})
    assert result["cause"].startswith("gave up after 12 attempts: last error: ")
    assert cause_needle in result["cause"] and fix_needle in result["fix"]


def test_ambiguous_not_retried_says_the_platform_may_have_acted() -> None:
    error = PlatformTimeoutError("POST /x timed out after 10s", maybe_sent=True)
    result = diagnose(TRIGGER, None, error=error, context={"ambiguous_not_retried": "not idempotent"})
    assert "may have acted" in result["cause"] and "not idempotent" in result["cause"]
    assert "replay" in result["fix"]


def test_permanent_local_errors_point_to_the_mapping() -> None:
    result = diagnose(ADD, None, error=PlatformError("route r: unknown action 'x'", retryable=False))
    assert result["cause"] == "route r: unknown action 'x'" and "check-mapping" in result["fix"]


def test_unexpected_statuses_and_errors_still_get_an_explanation() -> None:
    assert "418" in diagnose(ADD, answer(418, "teapot"))["cause"]
    assert diagnose(ADD, None, error=RuntimeError("boom"))["cause"] == "boom"
    assert diagnose(ADD, None)["cause"] == "no answer from the platform"


def test_explain_fills_every_text_without_crashing() -> None:
    for name in TEXTS:
        result = explain(name, route="r", permission="p", division_id="d")
        assert result["cause"] and result["fix"]
