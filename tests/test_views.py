"""POST /hooks/<source> through the app factory: every answer of DESIGN.md, nothing stored on errors."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from receiver import create_app
from receiver.config import Settings
from receiver.delivery_process import DeliveryProcess
from receiver.errors import OutboxUnavailableError
from receiver.outbox import open_outbox
from tests.helpers.receiver import HCP_SECRET, hcp_headers, hcp_run_body, wait_for

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "webhooks"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(name="settings")
def _settings(tmp_path: Path) -> Settings:
    return Settings(
        mapping_path=REPO / "examples" / "mapping.yaml",
        database_url=f"sqlite:///{tmp_path / 'outbox.db'}",
        secrets={"hcp-terraform": ("rotated-new", HCP_SECRET)},
        embedded_worker=False,
        max_body=64 * 1024,
    )


@pytest.fixture(name="app")
def _app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["pipedial"].close()


@pytest.fixture(name="client")
def _client(app: Flask) -> FlaskClient:
    return app.test_client()


def stored_jobs(app: Flask) -> int:
    counts: dict[str, int] = app.extensions["pipedial"].outbox.counts()
    return sum(counts.values())


def post(client: FlaskClient, body: bytes, headers: dict[str, str] | None = None, source: str = "hcp-terraform") -> Any:
    return client.post(f"/hooks/{source}", data=body, headers=hcp_headers(body) if headers is None else headers)


def test_signed_event_is_stored_and_answered_202(client: FlaskClient, app: Flask) -> None:
    body = hcp_run_body("run-1")
    answer = post(client, body)
    assert answer.status_code == 202
    data = answer.get_json()
    assert data["duplicate"] is False and data["event_id"]
    assert data["routes"][0]["name"] == "hcp-run-problem"
    assert stored_jobs(app) == 1


def test_redelivery_is_answered_200_duplicate_and_stores_nothing_new(client: FlaskClient, app: Flask) -> None:
    body = hcp_run_body("run-2")
    first = post(client, body).get_json()
    again = post(client, body)
    assert again.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert again.get_json()["routes"][0]["job_id"] == first["routes"][0]["job_id"]
    assert stored_jobs(app) == 1


def test_any_rotated_secret_verifies(client: FlaskClient) -> None:
    body = hcp_run_body("run-3")
    assert post(client, body, hcp_headers(body, "rotated-new")).status_code == 202


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (lambda b, h: (b, {**h, "X-TFE-Notification-Signature": "0" * 128}), 401, "bad_signature"),
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "X-TFE-Notification-Signature"}), 401, "bad_signature"),
        (lambda b, h: (b.replace(b"run-x", b"run-y"), h), 401, "bad_signature"),
        (lambda b, h: (b, {**h, "Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "Content-Type"}), 415, "unsupported_media_type"),
    ],
)
def test_bad_requests_are_refused_and_store_nothing(
    client: FlaskClient, app: Flask, mutate: Any, status: int, code: str
) -> None:
    body, headers = mutate(hcp_run_body("run-x"), hcp_headers(hcp_run_body("run-x")))
    answer = post(client, body, headers)
    assert answer.status_code == status
    assert answer.get_json()["error"] == code
    assert stored_jobs(app) == 0


def test_invalid_json_is_400_with_a_json_path(client: FlaskClient, app: Flask) -> None:
    body = b'{"payload_version": 1,'
    answer = post(client, body)
    assert answer.status_code == 400
    assert answer.get_json() == {"error": "invalid_payload", "message": answer.get_json()["message"], "json_path": "$"}
    assert stored_jobs(app) == 0


def test_schema_violation_is_400_naming_where(client: FlaskClient, app: Flask) -> None:
    body = json.dumps({"payload_version": 1, "notifications": "nope"}).encode()
    answer = post(client, body)
    assert answer.status_code == 400
    assert answer.get_json()["json_path"].startswith("$")
    assert stored_jobs(app) == 0


def test_body_over_the_limit_is_413(client: FlaskClient, app: Flask) -> None:
    body = b'{"x": "' + b"a" * (70 * 1024) + b'"}'
    answer = post(client, body)
    assert answer.status_code == 413
    assert answer.get_json()["error"] == "body_too_large"
    assert stored_jobs(app) == 0


def test_unknown_source_is_404(client: FlaskClient) -> None:
    answer = post(client, b"{}", {"Content-Type": "application/json"}, source="jenkins")
    assert answer.status_code == 404
    assert answer.get_json()["error"] == "unknown_source"


def test_source_without_a_secret_is_refused(client: FlaskClient) -> None:
    body = json.dumps({"state": "failed"}).encode()
    answer = post(client, body, {"Content-Type": "application/json"}, source="standard")
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "source_not_configured"
    assert "RECEIVER_SECRET_STANDARD" in answer.get_json()["message"]


def test_allow_unsigned_accepts_a_source_without_secret(settings: Settings) -> None:
    app = create_app(settings.replace(secrets={}, allow_unsigned=frozenset({"hcp-terraform"})))
    try:
        body = hcp_run_body("run-unsigned")
        answer = app.test_client().post("/hooks/hcp-terraform", data=body,
                                        headers={"Content-Type": "application/json"})
        assert answer.status_code == 202
    finally:
        app.extensions["pipedial"].close()


def test_duplicated_signature_header_is_refused(client: FlaskClient) -> None:
    body = hcp_run_body("run-dup")
    sig = hcp_headers(body)["X-TFE-Notification-Signature"]
    headers = [("Content-Type", "application/json"), ("X-TFE-Notification-Signature", sig),
               ("X-TFE-Notification-Signature", "0" * 128)]
    answer = client.post("/hooks/hcp-terraform", data=body, headers=headers)
    assert answer.status_code == 401


def test_verification_delivery_is_acknowledged_and_never_routed(client: FlaskClient, app: Flask) -> None:
    body = (FIXTURES / "hcp-terraform" / "verification.send-a-test.json").read_bytes()
    answer = post(client, body)
    assert answer.status_code == 200
    assert answer.get_json()["outcome"] == "ignored"
    assert stored_jobs(app) == 0


def test_unmatched_event_is_ignored_with_200(client: FlaskClient, app: Flask) -> None:
    body = hcp_run_body("run-ok", trigger="run:completed", status="applied")
    answer = post(client, body)
    assert answer.status_code == 200
    assert answer.get_json() == {"outcome": "ignored", "reason": "no route matches this event"}
    assert stored_jobs(app) == 0


def test_outbox_failure_is_503_never_2xx(client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OutboxUnavailableError("disk full")

    monkeypatch.setattr(app.extensions["pipedial"].outbox, "enqueue", broken)
    answer = post(client, hcp_run_body("run-503"))
    assert answer.status_code == 503
    assert answer.get_json()["error"] == "outbox_unavailable"


def test_readyz_reports_the_outbox(client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200

    def broken() -> None:
        raise OutboxUnavailableError("database is locked")

    monkeypatch.setattr(app.extensions["pipedial"].outbox, "ping", broken)
    assert client.get("/readyz").status_code == 503


def test_metrics_count_received_and_rejected(client: FlaskClient) -> None:
    post(client, hcp_run_body("run-m"))
    post(client, b"{}", {"Content-Type": "text/plain"})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'pipedial_webhooks_received_total{source="hcp-terraform"} 2.0' in text
    assert 'pipedial_webhooks_rejected_total{reason="unsupported_media_type",source="hcp-terraform"} 1.0' in text
    assert 'pipedial_outbox_jobs{state="pending"} 1.0' in text


def test_a_rejection_is_audited_with_request_id(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="receiver"):
        post(client, hcp_run_body("run-r"), {"Content-Type": "application/json", "X-Request-Id": "req-123"})
    rejected = [r for r in caplog.records if r.getMessage() == "webhook rejected"]
    assert len(rejected) == 1
    fields = rejected[0].__dict__
    assert (fields["outcome"], fields["status_code"], fields["error"]) == ("rejected", 401, "bad_signature")
    assert (fields["request_id"], fields["source"]) == ("req-123", "hcp-terraform")


def test_an_acceptance_is_audited_with_event_and_mapping_version(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="receiver"):
        body = hcp_run_body("run-audit")
        answer = post(client, body, {**hcp_headers(body), "X-Request-Id": "req-456"}).get_json()
    (line,) = [r.__dict__ for r in caplog.records if r.getMessage() == "webhook accepted"]
    assert line["event_id"] == answer["event_id"]
    assert (line["request_id"], line["kind"], line["state"]) == ("req-456", "run:errored", "failed")
    assert line["mapping_version"] and line["duration_ms"] >= 0


def test_a_bad_mapping_stops_start_up(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\nroutes: []\n")
    from receiver.errors import MappingError

    with pytest.raises(MappingError) as info:
        create_app(settings.replace(mapping_path=bad))
    assert {p for p, _ in info.value.errors} == {"$.version", "$.routes"}


def test_outbox_is_a_real_sqlite_file(settings: Settings, client: FlaskClient) -> None:
    post(client, hcp_run_body("run-file"))
    box = open_outbox(settings.database_url)
    try:
        assert box.counts()["pending"] == 1
    finally:
        box.close()


def test_with_the_embedded_dispatcher_requests_are_counted_for_its_intake_gate(settings: Settings) -> None:
    app = create_app(settings.replace(embedded_worker=True, dry_run=True))
    rt = app.extensions["pipedial"]
    try:
        seen: list[int] = []
        app.add_url_rule("/probe", "probe", lambda: str(seen.append(rt.intake.in_flight) or ""))
        assert app.test_client().get("/probe").status_code == 200
        assert seen == [1] and rt.intake.in_flight == 0
        assert rt.dispatcher._intake is rt.intake
    finally:
        rt.close()


def test_with_a_delivery_process_a_webhook_wakes_it_and_saturation_is_passed_on_to_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child reads its settings from the environment, as `receiver serve`'s do: the same ones here.
    monkeypatch.setenv("RECEIVER_MAPPING", str(settings.mapping_path))
    monkeypatch.setenv("RECEIVER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("RECEIVER_DRY_RUN", "1")
    monkeypatch.setenv("RECEIVER_POLL_INTERVAL", "30")
    app = create_app(settings.replace(embedded_worker=True, dry_run=True), delivery="process")
    rt = app.extensions["pipedial"]
    try:
        assert isinstance(rt.dispatcher, DeliveryProcess) and rt.dispatcher.pid is not None
        assert rt.intake is not None and rt.intake._on_saturated == rt.dispatcher.hold
        client = app.test_client()
        box = open_outbox(settings.database_url)
        try:
            for n in (1, 2):  # the first finds the child starting; the second, idle for up to 30 s
                body = hcp_run_body(f"run-woken-{n}")
                assert client.post("/hooks/hcp-terraform", data=body, headers=hcp_headers(body)).status_code == 202
                woken = time.monotonic()
                wait_for(lambda n=n: box.counts()["delivered"] == n, timeout=20)  # dry run: recorded, not called
                time.sleep(0.3)
            assert time.monotonic() - woken < 5
        finally:
            box.close()
    finally:
        rt.close()
    assert rt.dispatcher is None


def test_without_the_embedded_dispatcher_there_is_no_gate(app: Flask) -> None:
    assert app.extensions["pipedial"].intake is None
