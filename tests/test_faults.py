"""Faults on the platform side: errors, latency, 429 windows and hung calls; what is guaranteed through them.

README "What is guaranteed": a 2xx means stored; every stored job is called until it succeeds or uses
up RECEIVER_MAX_ATTEMPTS (then dead, and a replay grants a fresh budget); add_contact is effectively
once (the contact id is derived from the state change, so a retry after an ambiguous outcome is an
upsert); trigger is at least once (a retry after a timeout may call twice, and says so in the log).
The outbox here is SQLite: these guarantees do not depend on the backend.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from receiver.deliver import AMBIGUITY
from receiver.outbox.sqlite import SqliteOutbox
from receiver.sandbox.server import SandboxServer
from tests.helpers.receiver import REPO, ReceiverProcess, hcp_headers, hcp_run_body, wait_for
from tests.helpers.sandbox import sandbox_config

CONTACT_ROUTE = {
    "name": "page-contact",
    "match": {"source": "hcp-terraform", "state": ["failed"]},
    "target": {"action": "add_contact", "contact_list_id": "cl-oncall", "division_id": "div-ops",
               "contact": {"Phone": "+15550100", "Workspace": "{workspace}", "Reason": "{run_id}"}},
}
TRIGGER_ROUTE = {
    "name": "page-trigger",
    "match": {"source": "hcp-terraform", "state": ["failed"]},
    "target": {"action": "trigger", "contact_list_id": "cl-oncall", "division_id": "div-ops"},
}


@pytest.fixture(name="platform")
def _platform() -> Iterator[SandboxServer]:
    with SandboxServer(sandbox_config()) as server:
        yield server


def write_mapping(tmp_path: Path, *routes: dict[str, Any]) -> Path:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"version": 1, "routes": list(routes)}))
    return path


def patch(platform: SandboxServer, **state: Any) -> None:
    requests.patch(f"{platform.url}/sandbox/state", json=state, timeout=5).raise_for_status()


def script(platform: SandboxServer, path: str, *responses: dict[str, Any]) -> None:
    requests.post(f"{platform.url}/sandbox/script", timeout=5,
                  json={"method": "POST", "path": path, "responses": list(responses)}).raise_for_status()


def sandbox(platform: SandboxServer, what: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = requests.get(f"{platform.url}/sandbox/{what}", timeout=10).json()
    return entries


def cli(receiver: ReceiverProcess, *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "receiver", *args], cwd=REPO, env=receiver.env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in args or args[:2] == ("outbox", "show") else done.stdout


def send(receiver: ReceiverProcess, run: str) -> dict[str, Any]:
    body = hcp_run_body(run)
    answer = receiver.post(body, hcp_headers(body))
    assert answer.status_code in (200, 202), answer.text
    data: dict[str, Any] = answer.json()
    return data


@pytest.mark.slow
def test_every_accepted_event_is_delivered_through_faults_and_add_contact_never_twice(
    tmp_path: Path, platform: SandboxServer
) -> None:
    max_attempts = 10
    state_changes = 80
    # 30 % of calls answer 503, 10 % of action calls hang past the receiver's timeout and are then
    # performed anyway, every call takes 20 ms, the first three contact calls are answered 429 with
    # Retry-After, and the token may make 25 calls per 1 s window (429 beyond: the receiver's pacer
    # reads the window from the inin-ratelimit-* headers and keeps under it).
    patch(platform, faults={"error_rate": 0.3, "latency_ms": 20, "timeout_rate": 0.1, "timeout_seconds": 1.0},
          rate_limit_per_minute=25, rate_limit_window_seconds=1)
    script(platform, "/contacts$", *[{"status": 429, "headers": {"Retry-After": "1"}}] * 3)
    receiver = ReceiverProcess(
        tmp_path, sandbox_url=platform.url, mapping=write_mapping(tmp_path, CONTACT_ROUTE), workers=2,
        env={"RECEIVER_REQUEST_TIMEOUT": "0.5", "RECEIVER_MAX_ATTEMPTS": str(max_attempts),
             "RECEIVER_LEASE_SECONDS": "10", "RECEIVER_RATE_LIMIT_PER_MINUTE": "1000000"},
    ).start()
    runs = [f"run-fault-{i:03d}" for i in range(state_changes)]
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda run: send(receiver, run), runs + runs[::4]))  # and a quarter again
        assert sum(not a["duplicate"] for a in answers) == state_changes
        jobs = {a["routes"][0]["job_id"] for a in answers}
        assert len(jobs) == state_changes

        def finished() -> list[dict[str, Any]] | None:
            listed: list[dict[str, Any]] = cli(receiver, "outbox", "list", "--json", "--limit", "1000")
            return listed if all(job["state"] in ("delivered", "dead") for job in listed) else None

        listed = wait_for(finished, timeout=60, interval=0.5)
        # Attempts are bounded by the policy, and a job is dead only when it used them all up.
        assert all(1 <= job["attempts"] <= max_attempts for job in listed)
        dead = [job for job in listed if job["state"] == "dead"]
        assert all(job["attempts"] == max_attempts and job["diagnosis"]["cause"].startswith(
            f"gave up after {max_attempts} attempts") for job in dead), dead
        if dead:  # rare (0.37 ** 10 per job): the operator replays them, with a fresh budget each
            cli(receiver, "outbox", "replay", "--dead")
            listed = wait_for(lambda: (got := finished()) and all(j["state"] == "delivered" for j in got) and got,
                              timeout=30, interval=0.5)
        assert {job["id"] for job in listed} == jobs and {job["state"] for job in listed} == {"delivered"}
        elapsed = time.monotonic() - started
        time.sleep(1.5)  # calls that hung past the receiver's timeout are performed by now
        entries = sandbox(platform, "journal")
        contacts = sandbox(platform, "contacts")
        statuses = Counter(r["status"] for r in sandbox(platform, "requests") if r["path"].endswith("/contacts"))
    finally:
        receiver.stop()

    # The faults did happen: 503s, 429s (scripted and from the rate window) and timeouts ...
    assert statuses[503] > 0 and statuses[429] >= 3 and statuses[200] >= state_changes
    box = SqliteOutbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    try:
        histories = {job_id: job.history for job_id in jobs if (job := box.get(job_id)) is not None}
    finally:
        box.close()
    errors = Counter(str(a.status_code or a.error_code) for history in histories.values() for a in history)
    assert errors["timeout"] > 0 and errors["503"] > 0 and errors["429"] >= 3, errors
    attempts_listed = {job["id"]: job["attempts"] for job in listed}
    assert {job_id: [a.number for a in history] for job_id, history in histories.items()} \
        == {job_id: list(range(1, attempts_listed[job_id] + 1)) for job_id in jobs}  # every attempt recorded once
    # ... and each timeout was logged as ambiguous (the platform may have acted), then retried.
    failed = [line for line in receiver.log_lines() if line.get("outcome") in ("retry", "dead")]
    timeouts = [line for line in failed if (line.get("error") or "").startswith("timeout")]
    assert len(timeouts) == errors["timeout"] and all(line.get("ambiguous") is True for line in timeouts)
    assert not [line for line in failed if line.get("status_code") in (429, 503) and line.get("ambiguous")]
    # Effectively once: one contact per state change, journaled once, although some were sent twice.
    assert Counter(contact["data"]["Reason"] for contact in contacts) == dict.fromkeys(runs, 1)
    assert Counter(entry["contact_id"] for entry in entries) == {contact["id"]: 1 for contact in contacts}
    print(f"{state_changes} state changes through faults in {elapsed:.1f}s; attempts {dict(errors)}; "
          f"{len(dead)} dead then replayed")


@pytest.mark.slow
def test_after_a_timeout_trigger_may_call_twice_and_says_so_add_contact_upserts(
    tmp_path: Path, platform: SandboxServer
) -> None:
    # Every action call hangs 1.5 s, past the receiver's 0.5 s timeout, and is then performed anyway.
    patch(platform, faults={"timeout_rate": 1.0, "timeout_seconds": 1.5})
    mapping = write_mapping(tmp_path, {**CONTACT_ROUTE, "continue": True}, TRIGGER_ROUTE)
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping,
                               env={"RECEIVER_REQUEST_TIMEOUT": "0.5", "RECEIVER_LEASE_SECONDS": "10"}).start()
    try:
        routes = {r["name"]: r["job_id"] for r in send(receiver, "run-ambiguous")["routes"]}

        def attempts(job_id: int) -> int:
            count: int = cli(receiver, "outbox", "show", str(job_id))["attempts"]
            return count

        wait_for(lambda: all(attempts(job_id) >= 1 for job_id in routes.values()), timeout=15)
        patch(platform, faults={"timeout_rate": 0.0})
        wait_for(lambda: all(cli(receiver, "outbox", "show", str(job_id))["state"] == "delivered"
                             for job_id in routes.values()), timeout=15)
        time.sleep(2.0)  # every hung call is performed by now
        jobs = {name: cli(receiver, "outbox", "show", str(job_id)) for name, job_id in routes.items()}
    finally:
        receiver.stop()
    entries = sandbox(platform, "journal")
    contacts = sandbox(platform, "contacts")
    lines = receiver.log_lines()
    for job in jobs.values():
        outcomes = [(a["outcome"], a["error_code"]) for a in job["history"]]
        hung = len(outcomes) - 1
        assert hung >= 1 and outcomes == [("retry", "timeout")] * hung + [("delivered", None)], outcomes
        retried = [line for line in lines if line.get("job_id") == job["id"] and line.get("outcome") == "retry"]
        assert len(retried) == hung
        assert all(line["ambiguous"] is True and line["error"].startswith("timeout") for line in retried)
        action = job["target"]["action"]
        called = [e for e in entries if e["action"] == action]
        if action == "trigger":  # not idempotent: each hung call AND the retry called: at least once, maybe more
            assert not AMBIGUITY["trigger"].idempotent and AMBIGUITY["trigger"].retry
            assert len(called) == hung + 1 >= 2
            assert {e["body"]["runId"] for e in called} == {"run-ambiguous"}
        else:  # idempotent: every repeat carried the same contact id, so it is one contact, journaled once
            assert AMBIGUITY["add_contact"].idempotent and AMBIGUITY["add_contact"].retry
            assert len(called) == 1 and [c["id"] for c in contacts] == [called[0]["contact_id"]]
    assert {job["target"]["action"] for job in jobs.values()} == {"trigger", "add_contact"}


@pytest.mark.slow
def test_a_replay_after_max_attempts_grants_a_fresh_budget(tmp_path: Path, platform: SandboxServer) -> None:
    script(platform, "/trigger$", *[{"status": 503}] * 3)
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=write_mapping(tmp_path, TRIGGER_ROUTE),
                               env={"RECEIVER_MAX_ATTEMPTS": "2"}).start()
    try:
        job_id = send(receiver, "run-replay")["routes"][0]["job_id"]
        dead = wait_for(lambda: (job := cli(receiver, "outbox", "show", str(job_id)))["state"] == "dead" and job)
        assert dead["attempts"] == 2 and dead["diagnosis"]["cause"].startswith("gave up after 2 attempts")
        cli(receiver, "outbox", "replay", str(job_id))
        # Attempt 3 fails too (the third scripted 503): with a fresh budget of 2 that is a retry, not dead again.
        done = wait_for(lambda: (job := cli(receiver, "outbox", "show", str(job_id)))["state"] in ("delivered", "dead")
                        and job, timeout=15)
    finally:
        receiver.stop()
    assert done["state"] == "delivered", done
    assert [a["status_code"] for a in done["history"]] == [503, 503, 503, 202]  # the whole history is kept
    assert done["replayed_attempts"] == 2
    assert len(sandbox(platform, "journal")) == 1


def _guarantees_section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## What is guaranteed.*?(?=^## )", readme, flags=re.S | re.M)
    assert match, "README.md has no 'What is guaranteed' section"
    return match.group(0)


@pytest.mark.parametrize("action", sorted(AMBIGUITY))
def test_readme_states_the_ambiguity_policy_of_every_action_as_deliver_applies_it(action: str) -> None:
    policy = AMBIGUITY[action]
    rows = [line.strip() for line in _guarantees_section().splitlines() if line.strip().startswith(f"| `{action}` |")]
    assert len(rows) == 1, f"README 'What is guaranteed' needs one table row for {action}"
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[1] == ("idempotent" if policy.idempotent else "not idempotent")
    assert cells[2].startswith("retried" if policy.retry else "dead")
    import receiver.deliver

    docstring = receiver.deliver.__doc__ or ""
    assert f"- {action}: " + ("idempotent" if policy.idempotent else "NOT idempotent") in docstring
