"""End to end over real HTTP: signed webhook → gunicorn receiver → outbox → sandbox platform journal."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from receiver.sandbox.server import SandboxServer
from tests.helpers.receiver import ReceiverProcess, hcp_headers, hcp_run_body, wait_for
from tests.helpers.sandbox import journal, sandbox_config

pytestmark = pytest.mark.slow

MAPPING = {
    "version": 1,
    "defaults": {"division_id": "div-ops"},
    "routes": [
        {"name": "hcp-failed", "match": {"source": "hcp-terraform", "state": ["failed", "canceled"]},
         "target": {"action": "trigger", "contact_list_id": "cl-oncall", "division_id": "div-ops"}},
    ],
}


@pytest.fixture(name="mapping")
def _mapping(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(MAPPING))
    return path


@pytest.fixture(name="platform")
def _platform() -> Iterator[SandboxServer]:
    server = SandboxServer(sandbox_config())
    server.start()
    yield server
    server.stop()



def test_signed_notification_rings_once_even_when_posted_three_times(
    tmp_path: Path, mapping: Path, platform: SandboxServer
) -> None:
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping).start()
    try:
        body = hcp_run_body("run-e2e-1")
        answers = [receiver.post(body, hcp_headers(body)) for _ in range(3)]
        assert answers[0].status_code == 202, answers[0].text
        first = answers[0].json()
        assert first["duplicate"] is False
        assert [r["name"] for r in first["routes"]] == ["hcp-failed"]
        for again in answers[1:]:
            assert again.status_code == 200
            assert again.json()["duplicate"] is True
        entries = wait_for(lambda: journal(platform))
        time.sleep(1.0)  # give a wrongly repeated delivery the chance to show up
        entries = journal(platform)
        assert len(entries) == 1
        assert entries[0]["action"] == "trigger"
        assert entries[0]["contact_list_id"] == "cl-oncall"
        assert entries[0]["division_id"] == "div-ops"
    finally:
        receiver.stop()
    lines = receiver.log_lines()
    assert all("unparsed" not in line for line in lines), [line for line in lines if "unparsed" in line][:3]
    delivered = [line for line in lines if line.get("outcome") == "delivered"]
    assert len(delivered) == 1
    accepted = [line for line in lines if line.get("outcome") == "accepted"]
    assert delivered[0]["event_id"] == accepted[0]["event_id"]
    assert delivered[0]["request_id"] == accepted[0]["request_id"]
    assert delivered[0]["contact_list_id"] == "cl-oncall"
    assert delivered[0]["mapping_version"] == accepted[0]["mapping_version"]


def test_acknowledged_then_killed_is_delivered_exactly_once_after_restart(
    tmp_path: Path, mapping: Path, platform: SandboxServer
) -> None:
    # First life: intake only (no delivery), so the kill lands after the ack and before any call.
    first = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping,
                            env={"RECEIVER_EMBEDDED_WORKER": "0"}).start()
    body = hcp_run_body("run-e2e-kill")
    answer = first.post(body, hcp_headers(body))
    assert answer.status_code == 202
    first.kill()
    assert journal(platform) == []

    second = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping, port=first.port).start()
    try:
        wait_for(lambda: journal(platform))
        time.sleep(1.0)
        assert len(journal(platform)) == 1
    finally:
        second.stop()


def test_two_workers_deliver_200_distinct_events_once_each(
    tmp_path: Path, mapping: Path, platform: SandboxServer
) -> None:
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping, workers=2).start()
    try:
        bodies = [hcp_run_body(f"run-many-{i}") for i in range(200)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda b: receiver.post(b, hcp_headers(b)).status_code, bodies))
        assert answers == [202] * 200
        wait_for(lambda: len(journal(platform)) >= 200, timeout=60)
        time.sleep(1.0)
        entries = journal(platform)
        runs = Counter(json.loads(json.dumps(e["body"])).get("runId") if isinstance(e["body"], dict) else None
                       for e in entries)
        assert len(entries) == 200
        assert all(count == 1 for count in runs.values())
    finally:
        receiver.stop()


def test_serve_logs_preflight_at_start_up(tmp_path: Path, mapping: Path, platform: SandboxServer) -> None:
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping,
                               env={"RECEIVER_PREFLIGHT_ON_START": "1"}).start()
    try:
        finished = wait_for(lambda: [ln for ln in receiver.log_lines() if ln.get("message") == "preflight finished"])
    finally:
        receiver.stop()
    assert finished[0]["outcome"] == "ok"
    checks = [ln for ln in receiver.log_lines() if ln.get("message") == "preflight check"]
    assert {c["route"] for c in checks} >= {"hcp-failed"}


def test_serve_starts_even_when_the_platform_is_unreachable(tmp_path: Path, mapping: Path) -> None:
    from tests.helpers.receiver import free_port

    receiver = ReceiverProcess(tmp_path, sandbox_url=f"http://127.0.0.1:{free_port()}", mapping=mapping,
                               env={"RECEIVER_PREFLIGHT_ON_START": "1"}).start()
    try:
        body = hcp_run_body("run-offline")
        assert receiver.post(body, hcp_headers(body)).status_code == 202  # intake never waits for the platform
        failed = wait_for(lambda: [ln for ln in receiver.log_lines() if ln.get("message") == "preflight finished"])
    finally:
        receiver.stop()
    assert failed[0]["outcome"] == "failed"
    token = [ln for ln in receiver.log_lines() if ln.get("check") == "token"]
    assert token and token[0]["outcome"] == "fail" and token[0]["fix"]
