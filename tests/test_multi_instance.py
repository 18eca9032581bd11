"""Several instances on one PostgreSQL outbox: one call per state change, and takeover when one dies.

Three real `receiver serve` processes (one gunicorn worker each, so three dispatchers) share one
PostgreSQL schema, the way several instances behind a load balancer share one database. Webhooks
are posted round-robin and concurrently; a third of the state changes is redelivered to another
instance, racing the first delivery. The guarantees checked are the README's "What is guaranteed":
- without failures: exactly one platform call per state change, whatever instance took the webhook
  or delivered the job (FOR UPDATE SKIP LOCKED claims, per-target advisory locks on enqueue);
- with one instance SIGKILLed while it holds leased jobs: every state change is still delivered
  (its leases expire and the others take the jobs over: at least once); the action is add_contact,
  whose contact id is derived from the state change, so a call the dead instance had already made
  and that is made again is an upsert: exactly one contact per state change (effectively once).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from receiver.sandbox.server import SandboxServer
from tests.helpers.postgres import postgres_schema_url, postgres_url  # noqa: F401
from tests.helpers.receiver import ReceiverProcess, hcp_headers, hcp_run_body, wait_for
from tests.helpers.sandbox import sandbox_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STATE_CHANGES = 1000
INSTANCES = 3
UNPACED = 1_000_000  # requests per minute: neither the sandbox nor the receiver's pacer gets in the way

TRIGGER_ROUTE = {
    "name": "page-trigger",
    "match": {"source": "hcp-terraform", "state": ["failed"]},
    "target": {"action": "trigger", "contact_list_id": "cl-oncall", "division_id": "div-ops"},
}
CONTACT_ROUTE = {
    "name": "page-contact",
    "match": {"source": "hcp-terraform", "state": ["failed"]},
    "target": {"action": "add_contact", "contact_list_id": "cl-oncall", "division_id": "div-ops",
               "contact": {"Phone": "+15550100", "Workspace": "{workspace}", "Reason": "{run_id}"}},
}


@pytest.fixture(name="platform")
def _platform() -> Iterator[SandboxServer]:
    with SandboxServer(sandbox_config()) as server:
        patch(server, rate_limit_per_minute=UNPACED)
        yield server


def patch(platform: SandboxServer, **state: Any) -> None:
    requests.patch(f"{platform.url}/sandbox/state", json=state, timeout=5).raise_for_status()


def sandbox(platform: SandboxServer, what: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = requests.get(f"{platform.url}/sandbox/{what}", timeout=10).json()
    return entries


def write_mapping(tmp_path: Path, *routes: dict[str, Any]) -> Path:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"version": 1, "routes": list(routes)}))
    return path


def start_instances(tmp_path: Path, platform: SandboxServer, mapping: Path, database_url: str,
                    env: dict[str, str]) -> list[ReceiverProcess]:
    """Start INSTANCES receivers on one database at once (they migrate it concurrently)."""
    env = {"RECEIVER_RATE_LIMIT_PER_MINUTE": str(UNPACED), **env}
    receivers = [ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping, database_url=database_url,
                                 workers=1, env=env) for _ in range(INSTANCES)]
    try:
        with ThreadPoolExecutor(INSTANCES) as pool:
            list(pool.map(lambda r: r.start(timeout=30), receivers))
    except BaseException:
        for receiver in receivers:
            receiver.kill()
        raise
    return receivers


def post_everything(receivers: list[ReceiverProcess]) -> dict[str, list[tuple[int, bool]]]:
    """Post STATE_CHANGES distinct state changes round-robin, and a third of them again to another instance.

    The redeliveries are shuffled in among the first deliveries, so the two copies often race on two
    instances. Returns, per run id, every (status code, duplicate) answered.
    """
    runs = [f"run-{i:04d}" for i in range(STATE_CHANGES)]
    posts = [(run, receivers[i % INSTANCES]) for i, run in enumerate(runs)]
    posts += [(run, receivers[(i + 1) % INSTANCES]) for i, run in enumerate(runs) if i % 3 == 0]
    random.Random(6).shuffle(posts)

    def post(item: tuple[str, ReceiverProcess]) -> tuple[str, int, bool]:
        run, receiver = item
        body = hcp_run_body(run)
        answer = receiver.post(body, hcp_headers(body))
        duplicate = bool(answer.json().get("duplicate")) if answer.status_code in (200, 202) else False
        return run, answer.status_code, duplicate

    answers: dict[str, list[tuple[int, bool]]] = {}
    with ThreadPoolExecutor(max_workers=12) as pool:
        for run, status, duplicate in pool.map(post, posts):
            answers.setdefault(run, []).append((status, duplicate))
    return answers


def assert_one_acceptance_per_state_change(answers: dict[str, list[tuple[int, bool]]]) -> None:
    assert len(answers) == STATE_CHANGES
    wrong = {run: got for run, got in answers.items()
             if sorted(got) != sorted([(202, False)] + [(200, True)] * (len(got) - 1))}
    assert not wrong, f"{len(wrong)} state changes not answered 202 once and 200 duplicate otherwise: " \
                      f"{list(wrong.items())[:5]}"
    assert sum(len(got) for got in answers.values()) == STATE_CHANGES + (STATE_CHANGES + 2) // 3


def db_rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql.encode(), params).fetchall())


def job_states(url: str) -> dict[str, int]:
    return {state: int(n) for state, n in db_rows(url, "SELECT state, COUNT(*) FROM jobs GROUP BY state")}


def owner_of(receiver: ReceiverProcess) -> str:
    """Return the lease owner id of the receiver's (one) dispatcher, from its log."""
    owners = [line["owner"] for line in receiver.log_lines() if line.get("message") == "dispatcher started"]
    assert len(owners) == 1, owners
    owner: str = owners[0]
    return owner


