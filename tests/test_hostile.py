"""Hostile input to every POST /hooks/<source>, in-process, mostly property-based (hypothesis).

Every answer is checked for the same invariants (`Hostile.check`): never a 5xx or an unhandled
exception, a JSON body, every error body exactly {"error", "message", "json_path"}, nothing stored
unless the answer is 202, and whatever is stored has a known state, the URL's source and bounded,
storable text. Deliveries are signed properly (the secrets are configured for all four sources), so
mutated payloads get past verification to parse, route and enqueue; the catch-all mapping routes
every non-verification event, so a valid one is stored. The second half checks that the signature
checks cannot be bypassed.

Hypothesis runs derandomized and without an example database, so CI is deterministic.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import event as observe
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from werkzeug.test import TestResponse

from receiver import create_app
from receiver.config import Settings
from receiver.errors import ConfigError
from receiver.model import JOB_STATES, STATES
from receiver.sources._common import LIMITS, TEXT_LIMIT

DATA = Path(__file__).resolve().parent / "data"
SOURCES = ("hcp-terraform", "github", "gitlab", "standard")

HCP_SECRET = "hostile-hcp-terraform-secret"
GITHUB_SECRET = "hostile-github-secret"
GITLAB_TOKEN = "hostile-gitlab-token"
GITLAB_KEY = "whsec_" + base64.b64encode(b"hostile-gitlab-signing-key-32b!!").decode()
STANDARD_KEY = "whsec_" + base64.b64encode(b"hostile-standard-signing-key-32!").decode()
SECRETS: dict[str, tuple[str, ...]] = {
    "hcp-terraform": (HCP_SECRET,),
    "github": (GITHUB_SECRET,),
    "gitlab": (GITLAB_TOKEN, GITLAB_KEY),  # both ways GitLab can authenticate: token and signing key
    "standard": (STANDARD_KEY,),
}
#: The header that carries each source's signature or token.
SIGNATURE_HEADER = {
    "hcp-terraform": "X-TFE-Notification-Signature",
    "github": "X-Hub-Signature-256",
    "gitlab": "X-Gitlab-Token",
    "standard": "webhook-signature",
}
#: Headers that carry signature material (receiver/views.py _SIGNATURE_HEADERS).
SIGNATURE_HEADERS = frozenset(
    {"x-tfe-notification-signature", "x-hub-signature-256", "x-gitlab-token", "webhook-signature", "webhook-id",
     "webhook-timestamp"}
)
#: Signature headers a sender's own verification reads (with the credentials sign() uses).
#: WSGI servers join a repeated header into one comma-separated value (gunicorn with ",", werkzeug
#: with ", "): one of these repeated then no longer verifies. webhook-signature is left out: it is a
#: space-separated list by specification, so the correct entry joined with another one stays valid.
VERIFIED_HEADERS: dict[str, frozenset[str]] = {
    "hcp-terraform": frozenset({"x-tfe-notification-signature"}),
    "github": frozenset({"x-hub-signature-256"}),
    "gitlab": frozenset({"x-gitlab-token"}),
    "standard": frozenset({"webhook-id", "webhook-timestamp"}),
}
MAPPING = {
    "version": 1,
    "defaults": {"division_id": "div-ops"},
    "routes": [
        {"name": "everything", "match": {"source": "*"},
         "target": {"action": "trigger", "contact_list_id": "cl-oncall"}},
    ],
}
ERROR_KEYS = {"error", "message", "json_path"}

FAST = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

Headers = list[tuple[str, str]]
_serial = itertools.count()


# Signing, computed here independently of receiver/verify.py.


def hmac_hex(secret: str, body: bytes, algorithm: str) -> str:
    return hmac.new(secret.encode(), body, algorithm).hexdigest()


def standard_sig(key: str, msg_id: str, timestamp: str, body: bytes) -> str:
    raw = base64.b64decode(key.removeprefix("whsec_"))
    digest = hmac.new(raw, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(source: str, body: bytes, *, event: str | None = None, content_type: str | None = "application/json",
         gitlab_signed: bool = False) -> Headers:
    """Return the headers the real sender would send with body, correctly signed under SECRETS."""
    serial = f"hostile-{next(_serial)}"
    headers: Headers = [("Content-Type", content_type)] if content_type is not None else []
    if source == "hcp-terraform":
        headers.append(("X-TFE-Notification-Signature", hmac_hex(HCP_SECRET, body, "sha512")))
    elif source == "github":
        headers += [("X-GitHub-Event", event or "workflow_run"), ("X-GitHub-Delivery", serial),
                    ("X-Hub-Signature-256", "sha256=" + hmac_hex(GITHUB_SECRET, body, "sha256"))]
    elif source == "gitlab":
        headers += [("X-Gitlab-Event", event or "Pipeline Hook"), ("X-Gitlab-Event-UUID", serial)]
        if gitlab_signed:
            timestamp = str(int(time.time()))
            headers += [("webhook-id", serial), ("webhook-timestamp", timestamp),
                        ("webhook-signature", standard_sig(GITLAB_KEY, serial, timestamp, body))]
        else:
            headers.append(("X-Gitlab-Token", GITLAB_TOKEN))
    elif source == "standard":
        timestamp = str(int(time.time()))
        headers += [("webhook-id", serial), ("webhook-timestamp", timestamp),
                    ("webhook-signature", standard_sig(STANDARD_KEY, serial, timestamp, body))]
    return headers


def replace_header(headers: Headers, name: str, value: str | None) -> Headers:
    """Drop every header called name (any case); add name: value unless value is None."""
    kept = [(k, v) for k, v in headers if k.lower() != name.lower()]
    return kept if value is None else [*kept, (name, value)]


def header(headers: Headers, name: str) -> str:
    return next(v for k, v in headers if k.lower() == name.lower())


# Real payloads: (source, event header, document).

_GITLAB_HOOKS = {"pipeline": "Pipeline Hook", "build": "Job Hook", "deployment": "Deployment Hook"}
_STANDARD_DOC = {
    "state": "failed", "kind": "ci.deploy", "organization": "acme", "workspace": "prod-network",
    "project": "infra", "repository": "acme/infra", "branch": "main", "environment": "prod", "run_id": "r-1",
    "url": "https://ci.example/runs/1", "actor": "alice", "message": "deploy failed",
    "occurred_at": "2026-11-21T10:00:00Z",
}


def _fixtures() -> list[tuple[str, str | None, Any]]:
    found: list[tuple[str, str | None, Any]] = []
    for name in ("run.errored.canceled.sample.json", "assessment.drifted.sample.json",
                 "verification.send-a-test.json"):
        found.append(("hcp-terraform", None, json.loads((DATA / "hcp-terraform" / name).read_text())))
    for path in sorted((DATA / "github").glob("*.payload.json")):
        found.append(("github", path.name.split(".")[0], json.loads(path.read_text())))
    for path in sorted((DATA / "gitlab").glob("*.json")):
        doc = json.loads(path.read_text())
        found.append(("gitlab", _GITLAB_HOOKS[doc["object_kind"]], doc))
    found.append(("standard", None, _STANDARD_DOC))
    return found


FIXTURES = _fixtures()


def dumps(doc: Any, *, ensure_ascii: bool = True) -> bytes:
    return json.dumps(doc, ensure_ascii=ensure_ascii).encode()


# The app under attack.


@dataclass
class Snapshot:
    events: int
    last_event: int
    last_job: int


@dataclass
class Hostile:
    app: Flask
    client: FlaskClient
    db: sqlite3.Connection

    def post(self, source: str, body: bytes, headers: Headers, *, path: str | None = None) -> TestResponse:
        return self.client.post(path or f"/hooks/{source}", data=body, headers=headers)

    def snapshot(self) -> Snapshot:
        events, last_event = self.db.execute("SELECT count(*), coalesce(max(rowid), 0) FROM events").fetchone()
        last_job = self.db.execute("SELECT coalesce(max(id), 0) FROM jobs").fetchone()[0]
        return Snapshot(events, last_event, last_job)

    def check(self, source: str, before: Snapshot, answer: TestResponse) -> dict[str, Any]:
        """Assert every invariant of one answer and of what it stored; return the JSON body."""
        status = answer.status_code
        assert status < 500, (status, answer.get_data()[:500])
        assert answer.mimetype == "application/json", (status, answer.mimetype)
        data = answer.get_json()
        assert isinstance(data, dict), data
        if status >= 400:
            assert set(data) == ERROR_KEYS, data
            assert isinstance(data["error"], str) and data["error"], data
            assert isinstance(data["message"], str) and data["message"], data
            assert data["json_path"] is None or (isinstance(data["json_path"], str)
                                                 and data["json_path"].startswith("$")), data
        if currently_in_test_context():  # for --hypothesis-show-statistics
            stored = "duplicate" if data.get("duplicate") else "stored"
            observe(f"{status} {data.get('error') or data.get('outcome') or stored}")
        after = self.snapshot()
        if status != 202:
            assert after.last_job == before.last_job, f"{status} {data} stored a job"
        if status >= 400 or data.get("outcome") == "ignored":
            assert after.events == before.events, f"{status} {data} stored an event"
        if status == 202:
            assert data["duplicate"] is False and after.last_job > before.last_job, data
        rows = self.db.execute(
            "SELECT j.state, j.source, e.source, e.event FROM jobs j JOIN events e USING (event_id) WHERE j.id > ?",
            (before.last_job,),
        ).fetchall()
        for job_state, job_source, event_source, stored in rows:
            assert job_state in JOB_STATES
            assert job_source == event_source == source
            check_stored_event(json.loads(stored), source)
        for event_source, stored in self.db.execute("SELECT source, event FROM events WHERE rowid > ?",
                                                    (before.last_event,)):
            assert event_source == source
            check_stored_event(json.loads(stored), source)
        return data


def check_stored_event(event: dict[str, Any], source: str) -> None:
    """A stored event: the URL's source, a known and routable state, bounded storable text."""
    assert event["source"] == source
    assert event["state"] in STATES and event["state"] != "verification", event["state"]
    for name, value in event.items():
        if value is None:
            continue
        assert isinstance(value, str), (name, value)
        assert "\x00" not in value, name
        value.encode("utf-8")  # no lone surrogate: every database and log can hold it
        if name != "dedupe_key":
            assert len(value) <= LIMITS.get(name, TEXT_LIMIT), (name, len(value))


