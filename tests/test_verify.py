"""Signature primitives: HMAC hex, shared tokens and Standard Webhooks, against the official vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.errors import SignatureError
from receiver.verify import (
    TOLERANCE,
    hmac_hex,
    standard_key,
    standard_signature,
    usable_secrets,
    verify_hmac_hex,
    verify_standard,
    verify_token,
)
from tests.sources import flip_byte, flip_char, load, signed_example

VECTORS = load("standard", "test-vectors.json")
GITHUB_VECTOR = load("github", "signature-test-vector.json")


# --- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("secrets", [[], [""], ["", "   "], ["\t\n"]])
def test_blank_secrets_are_refused(secrets: list[str]) -> None:
    with pytest.raises(SignatureError, match="no usable secret"):
        usable_secrets(secrets)


def test_blank_secrets_are_dropped_next_to_real_ones() -> None:
    assert usable_secrets(["", "real", " "]) == ["real"]


def test_a_signature_made_with_an_empty_key_never_verifies() -> None:
    body = b'{"a": 1}'
    forged = hmac.new(b"", body, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError, match="no usable secret"):
        verify_hmac_hex(body, forged, [""], algorithm="sha256", header="X-Sig")
    with pytest.raises(SignatureError, match="does not match"):
        verify_hmac_hex(body, forged, ["", "real"], algorithm="sha256", header="X-Sig")


# --- HMAC hex ------------------------------------------------------------------------------------


def test_github_signature_test_vector() -> None:
    body = GITHUB_VECTOR["payload"].encode()
    assert hmac_hex(GITHUB_VECTOR["secret"], body, "sha256") == GITHUB_VECTOR["expected_hex"]
    verify_hmac_hex(
        body,
        GITHUB_VECTOR["expected_X-Hub-Signature-256"],
        [GITHUB_VECTOR["secret"]],
        algorithm="sha256",
        header="X-Hub-Signature-256",
        prefix="sha256=",
    )


def _hex_args(signature: str | None, secrets: list[str] | None = None) -> None:
    verify_hmac_hex(
        GITHUB_VECTOR["payload"].encode(),
        signature,
        secrets or [GITHUB_VECTOR["secret"]],
        algorithm="sha256",
        header="X-Hub-Signature-256",
        prefix="sha256=",
    )


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (None, "missing X-Hub-Signature-256 header"),
        ("", "malformed"),
        ("sha256=", "malformed"),
        ("sha256", "malformed"),
        ("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "malformed"),  # no prefix
        ("sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "malformed"),
        ("sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17", "malformed"),  # strict case
        ("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1", "malformed"),  # short
        ("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e177", "malformed"),  # long
        (" sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "malformed"),
        ("sha256=٧٥٧107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "malformed"),  # non-ASCII digits
        ("sha256=ü57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "malformed"),
        ("sha256=857107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "does not match"),
    ],
)
def test_bad_hex_signatures_are_refused_with_the_reason(signature: str | None, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        _hex_args(signature)


def test_hex_check_accepts_any_of_several_secrets() -> None:
    _hex_args(GITHUB_VECTOR["expected_X-Hub-Signature-256"], ["old-secret", GITHUB_VECTOR["secret"]])
    _hex_args(GITHUB_VECTOR["expected_X-Hub-Signature-256"], [GITHUB_VECTOR["secret"], "new-secret"])


def test_hex_errors_never_reveal_the_secret_or_the_expected_signature() -> None:
    with pytest.raises(SignatureError) as info:
        _hex_args("sha256=" + "0" * 64)
    assert GITHUB_VECTOR["secret"] not in str(info.value)
    assert GITHUB_VECTOR["expected_hex"] not in str(info.value)


def test_hex_check_with_sha512_and_no_prefix() -> None:
    body, headers, secret = signed_example("hcp-terraform")
    signature = headers["X-TFE-Notification-Signature"]
    verify_hmac_hex(body, signature, [secret], algorithm="sha512", header="X")
    with pytest.raises(SignatureError, match="does not match"):
        verify_hmac_hex(flip_byte(body), signature, [secret], algorithm="sha512", header="X")
    with pytest.raises(SignatureError, match="does not match"):
        verify_hmac_hex(body, flip_char(signature), [secret], algorithm="sha512", header="X")


# --- shared token --------------------------------------------------------------------------------


def test_token_matches_one_of_the_secrets() -> None:
    verify_token("second", ["first", "second"], header="X-Gitlab-Token")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "missing X-Gitlab-Token"),
        ("", "empty X-Gitlab-Token"),
        ("secon", "does not match"),
        ("Second", "does not match"),
    ],
)
def test_token_mismatches_are_refused(token: str | None, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify_token(token, ["first", "second"], header="X-Gitlab-Token")


def test_non_ascii_token_matches_as_text_and_as_wsgi_latin1() -> None:
    secret = "clé-sécrète-€"
    verify_token(secret, [secret], header="X-Gitlab-Token")
    as_wsgi = secret.encode("utf-8").decode("latin-1")  # what a WSGI server hands over
    verify_token(as_wsgi, [secret], header="X-Gitlab-Token")
    with pytest.raises(SignatureError):
        verify_token("cle-secrete-E", [secret], header="X-Gitlab-Token")


@pytest.mark.parametrize("secret", ["s\udcff", "s\ud800"])
def test_secrets_with_surrogates_from_the_environment_are_usable(secret: str) -> None:
    body = b"{}"
    verify_hmac_hex(body, hmac_hex(secret, body, "sha256"), [secret], algorithm="sha256", header="X")
    verify_token(secret, [secret], header="X-Gitlab-Token")
    with pytest.raises(SignatureError):
        verify_token("s", [secret], header="X-Gitlab-Token")


def test_token_check_refuses_blank_secrets_even_for_an_empty_header() -> None:
    with pytest.raises(SignatureError, match="no usable secret"):
        verify_token("", ["", " "], header="X-Gitlab-Token")


# --- Standard Webhooks: official vectors ---------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["positive"], ids=lambda v: v["name"])
def test_official_positive_vectors_sign_and_verify(vector: dict[str, object]) -> None:
    secret, msg_id, timestamp, payload = (
        str(vector["secret"]),
        str(vector["id"]),
        int(str(vector["timestamp"])),
        str(vector["payload"]).encode(),
    )
    assert standard_signature(secret, msg_id, timestamp, payload) == vector["expected_signature"]
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": vector["expected_signature"],
    }
    verify_standard(payload, headers, [secret], now=timestamp)


@pytest.mark.parametrize("vector", VECTORS["negative"], ids=lambda v: v["name"])
def test_official_negative_vectors_are_refused(vector: dict[str, object]) -> None:
    now = 1_700_000_000
    headers = {
        "webhook-id": str(vector["id"]),
        "webhook-timestamp": str(now),
        "webhook-signature": str(vector["bad_signature"]),
    }
    with pytest.raises(SignatureError, match="does not match"):
        verify_standard(str(vector["payload"]).encode(), headers, [str(vector["secret"])], now=now)


def test_python_negative_vector_differs_from_the_good_signature_by_one_character() -> None:
    good = VECTORS["positive"][0]
    bad = VECTORS["negative"][1]
    headers = {
        "webhook-id": good["id"],
        "webhook-timestamp": str(good["timestamp"]),
        "webhook-signature": bad["bad_signature"],
    }
    with pytest.raises(SignatureError, match="does not match"):
        verify_standard(good["payload"].encode(), headers, [bad["secret"]], now=good["timestamp"])


def test_multi_signature_header_with_decoys_verifies() -> None:
    vector = VECTORS["positive"][0]
    decoys = VECTORS["multi_signature_header_example"]["decoys"]
    header = " ".join([decoys[0], decoys[1], vector["expected_signature"], decoys[0]])
    headers = {"webhook-id": vector["id"], "webhook-timestamp": str(vector["timestamp"]), "webhook-signature": header}
    verify_standard(vector["payload"].encode(), headers, [vector["secret"]], now=vector["timestamp"])


def test_only_other_signature_versions_is_malformed() -> None:
    vector = VECTORS["positive"][0]
    headers = {
        "webhook-id": vector["id"],
        "webhook-timestamp": str(vector["timestamp"]),
        "webhook-signature": vector["expected_signature"].replace("v1,", "v2,"),
    }
    with pytest.raises(SignatureError, match="no 'v1,<base64>' entry"):
        verify_standard(vector["payload"].encode(), headers, [vector["secret"]], now=vector["timestamp"])


@pytest.mark.parametrize("secret", VECTORS["secret_padding_cases"]["secrets"])
def test_unpadded_secrets_decode_like_the_reference_library(secret: str) -> None:
    reference = base64.b64decode(secret + "==")  # what standardwebhooks' Python library does
    assert standard_key(secret) == reference
    assert standard_key("whsec_" + secret) == reference
    body, headers = b'{"test": 2432232314}', {"webhook-id": "msg_1", "webhook-timestamp": "1000"}
    headers["webhook-signature"] = standard_signature(secret, "msg_1", 1000, body)
    verify_standard(body, headers, ["whsec_" + secret], now=1000)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_===", "whsec_not base64!", "whsec_A", ""])
def test_secrets_that_are_not_standard_keys_are_refused(secret: str) -> None:
    assert standard_key(secret) is None
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1000", "webhook-signature": "v1,AAAA"}
    with pytest.raises(SignatureError, match="secret"):
        verify_standard(b"{}", headers, [secret], now=1000)


# --- Standard Webhooks: the signed example, build one and break one ------------------------------


EXAMPLE_BODY, EXAMPLE_HEADERS, EXAMPLE_SECRET = signed_example("standard")
EXAMPLE_NOW = int(EXAMPLE_HEADERS["webhook-timestamp"])


def _verify_example(
    body: bytes = EXAMPLE_BODY,
    now: float = EXAMPLE_NOW,
    secrets: list[str] | None = None,
    headers: dict[str, str | None] | None = None,
) -> None:
    """Verify the signed example with one thing changed; a header set to None is left out."""
    merged = {**EXAMPLE_HEADERS, **(headers or {})}
    sent = {name: value for name, value in merged.items() if value is not None}
    verify_standard(body, sent, secrets or [EXAMPLE_SECRET], now=now)


def test_signed_example_verifies_with_a_frozen_clock() -> None:
    _verify_example()


@pytest.mark.parametrize("offset", [-TOLERANCE, -1, 0, 1, TOLERANCE])
def test_timestamps_within_the_tolerance_verify(offset: int) -> None:
    _verify_example(now=EXAMPLE_NOW + offset)


def test_old_timestamp_is_refused_as_a_replay() -> None:
    with pytest.raises(SignatureError, match="301 s in the past"):
        _verify_example(now=EXAMPLE_NOW + TOLERANCE + 1)


def test_future_timestamp_is_refused() -> None:
    with pytest.raises(SignatureError, match="301 s in the future"):
        _verify_example(now=EXAMPLE_NOW - TOLERANCE - 1)


def test_replay_with_a_fresh_timestamp_breaks_the_signature() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        _verify_example(now=EXAMPLE_NOW + 1000, headers={"webhook-timestamp": str(EXAMPLE_NOW + 1000)})


def test_one_byte_changed_in_the_body_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        _verify_example(body=flip_byte(EXAMPLE_BODY))


def test_one_character_changed_in_the_signature_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        _verify_example(headers={"webhook-signature": flip_char(EXAMPLE_HEADERS["webhook-signature"])})


def test_changed_id_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        _verify_example(headers={"webhook-id": "msg_other"})


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
@pytest.mark.parametrize("value", [None, ""])
def test_missing_or_empty_headers_are_named(header: str, value: str | None) -> None:
    with pytest.raises(SignatureError, match=f"missing {header} header"):
        _verify_example(headers={header: value})


@pytest.mark.parametrize("timestamp", ["hello", "-5", "1674087231.0", " 1674087231", "１６７４０８７２３１", "1e9"])
def test_malformed_timestamps_are_refused(timestamp: str) -> None:
    with pytest.raises(SignatureError, match="malformed webhook-timestamp"):
        _verify_example(headers={"webhook-timestamp": timestamp})


@pytest.mark.parametrize("msg_id", ["msg 1", "msg_ü", "x" * 257])
def test_malformed_ids_are_refused(msg_id: str) -> None:
    with pytest.raises(SignatureError, match="malformed webhook-id"):
        _verify_example(headers={"webhook-id": msg_id})


@pytest.mark.parametrize("signature", ["v1,", "v1", "v1,%%%%", "v1,4hWneiKaBQ4wB+r+i4hrMZBAKkamrN6LVT264cTA53Q"])
def test_malformed_signature_entries_are_ignored(signature: str) -> None:
    with pytest.raises(SignatureError, match="no 'v1,<base64>' entry"):
        _verify_example(headers={"webhook-signature": signature})


def test_rotation_accepts_the_old_and_the_new_secret() -> None:
    _verify_example(secrets=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", EXAMPLE_SECRET])
    with pytest.raises(SignatureError, match="does not match"):
        _verify_example(secrets=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])


def test_mixed_case_header_names_verify() -> None:
    headers = {name.title(): value for name, value in EXAMPLE_HEADERS.items()}
    verify_standard(EXAMPLE_BODY, headers, [EXAMPLE_SECRET], now=EXAMPLE_NOW)


def test_only_the_canonical_base64_of_the_signature_is_accepted() -> None:
    # A 32-byte MAC is 43 base64 characters and "="; the last character carries 4 bits and 2 unused
    # ones, which a lenient decoder ignores. The reference implementations compare the text, so do we.
    digest = base64.b64decode(EXAMPLE_HEADERS["webhook-signature"].removeprefix("v1,"))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    canonical = base64.b64encode(digest).decode()
    last = alphabet.index(canonical[-2])
    same_bytes = [canonical[:-2] + alphabet[(last & ~3) | low] + "=" for low in (1, 2, 3)]
    assert all(base64.b64decode(text) == digest for text in same_bytes)
    _verify_example(headers={"webhook-signature": "v1," + canonical})
    for text in same_bytes:
        with pytest.raises(SignatureError, match="no 'v1,<base64>' entry"):
            _verify_example(headers={"webhook-signature": "v1," + text})


def test_standard_errors_never_reveal_the_secret_or_the_expected_signature() -> None:
    with pytest.raises(SignatureError) as info:
        _verify_example(headers={"webhook-signature": "v1," + base64.b64encode(b"\0" * 32).decode()})
    text = str(info.value)
    assert EXAMPLE_SECRET.removeprefix("whsec_") not in text
    assert EXAMPLE_HEADERS["webhook-signature"].removeprefix("v1,") not in text


@given(
    body=st.binary(max_size=64),
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "Webhook-Id", "other"]),
        st.text(max_size=40),
    ),
    secrets=st.lists(st.text(max_size=40), max_size=3),
    now=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
)
def test_standard_check_raises_only_signature_error(
    body: bytes, headers: dict[str, str], secrets: list[str], now: float
) -> None:
    try:
        verify_standard(body, headers, secrets, now=now)
    except SignatureError:
        pass
