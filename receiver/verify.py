"""Signature primitives shared by the sources: HMAC hex digests, shared tokens, Standard Webhooks.

Every function is pure (the clock is a parameter) and raises SignatureError with a message that says
what was wrong: a missing or malformed header, a mismatch, a timestamp outside the tolerance. No
message ever contains a secret, an expected signature or the signature received.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from .errors import SignatureError

#: Standard Webhooks: how far webhook-timestamp may be from now, in either direction (seconds).
TOLERANCE = 300
#: Prefix of a Standard Webhooks secret; the base64 key follows it.
WHSEC_PREFIX = "whsec_"

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,256}")  # visible ASCII: it is part of the signed content


def lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the headers with lower-case names, so lookups do not depend on the sender's case."""
    return {name.lower(): value for name, value in headers.items()}


def usable_secrets(secrets: Sequence[str]) -> list[str]:
    """Return the non-blank secrets; raise SignatureError if none is left (an empty key signs nothing)."""
    usable = [s for s in secrets if isinstance(s, str) and s.strip()]
    if not usable:
        raise SignatureError("no usable secret is configured for this source: empty secrets are refused")
    return usable


def hmac_hex(secret: str, body: bytes, algorithm: str) -> str:
    """Return the lowercase hex HMAC of body keyed with the UTF-8 bytes of secret."""
    return hmac.new(_secret_bytes(secret), body, algorithm).hexdigest()


def verify_hmac_hex(
    body: bytes,
    signature: str | None,
    secrets: Sequence[str],
    *,
    algorithm: str,
    header: str,
    prefix: str = "",
) -> None:
    """Raise SignatureError unless signature is prefix + lowercase hex HMAC of body under one of the secrets."""
    keys = usable_secrets(secrets)
    if signature is None:
        raise SignatureError(f"missing {header} header")
    digits = hashlib.new(algorithm).digest_size * 2
    given = signature.removeprefix(prefix)
    if not signature.startswith(prefix) or not re.fullmatch(f"[0-9a-f]{{{digits}}}", given):
        shape = f"{prefix!r} followed by " if prefix else ""
        raise SignatureError(f"malformed {header} header: expected {shape}{digits} lowercase hex digits")
    matched = False
    for key in keys:  # no early exit: the time taken does not say which secret matched
        matched |= hmac.compare_digest(hmac_hex(key, body, algorithm), given)
    if not matched:
        raise SignatureError(f"{header} does not match the body under any configured secret")


def verify_token(token: str | None, secrets: Sequence[str], *, header: str) -> None:
    """Raise SignatureError unless token equals one of the secrets (constant-time, any characters)."""
    keys = usable_secrets(secrets)
    if token is None:
        raise SignatureError(f"missing {header} header")
    if not token:
        raise SignatureError(f"empty {header} header")
    matched = False
    for key in keys:
        expected = _secret_bytes(key)
        for candidate in _header_bytes(token):
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError(f"{header} does not match any configured secret")


def standard_key(secret: str) -> bytes | None:
    """Return the HMAC key of a Standard Webhooks secret (whsec_ prefix optional), or None if it is not one."""
    raw = secret.strip().removeprefix(WHSEC_PREFIX).rstrip("=")
    if len(raw) % 4 == 1:
        return None
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


def standard_signature(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """Return the `v1,<base64>` signature a Standard Webhooks sender puts in webhook-signature."""
    key = standard_key(secret)
    if key is None:
        raise ValueError("not a Standard Webhooks secret: expected whsec_ followed by base64")
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify_standard(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: float = TOLERANCE,
) -> None:
    """Raise SignatureError unless the webhook-* headers sign body under one of the secrets, within tolerance of now."""
    keys = _standard_keys(secrets)
    lowered = lower_keys(headers)
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id:
        raise SignatureError("missing webhook-id header")
    if not timestamp:
        raise SignatureError("missing webhook-timestamp header")
    if not signatures:
        raise SignatureError("missing webhook-signature header")
    if not _MESSAGE_ID.fullmatch(msg_id):
        raise SignatureError("malformed webhook-id header: expected 1 to 256 visible ASCII characters")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("malformed webhook-timestamp header: expected unix time in whole seconds")
    age = now - int(timestamp)
    if age > tolerance:
        raise SignatureError(
            f"webhook-timestamp is {age:.0f} s in the past, beyond the {tolerance:.0f} s tolerance "
            "(a replayed delivery, or the sender's clock is wrong)"
        )
    if -age > tolerance:
        raise SignatureError(
            f"webhook-timestamp is {-age:.0f} s in the future, beyond the {tolerance:.0f} s tolerance "
            "(the sender's or the receiver's clock is wrong)"
        )
    given = [sig for sig in map(_v1_signature, signatures.split()) if sig is not None]
    if not given:
        raise SignatureError("malformed webhook-signature header: no 'v1,<base64>' entry of a 32-byte HMAC-SHA256")
    content = f"{msg_id}.{timestamp}.".encode() + body
    matched = False
    for key in keys:
        expected = hmac.new(key, content, hashlib.sha256).digest()
        for signature in given:
            matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise SignatureError("webhook-signature does not match the body under any configured secret")


def _standard_keys(secrets: Sequence[str]) -> list[bytes]:
    keys = [key for key in map(standard_key, usable_secrets(secrets)) if key is not None]
    if not keys:
        raise SignatureError("no configured secret is a Standard Webhooks key (whsec_ followed by base64)")
    return keys


def _v1_signature(entry: str) -> bytes | None:
    version, sep, value = entry.partition(",")
    if version != "v1" or not sep:
        return None  # other versions (v1a, v2, ...) are skipped, as the specification says
    try:
        signature = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Only the canonical encoding: the decoder ignores the unused low bits of the last character, so
    # "...0=" and "...1=" decode alike. The reference implementations compare the base64 text itself.
    if len(signature) != hashlib.sha256().digest_size or base64.b64encode(signature).decode("ascii") != value:
        return None
    return signature


def _secret_bytes(secret: str) -> bytes:
    # os.environ decodes undecodable bytes as surrogate escapes: encoding them back gives the bytes configured.
    try:
        return secret.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return secret.encode("utf-8", "surrogatepass")


def _header_bytes(value: str) -> list[bytes]:
    # A str holding the token's text matches as UTF-8 (the first form). WSGI hands header values over
    # decoded as latin-1, so a non-ASCII token sent as UTF-8 is recovered by re-encoding as latin-1.
    forms = [_secret_bytes(value)]
    try:
        forms.append(value.encode("latin-1"))
    except UnicodeEncodeError:
        pass
    return forms