def stop_all(receivers: list[ReceiverProcess]) -> None:
    for receiver in receivers:
        receiver.stop()


def test_three_instances_call_once_per_state_change(
    tmp_path: Path, platform: SandboxServer, postgres_schema_url: str  # noqa: F811
) -> None:
    started = time.monotonic()
    receivers = start_instances(tmp_path, platform, write_mapping(tmp_path, TRIGGER_ROUTE), postgres_schema_url,
                                env={"RECEIVER_LEASE_SECONDS": "30"})
    try:
        answers = post_everything(receivers)
        assert_one_acceptance_per_state_change(answers)
        wait_for(lambda: job_states(postgres_schema_url) == {"delivered": STATE_CHANGES}, timeout=60, interval=0.5)
        time.sleep(0.5)  # a wrongly repeated call would show up now
        entries = sandbox(platform, "journal")
    finally:
        stop_all(receivers)
    calls = Counter(entry["body"]["runId"] for entry in entries if entry["action"] == "trigger")
    assert len(entries) == STATE_CHANGES
    assert set(calls) == set(answers)
    assert [run for run, n in calls.items() if n != 1] == []
    # Each job took exactly one attempt, and the work was shared: every instance delivered some.
    assert db_rows(postgres_schema_url, "SELECT SUM(j.attempts), COUNT(*) FROM attempts a JOIN jobs j"
                                        " ON j.id = a.job_id WHERE a.outcome = 'delivered'") \
        == [(STATE_CHANGES, STATE_CHANGES)]
    delivered_by = {receiver.port: sum(1 for line in receiver.log_lines() if line.get("outcome") == "delivered")
                    for receiver in receivers}
    assert all(delivered_by.values()), delivered_by
    assert sum(delivered_by.values()) == STATE_CHANGES
    print(f"3 instances, {STATE_CHANGES} state changes: {time.monotonic() - started:.1f}s, "
          f"delivered per instance {dict(delivered_by)}")