@pytest.fixture(name="hostile", scope="module")
def _hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    tmp = tmp_path_factory.mktemp("hostile")
    mapping = tmp / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    db_path = tmp / "outbox.db"
    app = create_app(Settings(mapping_path=mapping, database_url=f"sqlite:///{db_path}", secrets=SECRETS,
                              embedded_worker=False))
    db = sqlite3.connect(db_path)
    try:
        yield Hostile(app=app, client=app.test_client(), db=db)
    finally:
        db.close()
        app.extensions["pipedial"].close()


# Strategies.

#: Raw JSON texts that json.dumps cannot produce or that stress the decoder and validator.
RAW_VALUES: tuple[str, ...] = (
    *("[" * d + "]" * d for d in (60, 64, 65, 300, 980, 5_000)),
    '{"a":' * 990 + "1" + "}" * 990,
    "1" * 5_000,
    "-" + "9" * 4_400,
    "1e999",
    "-1e999",
    "NaN",
    "-Infinity",
    "-0",
    '"\\ud800"',
    '"x\\udfff\\ud800y"',
    '"\\u0000"',
    '"\\u202e\\u0000evil"',
    '"' + "x" * 100_000 + '"',
)
_SENTINEL = "\x00raw-{}\x00"

header_text = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=40
)
json_leaves = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
    | st.sampled_from(["", " ", "failed", "main", "\u202e", "\U0001f4a5" * 50, "a" * 3000])
)
json_values = st.recursive(
    json_leaves, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found += _paths(child, (*prefix, key))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutated_delivery(draw: st.DrawFn, fixtures: tuple[str, ...] = SOURCES) -> tuple[str, str | None, bytes]:
    """A real payload with 1-3 random mutations, serialized (raw JSON texts spliced in)."""
    source, event, base = draw(st.sampled_from([f for f in FIXTURES if f[0] in fixtures]))
    doc = copy.deepcopy(base)
    raw: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(doc, path), path[-1]
        op = draw(st.sampled_from(["replace", "raw", "delete", "add", "wrap", "stringify"]))
        if op == "replace":
            parent[key] = draw(json_values)
        elif op == "raw":
            parent[key] = _SENTINEL.format(len(raw))
            raw.append(draw(st.sampled_from(RAW_VALUES)))
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(parent[key], dict):
            parent[key][draw(st.text(max_size=12))] = draw(json_values)
        elif op == "wrap":
            parent[key] = [parent[key]]
        elif op == "stringify":
            parent[key] = json.dumps(parent[key])
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    for i, value in enumerate(raw):
        text = text.replace(json.dumps(_SENTINEL.format(i), ensure_ascii=False), value)
        text = text.replace(json.dumps(_SENTINEL.format(i)), value)
    return source, event, text.encode("utf-8")


CONTENT_TYPES = st.sampled_from([
    None, "", "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
    "application/vnd.api+json", "text/plain", "text/json", "application/xml", "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded", "application/json-seq", "application/jsonx", "*/*", "application/",
    "application/json; charset=utf-16", "application/json;;;", "json",
]) | header_text

JSON_TYPES = {"application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.api+json",
              "application/json; charset=utf-16", "application/json;;;"}


# 1. The real payloads, signed, pass (otherwise the mutations below never reach parse).


@pytest.mark.parametrize(("source", "event", "doc"), FIXTURES, ids=[f"{s}-{e or i}" for i, (s, e, _) in
                                                                      enumerate(FIXTURES)])
def test_signed_real_payloads_are_accepted(hostile: Hostile, source: str, event: str | None, doc: Any) -> None:
    body = dumps(doc)
    before = hostile.snapshot()
    data = hostile.check(source, before, hostile.post(source, body, sign(source, body, event=event)))
    assert data.get("outcome") == "ignored" or data.get("duplicate") is False, data


def test_gitlab_signing_key_is_accepted(hostile: Hostile) -> None:
    source, event, doc = next(f for f in FIXTURES if f[1] == "Pipeline Hook")
    body = dumps({**doc, "object_attributes": {**doc["object_attributes"], "id": 991}})
    before = hostile.snapshot()
    answer = hostile.post(source, body, sign(source, body, event=event, gitlab_signed=True))
    hostile.check(source, before, answer)
    assert answer.status_code in (200, 202)


# 2. Random bytes, any content type, signed or not.


@FAST
@given(source=st.sampled_from(SOURCES), body=st.binary(max_size=600) | st.sampled_from(RAW_VALUES).map(str.encode),
       content_type=st.sampled_from(sorted(JSON_TYPES)) | CONTENT_TYPES, signed=st.booleans())
def test_random_bytes_never_5xx_and_store_nothing(hostile: Hostile, source: str, body: bytes,
                                                   content_type: str | None, signed: bool) -> None:
    headers = sign(source, body, content_type=content_type) if signed else (
        [("Content-Type", content_type)] if content_type is not None else [])
    before = hostile.snapshot()
    answer = hostile.post(source, body, headers)
    hostile.check(source, before, answer)
    if not signed:
        assert answer.status_code in (401, 415), answer.get_json()
    elif content_type in JSON_TYPES:
        assert answer.status_code in (200, 202, 400), answer.get_json()


# 3. Mutated real payloads, properly signed: parse, route and enqueue see them.


@FAST
@given(delivery=mutated_delivery())
def test_mutated_signed_payloads_never_5xx_and_store_only_valid_events(
    hostile: Hostile, delivery: tuple[str, str | None, bytes]
) -> None:
    source, event, body = delivery
    before = hostile.snapshot()
    answer = hostile.post(source, body, sign(source, body, event=event))
    hostile.check(source, before, answer)
    assert answer.status_code in (200, 202, 400), answer.get_json()


@FAST
@given(delivery=mutated_delivery(("github",)), extra=st.lists(st.sampled_from(["payload", "other"]), max_size=2),
       bad_utf8=st.booleans())
def test_mutated_form_encoded_github_deliveries(
    hostile: Hostile, delivery: tuple[str, str | None, bytes], extra: list[str], bad_utf8: bool
) -> None:
    from urllib.parse import quote_from_bytes

    source, event, body = delivery
    form = b"payload=" + quote_from_bytes(body).encode() + b"".join(b"&" + k.encode() + b"=x" for k in extra)
    if bad_utf8:
        form += b"&junk=\xff\xfe"
    before = hostile.snapshot()
    answer = hostile.post(source, form, sign(source, form, event=event,
                                             content_type="application/x-www-form-urlencoded"))
    hostile.check(source, before, answer)
    assert answer.status_code in (200, 202, 400), answer.get_json()
    if "payload" in extra or bad_utf8:
        assert answer.status_code == 400


# 4. Header chaos: case, duplicates, drops, junk, on a correctly signed delivery.

_JUNK_NAMES = ["X-Forwarded-For", "X-Request-Id", "X-Hub-Signature", "Authorization", "Cookie", "Accept",
               "X-Github-Hook-Id", "User-Agent", "Idempotency-Key", "X-Gitlab-Instance"]


@st.composite
def header_chaos(draw: st.DrawFn) -> tuple[str, bytes, Headers, set[str]]:
    source, event, doc = draw(st.sampled_from(FIXTURES))
    body = dumps(doc)
    headers = sign(source, body, event=event)
    effects: set[str] = set()
    for op in draw(st.lists(st.sampled_from(["recase", "duplicate", "drop", "junk", "inject"]), max_size=4)):
        i = draw(st.integers(0, max(len(headers) - 1, 0)))
        if not headers:
            break
        name, value = headers[i]
        if name.lower() == "content-type" and op in ("duplicate", "drop"):
            effects.add("content type")  # checked before the signature: 415 comes first
        if op == "recase":
            flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
            headers[i] = ("".join(c.upper() if f else c.lower() for c, f in zip(name, flips, strict=True)), value)
        elif op == "duplicate":
            other = draw(st.sampled_from([value, "", "0" * 128, "sha256=" + "0" * 64, "v1,AAAA", value.upper()]))
            headers.insert(draw(st.integers(0, len(headers))), (draw(st.sampled_from([name, name.upper()])), other))
            if name.lower() in VERIFIED_HEADERS[source]:
                effects.add("duplicated signature")
            else:
                effects.add("duplicated")
        elif op == "drop":
            del headers[i]
            effects.add("dropped signature" if name.lower() == SIGNATURE_HEADER[source].lower() else "dropped")
        elif op == "junk":
            headers.append((draw(st.sampled_from(_JUNK_NAMES)), draw(header_text)))
        elif op == "inject":
            injected = draw(st.sampled_from(sorted(SIGNATURE_HEADERS)))
            present = any(k.lower() == injected for k, _ in headers)
            headers.append((injected, draw(header_text)))
            effects.add("duplicated signature" if present and injected in VERIFIED_HEADERS[source] else "injected")
    return source, body, headers, effects


@FAST
@given(case=header_chaos())
def test_header_chaos_never_5xx_and_never_bypasses(
    hostile: Hostile, case: tuple[str, bytes, Headers, set[str]]
) -> None:
    source, body, headers, effects = case
    before = hostile.snapshot()
    answer = hostile.post(source, body, headers)
    hostile.check(source, before, answer)
    if effects & {"duplicated signature", "dropped signature"}:
        allowed = (401, 415) if "content type" in effects else (401,)
        assert answer.status_code in allowed, (effects, headers, answer.get_json())
    elif not effects:  # only the case of names changed, or harmless headers added
        assert answer.status_code in (200, 202), (headers, answer.get_json())


# 5. Deep, huge and wide JSON; bad UTF-8; content types.

DEEP_BODIES = {
    "100k nested arrays": b"[" * 100_000 + b"]" * 100_000,
    "100k nested objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "990 nested arrays": b"[" * 990 + b"]" * 990,
    "unclosed 100k arrays": b"[" * 100_000,
    "5000-digit integer": b"1" * 5_000,
    "1 MiB minus a bit of numbers": b"[" + b"0," * 500_000 + b"0]",
    "50k keys": json.dumps({f"k{i}": i for i in range(50_000)}).encode(),
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", sorted(DEEP_BODIES))
def test_deep_and_huge_json_is_400(hostile: Hostile, source: str, name: str) -> None:
    body = DEEP_BODIES[name]
    before = hostile.snapshot()
    started = time.perf_counter()
    answer = hostile.post(source, body, sign(source, body))
    assert time.perf_counter() - started < 5
    data = hostile.check(source, before, answer)
    assert answer.status_code == 400 and data["error"] == "invalid_payload", data


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("depth", [50, 300, 900, 970, 985])
def test_deep_value_inside_a_real_payload_is_400(hostile: Hostile, source: str, depth: int) -> None:
    """Nesting just below the decoder's recursion limit used to crash the validator's error message."""
    _, event, doc = next(f for f in FIXTURES if f[0] == source)
    for key in list(doc):
        text = json.dumps({**doc, key: "@deep@"}).replace('"@deep@"', "[" * depth + "1" + "]" * depth)
        body = text.encode()
        before = hostile.snapshot()
        data = hostile.check(source, before, hostile.post(source, body, sign(source, body, event=event)))
        if depth > 64:
            assert data["error"] == "invalid_payload", (key, data)


def test_nesting_limit_is_64_levels(hostile: Hostile) -> None:
    _, event, doc = next(f for f in FIXTURES if f[1] == "workflow_run")

    def post(depth: int) -> TestResponse:
        inner: Any = 1
        for _ in range(depth - 1):  # the document itself is level 1
            inner = [inner]
        body = dumps({**doc, "extra": inner, "workflow_run": {**doc["workflow_run"], "id": 7000 + depth}})
        before = hostile.snapshot()
        answer = hostile.post("github", body, sign("github", body, event=event))
        hostile.check("github", before, answer)
        return answer

    assert post(64).status_code == 202
    refused = post(65)
    assert refused.status_code == 400 and "nested deeper than 64" in refused.get_json()["message"]


def test_body_over_the_limit_is_413_and_at_the_limit_is_read(hostile: Hostile) -> None:
    limit = hostile.app.extensions["pipedial"].settings.max_body
    doc = {k: v for k, v in _STANDARD_DOC.items() if k != "kind"}
    head = dumps(doc)[:-1] + b', "kind": "'
    at_limit = head + b"k" * (limit - len(head) - 2) + b'"}'
    assert len(at_limit) == limit
    answer = hostile.post("standard", at_limit, sign("standard", at_limit))
    assert answer.status_code == 400 and answer.get_json()["json_path"] == "$.kind"  # read, then refused: maxLength
    over = at_limit + b" "
    before = hostile.snapshot()
    answer = hostile.post("standard", over, sign("standard", over))
    assert hostile.check("standard", before, answer)["error"] == "body_too_large"


BAD_UTF8 = {
    "invalid byte": b'{"state": "failed", "message": "\xff"}',
    "overlong slash": b'{"state": "failed", "message": "\xc0\xaf"}',
    "truncated sequence": b'{"state": "failed", "message": "\xe2\x82"}',
    "latin-1 text": '{"state": "failed", "message": "café"}'.encode("latin-1"),
    "NUL bytes": b'{"state": "failed", \x00 "message": "x"}',
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", sorted(BAD_UTF8))
def test_bad_utf8_is_400(hostile: Hostile, source: str, name: str) -> None:
    body = BAD_UTF8[name]
    before = hostile.snapshot()
    data = hostile.check(source, before, hostile.post(source, body, sign(source, body)))
    assert data["error"] == "invalid_payload" and data["json_path"] == "$", data


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_other_unicode_encodings_are_read_or_refused_cleanly(hostile: Hostile, encoding: str) -> None:
    body = json.dumps({**_STANDARD_DOC, "message": f"encoded as {encoding}"}).encode(encoding)
    before = hostile.snapshot()
    answer = hostile.post("standard", body, sign("standard", body))
    hostile.check("standard", before, answer)
    assert answer.status_code in (202, 400)


@pytest.mark.parametrize("body", [
    b'{"state": "failed", "message": "a\\ud800b\\u0000c", "workspace": "\\udfff", "run_id": "r-escaped"}',
    # json.loads decodes bytes with surrogatepass: a UTF-8-encoded surrogate is read like the escape above
    b'{"state": "failed", "message": "a\xed\xa0\x80b", "run_id": "r-encoded"}',
], ids=["escaped", "utf-8 encoded"])
def test_lone_surrogates_and_nul_in_json_text_are_stored_cleanly(hostile: Hostile, body: bytes) -> None:
    before = hostile.snapshot()
    answer = hostile.post("standard", body, sign("standard", body))
    hostile.check("standard", before, answer)  # check_stored_event: no NUL, UTF-8 encodable
    assert answer.status_code == 202


@pytest.mark.parametrize(("source", "content_type", "status"), [
    *((s, ct, 415) for s in SOURCES for ct in (None, "text/plain", "application/xml", "text/json",
                                                 "multipart/form-data; boundary=x", "application/jsonx")),
    *((s, "application/x-www-form-urlencoded", 415) for s in SOURCES if s != "github"),
    *((s, ct, 202) for s in SOURCES for ct in ("application/json; charset=utf-8", "application/problem+json",
                                                 "Application/JSON")),
])
def test_content_types(hostile: Hostile, source: str, content_type: str | None, status: int) -> None:
    _, event, doc = next(f for f in FIXTURES if f[0] == source and f[1] != "ping")
    if source == "standard":
        doc = {**doc, "run_id": f"ct-{next(_serial)}"}
    body = dumps(doc)
    before = hostile.snapshot()
    answer = hostile.post(source, body, sign(source, body, event=event, content_type=content_type))
    hostile.check(source, before, answer)
    assert answer.status_code == status or (status == 202 and answer.status_code == 200), answer.get_json()


# 6. The signature checks cannot be bypassed.


def _flip_hex(value: str) -> str:
    last = value[-1]
    return value[:-1] + ("0" if last != "0" else "1")


def _forgeries(source: str, body: bytes, headers: Headers) -> dict[str, Headers]:
    """Named ways to forge or mangle the signature of body; every one must be refused with 401."""
    name = SIGNATURE_HEADER[source]
    good = header(headers, name)
    other = body + b" "
    forged: dict[str, str | None] = {"missing": None, "empty": "", "space": " ", "random": "x" * len(good)}
    if source in ("hcp-terraform", "github"):
        prefix = "sha256=" if source == "github" else ""
        algorithm = "sha256" if source == "github" else "sha512"
        secret = GITHUB_SECRET if source == "github" else HCP_SECRET
        digest = good.removeprefix(prefix)
        forged |= {
            "uppercase hex": prefix + digest.upper(),
            "one digit changed": _flip_hex(good),
            "truncated": good[:-1],
            "extended": good + "0",
            "prefix only": prefix or "sha512=",
            "other body": prefix + hmac_hex(secret, other, algorithm),
            "other secret": prefix + hmac_hex(secret + "x", body, algorithm),
            "empty secret": prefix + hmac_hex("", body, algorithm),
            "other source's secret": prefix + hmac_hex(STANDARD_KEY, body, algorithm),
            "other algorithm": prefix + hmac_hex(secret, body, "sha1" if source == "github" else "sha256"),
            "inner whitespace": prefix + " " + digest,
            "padded wrong signature": " " + _flip_hex(good) + " ",
            "url-encoded hex": prefix + "".join(f"%{ord(c):02x}" for c in digest),
            "two signatures": good + "," + good,
            "0x prefix": prefix + "0x" + digest,
        }
        if source == "github":
            forged |= {"uppercase prefix": "SHA256=" + digest, "sha1 prefix": "sha1=" + digest,
                       "percent-encoded prefix": "sha256%3D" + digest,
                       "prefix with nothing": "sha256=", "no prefix": digest}
        else:
            forged |= {"sha512= prefix": "sha512=" + digest}
    elif source == "gitlab":
        forged |= {
            "uppercase token": GITLAB_TOKEN.upper(),
            "token prefix": GITLAB_TOKEN[:-1],
            "token extended": GITLAB_TOKEN + "x",
            "padded inside": GITLAB_TOKEN.replace("-", " -", 1),
            "percent-encoded token": GITLAB_TOKEN.replace("-", "%2D"),
            "signing key as token": GITLAB_KEY,
            "other source's secret": HCP_SECRET,
            "token twice": GITLAB_TOKEN + "," + GITLAB_TOKEN,
            "hmac of body": hmac_hex(GITLAB_TOKEN, body, "sha256"),
        }
    else:
        msg_id, timestamp = header(headers, "webhook-id"), header(headers, "webhook-timestamp")
        digest = good.removeprefix("v1,")
        forged |= {
            "v1 with nothing": "v1,",
            "v1 only": "v1",
            "other version": "v2," + digest,
            "v1a": "v1a," + digest,
            "no version": digest,
            "uppercase version": "V1," + digest,
            "swapped case": "v1," + digest.swapcase(),
            "url-safe base64": "v1," + digest.replace("+", "-").replace("/", "_") + "x",
            "other body": standard_sig(STANDARD_KEY, msg_id, timestamp, other),
            "other id": standard_sig(STANDARD_KEY, msg_id + "x", timestamp, body),
            "other timestamp": standard_sig(STANDARD_KEY, msg_id, str(int(timestamp) + 1), body),
            "other key": standard_sig(GITLAB_KEY, msg_id, timestamp, body),
            "raw key as hex hmac": hmac_hex(STANDARD_KEY, body, "sha256"),
            "inner whitespace": "v1, " + digest,
            "several wrong": "v1,AAAA v1," + _flip_hex(digest[:-1]) + "= v2," + digest,
            "percent-encoded": "v1%2C" + digest,
        }
    cases = {label: replace_header(headers, name, value) for label, value in forged.items()}
    if source == "standard":
        ts = int(header(headers, "webhook-timestamp"))
        msg_id = header(headers, "webhook-id")
        for label, stamp in {"stale timestamp": str(ts - 301), "future timestamp": str(ts + 301),
                             "zero-padded timestamp": "0" + str(ts)}.items():
            cases[label] = replace_header(replace_header(headers, "webhook-timestamp", stamp), name,
                                          standard_sig(STANDARD_KEY, msg_id, stamp, body) if "padded" not in label
                                          else good)
        cases["timestamp missing"] = replace_header(headers, "webhook-timestamp", None)
        cases["id missing"] = replace_header(headers, "webhook-id", None)
    if source == "gitlab":  # the signing-key path forged the same ways
        signed = sign(source, body, event="Pipeline Hook", gitlab_signed=True)
        cases["signing key: other body"] = replace_header(
            signed, "webhook-signature",
            standard_sig(GITLAB_KEY, header(signed, "webhook-id"), header(signed, "webhook-timestamp"), other))
        cases["signing key: v1 with nothing"] = replace_header(signed, "webhook-signature", "v1,")
        cases["signing key: stale"] = replace_header(signed, "webhook-timestamp", "1674087231")
        cases["signing key: under the standard source's key"] = replace_header(
            signed, "webhook-signature",
            standard_sig(STANDARD_KEY, header(signed, "webhook-id"), header(signed, "webhook-timestamp"), body))
    return cases


_FORGERY_CASES = [
    (source, label) for source in SOURCES
    for label in _forgeries(source, b"{}", sign(source, b"{}"))
]


@pytest.mark.parametrize(("source", "label"), _FORGERY_CASES, ids=[f"{s}-{lbl}" for s, lbl in _FORGERY_CASES])
def test_forged_signatures_are_refused(hostile: Hostile, source: str, label: str) -> None:
    _, event, doc = next(f for f in FIXTURES if f[0] == source)
    body = dumps(doc)
    headers = _forgeries(source, body, sign(source, body, event=event))[label]
    before = hostile.snapshot()
    data = hostile.check(source, before, hostile.post(source, body, headers))
    assert data["error"] == "bad_signature", (label, data)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("style", ["lower", "upper", "title"])
def test_header_name_case_does_not_matter(hostile: Hostile, source: str, style: str) -> None:
    _, event, doc = next(f for f in FIXTURES if f[0] == source)
    body = dumps(doc)
    change: Callable[[str], str] = getattr(str, style)
    good = [(change(k), v) for k, v in sign(source, body, event=event)]
    assert hostile.check(source, hostile.snapshot(), hostile.post(source, body, good)).get("error") is None
    bad = [(k, _flip_hex(v) if k.lower() == SIGNATURE_HEADER[source].lower() and source != "gitlab"
            else v + "x" if k.lower() == "x-gitlab-token" else v) for k, v in good]
    assert hostile.post(source, body, bad).status_code == 401


@FAST
@given(source=st.sampled_from(SOURCES), data=st.data())
def test_random_signature_values_are_refused(hostile: Hostile, source: str, data: st.DataObject) -> None:
    _, event, doc = data.draw(st.sampled_from([f for f in FIXTURES if f[0] == source]))
    body = dumps(doc)
    headers = sign(source, body, event=event)
    name = SIGNATURE_HEADER[source]
    good = header(headers, name)
    edit = data.draw(st.sampled_from(["random", "hex", "base64", "edit"]))
    if edit == "random":
        value = data.draw(header_text)
    elif edit == "hex":
        value = data.draw(st.sampled_from(["", "sha256="])) + data.draw(
            st.text("0123456789abcdefABCDEF", min_size=len(good) - 8, max_size=len(good) + 1))
    elif edit == "base64":
        value = "v1," + base64.b64encode(data.draw(st.binary(min_size=32, max_size=32))).decode()
    else:
        i = data.draw(st.integers(0, len(good) - 1))
        value = good[:i] + data.draw(header_text) + good[i + data.draw(st.integers(0, 2)):]
    assume(value.strip() != good)  # a server strips the padding around a correct value
    assume(good not in value.split())  # webhook-signature is a list: the correct entry among others is valid
    before = hostile.snapshot()
    answer = hostile.post(source, body, replace_header(headers, name, value))
    data_ = hostile.check(source, before, answer)
    assert answer.status_code == 401, (value, data_)


@pytest.mark.parametrize(("path", "status"), [
    ("/hooks/GitHub", 404), ("/hooks/GITHUB", 404), ("/hooks/github/", 404), ("/hooks/github%2F", 404),
    ("/hooks/github%2Fx", 404), ("/hooks/%20github", 404), ("/hooks/github%00", 404), ("/hooks/github;x=1", 404),
    ("/hooks/jenkins", 404), ("/hooks/", 404), ("/hooks/hcp_terraform", 404), ("/hooks/..%2Fgithub", 404),
    ("/hooks/git%68ub", 401), ("/hooks/github?source=standard", 401), ("/hooks/%67%69%74%68%75%62", 401),
    ("//hooks/github", 404),
])
def test_encoded_source_paths_never_bypass(hostile: Hostile, path: str, status: int) -> None:
    """An encoded path either names the same source, whose secret is then required, or none (404)."""
    body = dumps(_STANDARD_DOC)
    headers = sign("standard", body)  # validly signed for another source: worth nothing here
    before = hostile.snapshot()
    answer = hostile.post("github", body, headers, path=path)
    hostile.check("github", before, answer)
    assert answer.status_code == status, answer.get_json()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_answer_405_in_the_error_shape(hostile: Hostile, method: str) -> None:
    answer = hostile.client.open("/hooks/github", method=method, data=b"{}", content_type="application/json")
    assert answer.status_code == 405
    assert set(answer.get_json()) == ERROR_KEYS


@pytest.mark.parametrize("source", SOURCES)
def test_a_signature_for_one_source_is_worthless_for_another(hostile: Hostile, source: str) -> None:
    _, event, doc = next(f for f in FIXTURES if f[0] == source)
    body = dumps(doc)
    for other in SOURCES:
        if other != source:
            headers = [h for h in sign(other, body) if h[0] != "Content-Type"] + [("Content-Type", "application/json")]
            if source == "github":
                headers.append(("X-GitHub-Event", event or "workflow_run"))
            answer = hostile.post(source, body, headers)
            assert answer.status_code == 401, (source, other, answer.get_json())


# 7. Empty secrets are refused: by the settings, and by the intake if they get there anyway.


@pytest.mark.parametrize("value", ["", " ", ",", " , ,", "\t\n"])
@pytest.mark.parametrize("variable", ["RECEIVER_SECRET_HCP_TERRAFORM", "RECEIVER_SECRET_GITHUB",
                                      "RECEIVER_SECRET_GITLAB", "RECEIVER_SECRET_STANDARD"])
def test_settings_refuse_empty_secrets(variable: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no secret"):
        Settings.from_env({variable: value})
    secret_file = tmp_path / "secret"
    secret_file.write_text(value + "\n")
    with pytest.raises(ConfigError, match="holds no secret"):
        Settings.from_env({f"{variable}_FILE": str(secret_file)})


def test_settings_drop_blank_entries_of_a_rotation_list() -> None:
    settings_ = Settings.from_env({"RECEIVER_SECRET_GITHUB": " a , ,b ,"})
    assert settings_.secrets_for("github") == ("a", "b")


@pytest.mark.parametrize("source", SOURCES)
def test_empty_secrets_that_reach_the_intake_still_refuse_everything(tmp_path: Path, source: str) -> None:
    """Settings built in code (not from the environment) with blank secrets: nothing verifies."""
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    blank: tuple[str, ...] = ("", "  ", "whsec_") if source in ("standard", "gitlab") else ("", "  ")
    app = create_app(Settings(mapping_path=mapping, database_url=f"sqlite:///{tmp_path / 'outbox.db'}",
                              secrets={source: blank}, embedded_worker=False))
    try:
        client = app.test_client()
        _, event, doc = next(f for f in FIXTURES if f[0] == source)
        body = dumps(doc)
        timestamp = str(int(time.time()))
        empty_hmac_sha256 = hmac.new(b"", f"m.{timestamp}.".encode() + body, hashlib.sha256).digest()
        attempts: list[Headers] = [
            [("Content-Type", "application/json")],
            [("Content-Type", "application/json"), ("X-TFE-Notification-Signature", hmac_hex("", body, "sha512"))],
            [("Content-Type", "application/json"), ("X-GitHub-Event", event or "workflow_run"),
             ("X-Hub-Signature-256", "sha256=" + hmac_hex("", body, "sha256"))],
            [("Content-Type", "application/json"), ("X-Gitlab-Event", event or "Pipeline Hook"),
             ("X-Gitlab-Token", "")],
            [("Content-Type", "application/json"), ("X-Gitlab-Token", "  ")],
            [("Content-Type", "application/json"), ("webhook-id", "m"), ("webhook-timestamp", timestamp),
             ("webhook-signature", "v1," + base64.b64encode(empty_hmac_sha256).decode())],
        ]
        for headers in attempts:
            answer = client.post(f"/hooks/{source}", data=body, headers=headers)
            assert answer.status_code == 401, (headers, answer.get_json())
            assert set(answer.get_json()) == ERROR_KEYS
        assert sum(app.extensions["pipedial"].outbox.counts().values()) == 0
    finally:
        app.extensions["pipedial"].close()


# 8. Over real HTTP: gunicorn joins a repeated header into one comma-separated value.


@pytest.mark.slow
def test_repeated_signature_headers_over_http_are_refused(tmp_path: Path) -> None:
    """The WSGI environ cannot hold a header twice; under gunicorn the joined value no longer verifies."""
    import http.client

    from receiver.sandbox.server import SandboxServer
    from tests.helpers.receiver import ReceiverProcess
    from tests.helpers.sandbox import sandbox_config

    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    env = {"RECEIVER_SECRET_HCP_TERRAFORM": HCP_SECRET, "RECEIVER_SECRET_GITHUB": GITHUB_SECRET,
           "RECEIVER_SECRET_GITLAB": f"{GITLAB_TOKEN},{GITLAB_KEY}", "RECEIVER_SECRET_STANDARD": STANDARD_KEY,
           "RECEIVER_EMBEDDED_WORKER": "0"}
    with SandboxServer(sandbox_config()) as platform:
        receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping, env=env).start()
        try:
            def post(source: str, body: bytes, headers: Headers) -> int:
                connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
                try:
                    connection.putrequest("POST", f"/hooks/{source}")
                    for name, value in [*headers, ("Content-Length", str(len(body)))]:
                        connection.putheader(name, value)
                    connection.endheaders(body)
                    answer = connection.getresponse()
                    assert set(json.loads(answer.read())) >= {"error"} or answer.status < 400
                    return answer.status
                finally:
                    connection.close()

            for source, event, doc in FIXTURES:
                body = dumps(doc)
                headers = sign(source, body, event=event)
                for name in VERIFIED_HEADERS[source] | {SIGNATURE_HEADER[source].lower()}:
                    good = header(headers, name)
                    for repeated in ([good, good], [good, "0" * len(good)], ["0" * len(good), good]):
                        sent = replace_header(headers, name, None) + [(name, value) for value in repeated]
                        assert post(source, body, sent) == 401, (source, name, repeated)
                assert post(source, body, sign(source, body, event=event)) in (200, 202)
        finally:
            receiver.stop()
