"""docs/openapi.yaml: it describes exactly the app's routes and answers, and a live receiver conforms to it.

The fast tests compare the document with the app (routes, methods, sources, error codes per status).
The slow ones start a real `receiver serve` (gunicorn) against the sandbox platform and run
schemathesis against it: once through its CLI as a user would (unsigned, so the intake mostly
answers 401/404/415), and once through its Python API with every generated delivery signed for the
source in its path, so the generated payloads reach parse, route and the outbox (400/200/202).
Checks: not_a_server_error, status_code_conformance, content_type_conformance,
response_schema_conformance.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, settings

from receiver import create_app
from receiver.config import Settings
from receiver.errors import (
    BodyTooLargeError,
    OutboxUnavailableError,
    PayloadError,
    SignatureError,
    UnknownSourceError,
    UnsignedSourceError,
    UnsupportedMediaTypeError,
)
from receiver.model import JOB_STATES, STATES
from receiver.sandbox.server import SandboxServer
from receiver.sources import SOURCES
from tests.helpers.receiver import ReceiverProcess
from tests.helpers.sandbox import sandbox_config

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "docs" / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
#: Every ReceiverError raised while answering a request (the others are start-up or delivery errors).
HTTP_ERRORS = (PayloadError, SignatureError, UnsignedSourceError, UnknownSourceError, BodyTooLargeError,
               UnsupportedMediaTypeError, OutboxUnavailableError)

HCP_SECRET = "openapi-hcp-secret"
GITHUB_SECRET = "openapi-github-secret"
GITLAB_TOKEN = "openapi-gitlab-token"
STANDARD_KEY = "whsec_" + base64.b64encode(b"openapi-standard-signing-key-32b").decode()
MAPPING = {
    "version": 1,
    "defaults": {"division_id": "div-ops"},
    "routes": [{"name": "everything", "match": {"source": "*"},
                "target": {"action": "trigger", "contact_list_id": "cl-oncall"}}],
}


def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    return spec


# The document against the app.


@pytest.fixture(name="app_routes")
def _app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    app = create_app(Settings(mapping_path=mapping, database_url=f"sqlite:///{tmp_path / 'outbox.db'}",
                              embedded_worker=False))
    try:
        return {
            (rule.rule.replace("<", "{").replace(">", "}"), method.lower())
            for rule in app.url_map.iter_rules() if rule.endpoint != "static"
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
        }
    finally:
        app.extensions["pipedial"].close()


def test_document_describes_exactly_the_routes_of_the_app(app_routes: set[tuple[str, str]]) -> None:
    spec = load_spec()
    documented = {(path, method) for path, item in spec["paths"].items() for method in item if method in HTTP_METHODS}
    assert documented == app_routes


def test_source_enum_is_the_list_of_sources() -> None:
    operation = load_spec()["paths"]["/hooks/{source}"]["post"]
    source = next(p for p in operation["parameters"] if p["name"] == "source")
    assert source["in"] == "path" and source["required"] is True
    assert source["schema"]["enum"] == list(SOURCES)


def _documented_codes(response: dict[str, Any]) -> set[str]:
    schema = response["content"]["application/json"]["schema"]
    codes: set[str] = set()
    for part in schema.get("allOf", []):
        error = part.get("properties", {}).get("error", {})
        codes |= set(error.get("enum", [])) | ({error["const"]} if "const" in error else set())
    return codes


def test_every_error_answer_of_the_intake_is_documented_with_its_code() -> None:
    spec = load_spec()
    responses = spec["paths"]["/hooks/{source}"]["post"]["responses"]
    assert set(responses) == {"200", "202", "400", "401", "404", "413", "415", "500", "503"}
    all_codes = set(spec["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    for error in HTTP_ERRORS:
        status = str(error.status_code)
        assert error.code in _documented_codes(responses[status]), (error.__name__, status)
        assert error.code in all_codes
    assert _documented_codes(responses["500"]) == {"internal_error"}


def test_every_error_body_follows_the_error_schema() -> None:
    error = load_spec()["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message", "json_path"] and error["additionalProperties"] is False


def test_documented_job_states_are_the_outbox_states() -> None:
    routed = load_spec()["components"]["schemas"]["RoutedJob"]
    assert tuple(routed["properties"]["state"]["enum"]) == JOB_STATES


def test_document_is_valid_openapi_and_uses_the_receivers_schemas() -> None:
    schemathesis = pytest.importorskip("schemathesis")
    schema = schemathesis.openapi.from_path(str(SPEC))
    schema.validate()  # against the OpenAPI 3.1 meta-schema; raises on any violation
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.lower(), op.path) for op in operations} == {
        (m, p) for p, item in load_spec()["paths"].items() for m in item if m in HTTP_METHODS
    }
    components = load_spec()["components"]["schemas"]
    refs = json.dumps([components[name] for name in
                       ("StandardEvent", "HcpTerraformNotification", "GitHubDelivery", "GitLabHook")])
    for source in SOURCES:
        assert f"../receiver/schemas/{source}.schema.json" in refs
        assert (REPO / "receiver" / "schemas" / f"{source}.schema.json").is_file()


# A live receiver under schemathesis.


@dataclass
class Live:
    receiver: ReceiverProcess
    platform: SandboxServer
    db: Path

    @property
    def url(self) -> str:
        return self.receiver.url


@pytest.fixture(name="live", scope="module")
def _live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    pytest.importorskip("schemathesis")
    tmp = tmp_path_factory.mktemp("openapi")
    mapping = tmp / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    platform = SandboxServer(sandbox_config()).start()
    receiver = ReceiverProcess(tmp, sandbox_url=platform.url, mapping=mapping, env={
        "RECEIVER_SECRET_HCP_TERRAFORM": HCP_SECRET,
        "RECEIVER_SECRET_GITHUB": GITHUB_SECRET,
        "RECEIVER_SECRET_GITLAB": GITLAB_TOKEN,
        "RECEIVER_SECRET_STANDARD": STANDARD_KEY,
    })
    try:
        receiver.start()
        yield Live(receiver=receiver, platform=platform, db=tmp / "outbox.db")
    finally:
        receiver.stop()
        platform.stop()


def _assert_server_stayed_healthy(live: Live) -> None:
    lines = live.receiver.log_lines()
    assert all("unparsed" not in line for line in lines), [line for line in lines if "unparsed" in line][:3]
    assert not [line for line in lines if line.get("message") == "unexpected error"]
    assert live.receiver.proc is not None and live.receiver.proc.poll() is None
    with sqlite3.connect(live.db) as db:
        rows = db.execute("SELECT j.state, j.source, e.source, e.event FROM jobs j JOIN events e USING (event_id)")
        for job_state, job_source, event_source, stored in rows:
            event = json.loads(stored)
            assert job_state in JOB_STATES and job_source == event_source == event["source"]
            assert event["state"] in STATES and event["state"] != "verification"


@pytest.mark.slow
def test_schemathesis_cli_passes_against_a_live_receiver(live: Live, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    command = [
        str(st), "run", str(SPEC), "--url", live.url,
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--max-examples", "30", "--seed", "1", "--generation-database", "none", "--workers", "1",
        "--request-timeout", "10", "--no-color", "--report", "junit", "--report-dir", str(tmp_path),
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "passed" in done.stdout
    _assert_server_stayed_healthy(live)


_serial = itertools.count()


def _github_event(body: object) -> str:
    keys = body if isinstance(body, dict) else {}
    for name in ("deployment_status", "workflow_job", "check_suite", "workflow_run"):
        if name in keys:
            return name
    return "ping"


def _gitlab_event(body: object) -> str:
    kind = body.get("object_kind") if isinstance(body, dict) else None
    return {"build": "Job Hook", "deployment": "Deployment Hook"}.get(kind if isinstance(kind, str) else "",
                                                                      "Pipeline Hook")


def signature_headers(source: str, raw: bytes, body: object) -> dict[str, str]:
    """What the real sender adds to this raw body: a valid signature, event name and delivery id."""
    serial = f"openapi-{next(_serial)}"
    if source == "hcp-terraform":
        return {"X-TFE-Notification-Signature": hmac.new(HCP_SECRET.encode(), raw, hashlib.sha512).hexdigest()}
    if source == "github":
        digest = hmac.new(GITHUB_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": _github_event(body),
                "X-GitHub-Delivery": serial}
    if source == "gitlab":
        return {"X-Gitlab-Token": GITLAB_TOKEN, "X-Gitlab-Event": _gitlab_event(body), "X-Gitlab-Event-UUID": serial}
    timestamp = str(int(time.time()))
    key = base64.b64decode(STANDARD_KEY.removeprefix("whsec_"))
    mac = hmac.new(key, f"{serial}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    signature = "v1," + base64.b64encode(mac).decode()
    return {"webhook-id": serial, "webhook-timestamp": timestamp, "webhook-signature": signature}


def send_signed(case: Any, base_url: str, session: requests.Session) -> requests.Response:
    """Send the case as schemathesis would, with a valid signature for the source in its path."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    source = (case.path_parameters or {}).get("source")
    if source is not None:  # negative cases have any text here: quote it whole, as one path segment
        kwargs["url"] = f"{base_url}/hooks/{quote(str(source), safe='')}"
    prepared = requests.Request(**kwargs).prepare()
    if source in SOURCES and case.method.upper() == "POST":
        raw = prepared.body.encode("utf-8") if isinstance(prepared.body, str) else (prepared.body or b"")
        prepared.body = raw
        prepared.headers["Content-Length"] = str(len(raw))
        prepared.headers.update(signature_headers(source, raw, case.body))
    return session.send(prepared, timeout=10)