def test_instance_killed_mid_delivery_its_jobs_are_taken_over(
    tmp_path: Path, platform: SandboxServer, postgres_schema_url: str  # noqa: F811
) -> None:
    # Every state change has two jobs: add_contact (idempotent) and trigger (not idempotent).
    started = time.monotonic()
    jobs = 2 * STATE_CHANGES
    mapping = write_mapping(tmp_path, {**CONTACT_ROUTE, "continue": True}, TRIGGER_ROUTE)
    patch(platform, faults={"latency_ms": 250})  # slow calls while posting: a backlog builds up
    receivers = start_instances(tmp_path, platform, mapping, postgres_schema_url, env={"RECEIVER_LEASE_SECONDS": "3"})
    victim, survivors = receivers[0], receivers[1:]
    try:
        answers = post_everything(receivers)
        assert_one_acceptance_per_state_change(answers)
        victim_owner = owner_of(victim)

        def victim_holds_leases() -> bool:
            held = db_rows(postgres_schema_url, "SELECT COUNT(*) FROM jobs WHERE state = 'in_flight'"
                                                " AND lease_owner = %s", (victim_owner,))[0][0]
            return held >= 2 and len(sandbox(platform, "journal")) >= jobs // 4

        patch(platform, faults={"latency_ms": 20})  # deliveries are in full swing when the victim dies
        wait_for(victim_holds_leases, timeout=30, interval=0.05)
        victim.kill()
        killed_at = time.monotonic()
        orphaned = {job_id: (route, expires, run) for job_id, route, expires, run in db_rows(
            postgres_schema_url,
            "SELECT j.id, j.route, j.lease_expires_at, e.event->>'run_id' FROM jobs j"
            " JOIN events e ON e.event_id = j.event_id WHERE j.state = 'in_flight' AND j.lease_owner = %s",
            (victim_owner,))}
        journal_at_kill = len(sandbox(platform, "journal"))
        assert orphaned, "the victim held no lease when it was killed: nothing was taken over"
        assert journal_at_kill < jobs, "everything was delivered before the kill"

        wait_for(lambda: job_states(postgres_schema_url) == {"delivered": jobs}, timeout=60, interval=0.5)
        done_after = time.monotonic() - killed_at
        time.sleep(0.5)  # a wrongly repeated call would show up now
        entries = sandbox(platform, "journal")
        contacts = sandbox(platform, "contacts")
        posted = [r for r in sandbox(platform, "requests") if r["method"] == "POST" and r["path"].endswith("/contacts")]
    finally:
        stop_all(survivors)
        victim.kill()

    # Every orphaned job was finished by a survivor, and not before the victim's lease ran out:
    # no job is ever held by two live owners at once.
    states = db_rows(postgres_schema_url, "SELECT id, state, lease_owner FROM jobs WHERE id = ANY(%s)",
                     (list(orphaned),))
    assert sorted(states) == sorted((job_id, "delivered", None) for job_id in orphaned)
    finished = dict(db_rows(postgres_schema_url, "SELECT job_id, started_at FROM attempts WHERE outcome = 'delivered'"
                                                 " AND job_id = ANY(%s)", (list(orphaned),)))
    assert sorted(finished) == sorted(orphaned)
    assert [job_id for job_id, (_, expires, _) in orphaned.items() if finished[job_id] < expires] == []
    orphaned_runs = {name: [run for route, _, run in orphaned.values() if route == name]
                     for name in (CONTACT_ROUTE["name"], TRIGGER_ROUTE["name"])}

    # add_contact, effectively once: one contact per state change, journaled once, under its derived id,
    # although a call the victim made before dying may have been made again (an upsert).
    per_run = Counter(contact["data"]["Reason"] for contact in contacts)
    assert set(per_run) == set(answers)
    assert [run for run, n in per_run.items() if n != 1] == []
    added = [entry for entry in entries if entry["action"] == "add_contact"]
    assert Counter(entry["contact_id"] for entry in added) == Counter({c["id"]: 1 for c in contacts})
    repeated_adds = len(posted) - STATE_CHANGES
    assert 0 <= repeated_adds <= len(orphaned_runs[CONTACT_ROUTE["name"]])

    # trigger, at least once: every state change called; only a job the victim held may have been called twice.
    triggered = Counter(entry["body"]["runId"] for entry in entries if entry["action"] == "trigger")
    assert set(triggered) == set(answers)
    twice = {run: n for run, n in triggered.items() if n > 1}
    assert set(twice) <= set(orphaned_runs[TRIGGER_ROUTE["name"]]), twice
    assert all(n == 2 for n in twice.values()), twice
    print(f"killed holding {len(orphaned)} leases after {journal_at_kill} calls; all done {done_after:.1f}s later; "
          f"repeated: {repeated_adds} add_contact (upserts), {len(twice)} trigger; "
          f"total {time.monotonic() - started:.1f}s")
