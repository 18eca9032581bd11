"""Standard Webhooks source: the signature check through the module, and pipedial's own event format."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.errors import PayloadError, SignatureError
from receiver.model import STATES
from receiver.sources import standard
from receiver.sources._common import load_schema
from receiver.verify import standard_signature
from tests.sources import JSON_VALUES, flip_byte, lowered, signed_example

BODY, HEADERS, SECRET = signed_example("standard")
NOW = int(HEADERS["webhook-timestamp"])

FULL = {
    "state": "failed",
    "kind": "deploy.finished",
    "organization": "acme",
    "workspace": "prod-network",
    "project": "platform",
    "repository": "acme/network",
    "branch": "main",
    "environment": "production",
    "run_id": "4711",
    "url": "https://ci.example.com/runs/4711",
    "actor": "deploy-bot",
    "message": "terraform apply failed: 3 errors",
    "occurred_at": "2024-05-01T12:00:00Z",
}


# --- verify --------------------------------------------------------------------------------------


def test_signed_example_verifies_with_a_frozen_clock() -> None:
    standard.verify(BODY, lowered(HEADERS), [SECRET], now=NOW)
    standard.verify(BODY, {k.upper(): v for k, v in HEADERS.items()}, [SECRET], now=NOW)


def test_signed_example_is_refused_once_stale() -> None:
    with pytest.raises(SignatureError, match="in the past"):
        standard.verify(BODY, lowered(HEADERS), [SECRET], now=NOW + 301)


def test_one_byte_changed_in_the_body_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        standard.verify(flip_byte(BODY), lowered(HEADERS), [SECRET], now=NOW)


def test_a_body_in_pipedials_format_signs_and_verifies() -> None:
    body = json.dumps(FULL).encode()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": ""}
    headers["webhook-signature"] = standard_signature(SECRET, "msg_1", NOW, body)
    standard.verify(body, headers, ["whsec_b3RoZXIta2V5", SECRET], now=NOW)
    assert standard.parse(json.loads(body), headers).state == "failed"


# --- parse ---------------------------------------------------------------------------------------


def test_every_field_is_carried_over() -> None:
    event = standard.parse(FULL, {"webhook-id": "msg_1"})
    assert event.source == "standard"
    assert event.delivery_id == "msg_1"
    assert {k: v for k, v in event.to_dict().items() if k in FULL} == FULL


def test_state_alone_is_enough_and_kind_defaults_to_standard() -> None:
    event = standard.parse({"state": "drifted"}, {})
    assert (event.kind, event.state, event.delivery_id, event.message) == ("standard", "drifted", None, None)


def test_null_and_empty_fields_are_absent() -> None:
    event = standard.parse({"state": "running", "kind": None, "message": "", "branch": None}, {})
    assert (event.kind, event.message, event.branch) == ("standard", None, None)


@pytest.mark.parametrize("state", STATES)
def test_every_state_is_accepted(state: str) -> None:
    assert standard.parse({"state": state}, {}).state == state


def test_schema_states_are_the_models_states() -> None:
    assert tuple(load_schema("standard")["properties"]["state"]["enum"]) == STATES


@pytest.mark.parametrize(
    ("payload", "json_path", "message"),
    [
        ({}, "$", "'state' is a required property"),
        ({"state": "exploded"}, "$.state", "is not one of"),
        ({"state": "failed", "severity": "high"}, "$", "Additional properties are not allowed"),
        ({"state": "failed", "message": "m" * 1001}, "$.message", "is too long"),
        ({"state": "failed", "workspace": "w" * 257}, "$.workspace", "is too long"),
        ({"state": "failed", "run_id": 4711}, "$.run_id", "is not of type"),
        ({"state": "failed", "occurred_at": "yesterday"}, "$.occurred_at", "does not match"),
        ({"state": "failed", "occurred_at": "2024-05-01T12:00:00"}, "$.occurred_at", "does not match"),
        (["failed"], "$", "is not of type 'object'"),
    ],
)
def test_invalid_bodies_are_refused_with_their_path(payload: Any, json_path: str, message: str) -> None:
    with pytest.raises(PayloadError, match=message) as info:
        standard.parse(payload, {})
    assert info.value.json_path == json_path


@pytest.mark.parametrize(
    "occurred_at", ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123+02:00", "2024-05-01 12:00:00z"]
)
def test_rfc3339_timestamps_are_accepted(occurred_at: str) -> None:
    assert standard.parse({"state": "failed", "occurred_at": occurred_at}, {}).occurred_at == occurred_at


def test_an_error_quoting_a_huge_value_is_cut_short() -> None:
    with pytest.raises(PayloadError) as info:
        standard.parse({"state": "x" * 100_000}, {})
    assert len(info.value.message) < 500


# --- dedupe --------------------------------------------------------------------------------------


def test_the_webhook_id_is_the_dedupe_key() -> None:
    first = standard.parse({"state": "failed"}, {"webhook-id": "msg_1"})
    retry = standard.parse({"state": "failed", "message": "retried"}, {"webhook-id": "msg_1"})
    other = standard.parse({"state": "failed"}, {"webhook-id": "msg_2"})
    assert first.dedupe_key == retry.dedupe_key != other.dedupe_key
    assert "msg_1" not in first.dedupe_key  # hashed


def test_without_a_webhook_id_the_body_is_the_key() -> None:
    one = standard.parse({"state": "failed", "run_id": "1"}, {})
    assert one.dedupe_key == standard.parse({"run_id": "1", "state": "failed"}, {}).dedupe_key
    assert one.dedupe_key != standard.parse({"state": "failed", "run_id": "2"}, {}).dedupe_key


# --- hostile input -------------------------------------------------------------------------------


@settings(max_examples=100)
@given(JSON_VALUES)
def test_random_json_raises_only_payload_error(payload: object) -> None:
    try:
        standard.parse(payload, {})
    except PayloadError:
        pass


@settings(max_examples=100)
@given(
    st.fixed_dictionaries(
        {"state": st.sampled_from(STATES)}, optional={k: st.text(max_size=300) for k in FULL if k != "state"}
    )
)
def test_valid_bodies_always_normalize_to_bounded_text(payload: dict[str, str]) -> None:
    try:
        event = standard.parse(payload, {"webhook-id": "msg_1"})
    except PayloadError:
        return  # e.g. an occurred_at that is not RFC 3339, or a field over its limit
    assert event.state == payload["state"]
    for value in event.to_dict().values():
        assert value is None or (isinstance(value, str) and "\x00" not in value and len(value) <= 1000)
        if value is not None:
            value.encode("utf-8")  # storable: no lone surrogate survives
