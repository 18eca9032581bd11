"""End to end, issue 4: idempotent add_contact, cooldown, stale ordering, dead → replay, dry run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from receiver.sandbox.server import SandboxServer
from tests.helpers.receiver import REPO, ReceiverProcess, hcp_headers, hcp_run_body, wait_for
from tests.helpers.sandbox import journal, sandbox_config

pytestmark = pytest.mark.slow

CONTACT_ROUTE = {
    "name": "page-oncall",
    "match": {"source": "hcp-terraform", "state": ["failed", "canceled"]},
    "target": {"action": "add_contact", "contact_list_id": "cl-oncall", "division_id": "div-ops",
               "campaign_id": "camp-oncall",
               "contact": {"Phone": "+15550100", "Workspace": "{workspace}", "Reason": "{state}: {run_id}"}},
}
TRIGGER_ROUTE = {
    "name": "trigger-oncall",
    "match": {"source": "hcp-terraform", "state": ["failed", "canceled"]},
    "target": {"action": "trigger", "contact_list_id": "cl-oncall", "division_id": "div-ops"},
}


def write_mapping(tmp_path: Path, *routes: dict[str, Any]) -> Path:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"version": 1, "routes": list(routes)}))
    return path


@pytest.fixture(name="platform")
def _platform() -> Iterator[SandboxServer]:
    with SandboxServer(sandbox_config()) as server:
        yield server



def patch(platform: SandboxServer, **state: Any) -> None:
    requests.patch(f"{platform.url}/sandbox/state", json=state, timeout=5).raise_for_status()


def cli(receiver: ReceiverProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "receiver", *args], cwd=REPO, env=receiver.env,
                          capture_output=True, text=True, timeout=30)


def send(receiver: ReceiverProcess, run_id: str, **kwargs: Any) -> dict[str, Any]:
    body = hcp_run_body(run_id, **kwargs)
    answer = receiver.post(body, hcp_headers(body))
    assert answer.status_code in (200, 202), answer.text
    data: dict[str, Any] = answer.json()
    return data


def test_add_contact_retried_after_a_timeout_is_one_contact(tmp_path: Path, platform: SandboxServer) -> None:
    # Every action call hangs 2 s, past the receiver's 1 s timeout, and is then performed anyway.
    patch(platform, faults={"timeout_rate": 1.0, "timeout_seconds": 2})
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=write_mapping(tmp_path, CONTACT_ROUTE),
                               env={"RECEIVER_REQUEST_TIMEOUT": "1"}).start()
    try:
        job_id = send(receiver, "run-timeout")["routes"][0]["job_id"]
        wait_for(lambda: json.loads(cli(receiver, "outbox", "show", str(job_id)).stdout)["attempts"] >= 1)
        patch(platform, faults={"timeout_rate": 0.0})
        wait_for(lambda: json.loads(cli(receiver, "outbox", "show", str(job_id)).stdout)["state"] == "delivered")
        time.sleep(2.5)  # the hung first call completes on the platform side too
    finally:
        receiver.stop()
    entries = journal(platform)
    assert len(entries) == 1, entries
    contacts = requests.get(f"{platform.url}/sandbox/contacts", timeout=5).json()
    ids = {c["id"] for c in (contacts if isinstance(contacts, list) else contacts.get("contacts", []))}
    assert ids == {entries[0]["contact_id"]}
    assert entries[0]["body"][0]["data"] == {"Phone": "+15550100", "Workspace": "prod-network",
                                             "Reason": "failed: run-timeout"}


def test_cooldown_suppresses_a_second_call_and_keeps_the_job(tmp_path: Path, platform: SandboxServer) -> None:
    route = {**TRIGGER_ROUTE, "target": {**TRIGGER_ROUTE["target"], "cooldown": "10m"}}
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=write_mapping(tmp_path, route)).start()
    try:
        first = send(receiver, "run-cool-1")
        second = send(receiver, "run-cool-2")
        assert first["routes"][0]["state"] == "pending"
        assert second["routes"][0]["state"] == "suppressed"
        assert "cooldown" in second["routes"][0]["reason"]
        wait_for(lambda: journal(platform))
        time.sleep(1.0)
        assert len(journal(platform)) == 1
        listed = cli(receiver, "outbox", "list", "--state", "suppressed")
        assert listed.returncode == 0
        assert "cooldown" in listed.stdout and str(second["routes"][0]["job_id"]) in listed.stdout
    finally:
        receiver.stop()


def test_an_older_state_change_arriving_late_is_stale(tmp_path: Path, platform: SandboxServer) -> None:
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url,
                               mapping=write_mapping(tmp_path, TRIGGER_ROUTE)).start()
    try:
        newer = send(receiver, "run-order", status="canceled", updated_at="2026-11-21T10:05:00.000Z")
        older = send(receiver, "run-order", status="errored", updated_at="2026-11-21T10:00:00.000Z")
        assert newer["routes"][0]["state"] == "pending"
        assert older["routes"][0]["state"] == "stale"
        wait_for(lambda: journal(platform))
        time.sleep(1.0)
        assert len(journal(platform)) == 1
    finally:
        receiver.stop()


def test_dead_on_403_then_replayed_after_the_role_is_fixed(tmp_path: Path, platform: SandboxServer) -> None:
    config = sandbox_config()
    home_only = [{"role_id": "role-pipedial", "division_id": "div-home"}]
    patch(platform, clients=[{**config["clients"][0], "roles": home_only}])
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url,
                               mapping=write_mapping(tmp_path, TRIGGER_ROUTE)).start()
    try:
        job_id = send(receiver, "run-403")["routes"][0]["job_id"]

        def shown() -> dict[str, Any] | None:
            job: dict[str, Any] = json.loads(cli(receiver, "outbox", "show", str(job_id)).stdout)
            return job if job["state"] == "dead" else None

        job = wait_for(shown)
        assert job["attempts"] == 1  # dead at once: a 403 is not retried
        attempt = job["history"][0]
        assert attempt["status_code"] == 403
        assert attempt["error_code"] == "missing.permissions"
        assert attempt["correlation_id"]
        assert "outbound:contactList:edit" in job["diagnosis"]["cause"]
        assert "div-ops" in job["diagnosis"]["cause"] + job["diagnosis"]["fix"]
        assert journal(platform) == []

        patch(platform, clients=config["clients"])
        replayed = cli(receiver, "outbox", "replay", str(job_id))
        assert replayed.returncode == 0, replayed.stderr
        wait_for(lambda: journal(platform))
        time.sleep(1.0)
        assert len(journal(platform)) == 1
        job = json.loads(cli(receiver, "outbox", "show", str(job_id)).stdout)
        assert job["state"] == "delivered"
        assert [a["status_code"] for a in job["history"]][0] == 403  # history kept
    finally:
        receiver.stop()
    dead_lines = [line for line in receiver.log_lines() if line.get("outcome") == "dead"]
    assert dead_lines and dead_lines[0]["correlation_id"] == attempt["correlation_id"]
    assert "outbound:contactList:edit" in json.dumps(dead_lines[0])


def test_dry_run_calls_nothing(tmp_path: Path, platform: SandboxServer) -> None:
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=write_mapping(tmp_path, TRIGGER_ROUTE),
                               env={"RECEIVER_DRY_RUN": "1"}).start()
    try:
        job_id = send(receiver, "run-dry")["routes"][0]["job_id"]
        wait_for(lambda: json.loads(cli(receiver, "outbox", "show", str(job_id)).stdout)["state"] != "pending")
        time.sleep(0.5)
    finally:
        receiver.stop()
    assert journal(platform) == []
    actions = [r for r in requests.get(f"{platform.url}/sandbox/requests", timeout=5).json()
               if r["method"] == "POST" and "/api/" in r["path"]]
    assert actions == []
    assert any(line.get("outcome") == "dry_run" for line in receiver.log_lines())