def _fuzz(operation: Any, mode: Any, base_url: str, session: requests.Session, checks: list[Any]) -> set[int]:
    """Run one operation's generated cases, signed, through the checks; return the statuses seen."""
    seen: set[int] = set()
    post = operation.method.upper() == "POST"

    @settings(max_examples=40 if post else 5, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = send_signed(case, base_url, session)
        seen.add(response.status_code)
        case.validate_response(response, checks=checks)

    run()
    return seen


@pytest.mark.slow
def test_schemathesis_signed_cases_conform_on_a_live_receiver(live: Live) -> None:
    import schemathesis
    from schemathesis import checks

    schema = schemathesis.openapi.from_path(str(SPEC))
    conformance = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
                   checks.response_schema_conformance]
    statuses: dict[str, set[int]] = {}
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            modes = [schemathesis.GenerationMode.POSITIVE]
            if operation.method.upper() == "POST":
                modes.append(schemathesis.GenerationMode.NEGATIVE)
            for mode in modes:
                key = f"{operation.method.upper()} {operation.path} {mode.value}"
                statuses[key] = _fuzz(operation, mode, live.url, session, conformance)
    print(statuses)
    hooks = statuses["POST /hooks/{source} positive"]
    assert 202 in hooks and 400 in hooks, statuses  # the signed deliveries got past verification
    _assert_server_stayed_healthy(live)
