"""Delivery: classification, backoff, deliver_job against a fake outbox, the Dispatcher, and the sandbox over HTTP."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from receiver import deliver as deliver_mod
from receiver.actions import ACTIONS
from receiver.config import Settings
from receiver.contact import contact_id
from receiver.deliver import (
    AMBIGUITY,
    PACED,
    Ambiguity,
    Dispatcher,
    backoff,
    classify,
    deliver_job,
    owner_id,
    run_worker,
)
from receiver.errors import PlatformError, TokenError
from receiver.logs import ContextFilter
from receiver.model import Attempt, Event, Job, Outcome, Target
from receiver.platform import (
    PacingTimeoutError,
    PlatformClient,
    PlatformResponse,
    PlatformTimeoutError,
    PlatformTransportError,
)
from receiver.priority import IntakeFirst
from tests.helpers.intake import hold_request

SETTINGS = Settings(
    client_id="c",
    client_secret="s",
    api_url="http://api.invalid",
    max_attempts=5,
    retry_base_seconds=0.05,
    retry_max_seconds=0.4,
    poll_interval=0.05,
    request_timeout=2.0,
    lease_seconds=30.0,
)
EVENT = Event(
    source="hcp-terraform",
    kind="run:errored",
    state="failed",
    dedupe_key="nc-1:run-1",
    workspace="prod-network",
    message="apply failed",
)
ADD = Target(
    route="prod",
    action="add_contact",
    division_id="div-ops",
    contact_list_id="cl-oncall",
    contact={"Phone": "+15550100", "Workspace": "{workspace}", "Reason": "{state}: {message}"},
)
TRIGGER = Target(route="prod-trigger", action="trigger", division_id="div-ops", contact_list_id="cl-oncall")
NOW = 1_000_000.0
AUDIT_FIELDS = (
    "event_id", "request_id", "source", "kind", "state", "route", "contact_list_id", "campaign_id", "division_id",
    "action", "attempt", "status_code", "correlation_id", "outcome", "duration_ms", "error", "mapping_version",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _bound_fields_in_caplog(caplog: pytest.LogCaptureFixture) -> None:
    """Give caplog the production handler's filter, so bound fields show on captured records."""
    caplog.handler.addFilter(ContextFilter())


def answer(status: int, code: str | None = None, *, correlation: str = "corr-1", **headers: str) -> PlatformResponse:
    body = {"status": status, "code": code, "message": f"message for {code}"} if code else None
    return PlatformResponse(status=status, headers=headers, body=body, correlation_id=correlation)


def make_job(target: Target = ADD, *, job_id: int = 1, attempts: int = 0, lease: float | None = None) -> Job:
    return Job(
        id=job_id,
        event_id=f"ev-{job_id}",
        route=target.route,
        target=target,
        event=EVENT,
        state="in_flight",
        attempts=attempts,
        lease_owner="owner-1",
        lease_expires_at=lease,
        created_at=NOW - 5,
        request_id=f"req-{job_id}",
        mapping_version="mv-1",
    )


class FakeOutbox:
    """The parts of the Outbox protocol delivery uses, in memory."""

    def __init__(self, jobs: Sequence[Job] = ()) -> None:
        self.queue = list(jobs)
        self.records: list[dict[str, Any]] = []
        self.released: list[int] = []
        self.claims = 0
        self.fail_claims = 0
        self.lock = threading.Lock()

    def add(self, job: Job) -> None:
        with self.lock:
            self.queue.append(job)

    def claim(self, owner: str, *, limit: int, lease_seconds: float, now: float) -> list[Job]:
        with self.lock:
            self.claims += 1
            if self.fail_claims:
                self.fail_claims -= 1
                raise RuntimeError("database is locked")
            taken, self.queue = self.queue[:limit], self.queue[limit:]
        return [replace(j, lease_owner=owner, lease_expires_at=now + lease_seconds) for j in taken]

    def record(
        self,
        job: Job,
        attempt: Attempt,
        *,
        state: str,
        now: float,
        next_attempt_at: float | None = None,
        diagnosis: dict[str, str] | None = None,
    ) -> bool:
        with self.lock:
            self.records.append(
                {"job": job, "attempt": attempt, "state": state, "now": now, "next": next_attempt_at, "diag": diagnosis}
            )
        return True

    def release(self, owner: str, job_ids: Sequence[int], *, now: float) -> None:
        with self.lock:
            self.released.extend(job_ids)

    def next_due(self) -> float | None:
        return None


Reply = PlatformResponse | Exception | Callable[[], PlatformResponse]


class FakeClient:
    """Answers act() from a script; remembers the calls."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[Target, Event, float | None]] = []
        self.default: Reply = answer(200)

    def act(self, target: Target, event: Event, *, pace_timeout: float | None = None) -> PlatformResponse:
        self.calls.append((target, event, pace_timeout))
        reply = self.replies.pop(0) if self.replies else self.default
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return reply()
        return reply

    def ready_in(self) -> float:
        return 0.0


def run(job: Job, client: FakeClient, settings: Settings = SETTINGS, outbox: FakeOutbox | None = None) -> Outcome:
    box = outbox if outbox is not None else FakeOutbox()
    run.outbox = box  # type: ignore[attr-defined]
    return deliver_job(job, client, box, settings, now_fn=lambda: NOW, rng=random.Random(7))  # type: ignore[arg-type]


def last_record() -> dict[str, Any]:
    records: list[dict[str, Any]] = run.outbox.records  # type: ignore[attr-defined]
    assert len(records) == 1
    return records[0]


def audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "receiver.deliver" and hasattr(r, "outcome")]


# --- classify ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, "delivered"), (201, "delivered"), (202, "delivered"), (204, "delivered"),
        (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"),
        (400, "dead"), (401, "dead"), (403, "dead"), (404, "dead"), (409, "dead"), (422, "dead"),
    ],
)  # fmt: skip
def test_classify_statuses(status: int, kind: str) -> None:
    outcome = classify(answer(status, "some.code"), None, target=ADD)
    assert outcome.kind == kind
    assert outcome.status_code == status and outcome.correlation_id == "corr-1"
    assert (outcome.diagnosis is not None) == (kind == "dead")


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (TokenError("throttled", retryable=True, error="invalid_request"), "retry", "token_error:invalid_request"),
        (TokenError("bad client id or secret", retryable=False, error="invalid_client"), "dead",
         "token_error:invalid_client"),
        (PlatformTimeoutError("timed out", maybe_sent=True), "retry", "timeout"),
        (PlatformTransportError("refused", maybe_sent=False), "retry", "connection_error"),
        (PlatformError("route r: unknown action", retryable=False), "dead", "platform_error"),
        (RuntimeError("a bug"), "dead", "RuntimeError"),
    ],
)  # fmt: skip
def test_classify_errors(error: Exception, kind: str, code: str) -> None:
    outcome = classify(None, error, target=ADD)
    assert (outcome.kind, outcome.error_code) == (kind, code)
    assert outcome.message == str(error)
    assert (outcome.diagnosis is not None) == (kind == "dead")


def test_classify_takes_retry_after_and_error_body() -> None:
    outcome = classify(answer(429, "too.many.requests.retry.after", **{"Retry-After": "12"}), None)
    assert outcome.retry_after == 12.0 and outcome.error_code == "too.many.requests.retry.after"
    assert outcome.message == "message for too.many.requests.retry.after"


def test_classify_without_target_has_no_diagnosis() -> None:
    assert classify(answer(403, "missing.permissions"), None).diagnosis is None


def test_ambiguity_table_covers_every_action() -> None:
    assert set(AMBIGUITY) == set(ACTIONS)
    assert AMBIGUITY["add_contact"].idempotent and AMBIGUITY["add_contact"].retry
    assert not AMBIGUITY["trigger"].idempotent and AMBIGUITY["trigger"].retry


# --- backoff -------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(1, 15))
def test_backoff_is_full_jitter_capped(attempt: int) -> None:
    settings = Settings(retry_base_seconds=1.0, retry_max_seconds=300.0)
    rng = random.Random(attempt)
    cap = min(300.0, 2.0 ** (attempt - 1))
    delays = [backoff(attempt, settings, None, rng) for _ in range(200)]
    assert all(0.0 <= d <= cap for d in delays)
    assert max(delays) > 0.8 * cap and min(delays) < 0.2 * cap  # jitter spans the whole range


@pytest.mark.parametrize(("attempt", "retry_after"), [(1, 2.0), (3, 30.0), (20, 900.0)])
def test_backoff_is_never_earlier_than_retry_after(attempt: int, retry_after: float) -> None:
    settings = Settings(retry_base_seconds=1.0, retry_max_seconds=300.0)
    rng = random.Random(1)
    assert all(backoff(attempt, settings, retry_after, rng) >= retry_after for _ in range(100))


def test_backoff_survives_huge_attempt_numbers() -> None:
    assert backoff(10_000, Settings(retry_max_seconds=5.0), None, random.Random(0)) <= 5.0


# --- deliver_job ---------------------------------------------------------------------------------


def test_delivered_is_recorded_with_the_contact_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    outcome = run(make_job(), FakeClient(answer(200, correlation="corr-ok")))
    assert outcome.kind == "delivered" and outcome.contact_id == contact_id(ADD, EVENT)
    record = last_record()
    assert record["state"] == "delivered" and record["attempt"].number == 1
    assert record["attempt"].correlation_id == "corr-ok" and record["attempt"].status_code == 200
    (audit,) = audit_records(caplog)
    for name in AUDIT_FIELDS:
        assert hasattr(audit, name), name
    assert (audit.outcome, audit.event_id, audit.request_id, audit.mapping_version) == (
        "delivered", "ev-1", "req-1", "mv-1"
    )  # fmt: skip
    assert audit.levelno == logging.INFO


def test_429_is_retried_no_earlier_than_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    outcome = run(make_job(), FakeClient(answer(429, "too.many.requests.retry.after", **{"Retry-After": "30"})))
    assert outcome.kind == "retry"
    record = last_record()
    assert record["state"] == "pending" and record["next"] >= NOW + 30
    assert record["attempt"].outcome == "retry" and record["attempt"].status_code == 429
    (audit,) = audit_records(caplog)
    assert audit.outcome == "retry" and audit.next_attempt_in >= 30 and audit.levelno == logging.WARNING


def test_403_is_dead_at_once_with_code_correlation_and_diagnosis(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    outcome = run(make_job(), FakeClient(answer(403, "missing.permissions", correlation="corr-403")))
    assert outcome.kind == "dead"
    record = last_record()
    assert record["state"] == "dead" and record["next"] is None
    assert record["attempt"].error_code == "missing.permissions"
    assert record["attempt"].correlation_id == "corr-403"
    assert "outbound:contact:add in division div-ops" in record["diag"]["cause"]
    (audit,) = audit_records(caplog)
    assert audit.outcome == "dead" and audit.levelno == logging.ERROR
    assert audit.diagnosis == record["diag"] and "missing.permissions" in audit.error


def test_max_attempts_makes_the_last_retry_dead() -> None:
    job = make_job(attempts=SETTINGS.max_attempts - 1)
    outcome = run(job, FakeClient(answer(503, "service.unavailable")))
    assert outcome.kind == "dead"
    record = last_record()
    assert record["state"] == "dead" and record["attempt"].number == SETTINGS.max_attempts
    assert record["diag"]["cause"].startswith(f"gave up after {SETTINGS.max_attempts} attempts: last error: ")
    assert "503 service.unavailable" in record["diag"]["cause"]


def test_attempts_below_the_maximum_are_retried() -> None:
    assert run(make_job(attempts=SETTINGS.max_attempts - 2), FakeClient(answer(503))).kind == "retry"


def test_a_replayed_job_gets_a_fresh_retry_budget() -> None:
    # Dead after max_attempts, then replayed: the next failure is retried, not dead again at once.
    spent = SETTINGS.max_attempts
    replayed = replace(make_job(attempts=spent), replayed_attempts=spent)
    assert run(replayed, FakeClient(answer(503))).kind == "retry"
    record = last_record()
    assert record["state"] == "pending" and record["attempt"].number == spent + 1
    # ... and its backoff starts over too: the first retry of the new budget waits at most retry_base_seconds.
    box, widest = FakeOutbox(), random.Random()
    widest.uniform = lambda low, high: high  # type: ignore[method-assign]  # always the cap
    deliver_job(replayed, FakeClient(answer(503)), box, SETTINGS, now_fn=lambda: NOW, rng=widest)  # type: ignore[arg-type]
    assert box.records[-1]["next"] - NOW == pytest.approx(SETTINGS.retry_base_seconds)
    # The budget is max_attempts again: the attempt that uses it up is dead, named by its count since the replay.
    last = replace(make_job(attempts=2 * spent - 1), replayed_attempts=spent)
    assert run(last, FakeClient(answer(503, "service.unavailable"))).kind == "dead"
    record = last_record()
    assert record["state"] == "dead" and record["attempt"].number == 2 * spent
    assert record["diag"]["cause"].startswith(f"gave up after {spent} attempts: last error: ")


def test_dry_run_calls_nothing_and_records_delivered(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client = FakeClient()
    outcome = run(make_job(), client, SETTINGS.replace(dry_run=True))
    assert client.calls == []
    assert outcome.kind == "delivered" and outcome.message == "dry_run"
    record = last_record()
    assert record["state"] == "delivered" and record["attempt"].message == "dry_run"
    would = [r for r in caplog.records if r.getMessage() == "dry run: would call"]
    assert would and would[0].path == "/api/v2/outbound/contactlists/cl-oncall/contacts?priority=true"
    assert audit_records(caplog)[0].outcome == "dry_run"


def test_trigger_timeout_is_retried_and_logged_ambiguous(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    error = PlatformTimeoutError("POST /trigger timed out after 2s", maybe_sent=True)
    assert run(make_job(TRIGGER), FakeClient(error)).kind == "retry"
    (audit,) = audit_records(caplog)
    assert audit.ambiguous is True and audit.outcome == "retry"
    assert last_record()["attempt"].error_code == "timeout"


def test_connect_failure_is_not_ambiguous(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    run(make_job(TRIGGER), FakeClient(PlatformTransportError("refused", maybe_sent=False)))
    assert not hasattr(audit_records(caplog)[0], "ambiguous")


def test_ambiguity_policy_is_one_table_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(AMBIGUITY, "trigger", Ambiguity(False, False, "not idempotent"))
    outcome = run(make_job(TRIGGER), FakeClient(answer(504, "request.timeout")))
    assert outcome.kind == "dead"
    assert "may have acted" in last_record()["diag"]["cause"]


def test_add_contact_timeout_is_retried() -> None:
    error = PlatformTimeoutError("timed out", maybe_sent=True)
    assert run(make_job(), FakeClient(error)).kind == "retry"


def test_token_errors_are_classified(caplog: pytest.LogCaptureFixture) -> None:
    bad = TokenError("bad client id or secret", retryable=False, status_code=401, error="invalid_client")
    assert run(make_job(), FakeClient(bad)).kind == "dead"
    assert "GENESYSCLOUD_OAUTHCLIENT_ID" in last_record()["diag"]["fix"]
    throttled = TokenError("token endpoint rate limit exceeded", retryable=True, error="invalid_request")
    assert run(make_job(), FakeClient(throttled)).kind == "retry"


def test_an_unexpected_exception_makes_the_job_dead_not_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    outcome = run(make_job(), FakeClient(KeyError("boom")))
    assert outcome.kind == "dead" and last_record()["attempt"].error_code == "KeyError"
    assert any(r.getMessage() == "platform action raised" and r.exc_info for r in caplog.records)


def test_a_pacing_timeout_releases_the_job_without_an_attempt() -> None:
    box = FakeOutbox()
    outcome = run(make_job(lease=NOW + 30), FakeClient(PacingTimeoutError("pause")), outbox=box)
    assert outcome.kind == "retry" and outcome.error_code == PACED
    assert box.records == [] and box.released == [1]


def test_the_pacer_may_only_hold_a_job_while_its_lease_is_safe() -> None:
    client = FakeClient()
    run(make_job(lease=NOW + 30), client)
    run(make_job(), client)
    assert client.calls[0][2] == pytest.approx(30 - 2 * SETTINGS.request_timeout)
    assert client.calls[1][2] is None


def test_event_and_request_ids_are_bound_while_acting(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    def reply() -> PlatformResponse:
        logging.getLogger("receiver.platform").info("inside act")
        return answer(200)

    run(make_job(), FakeClient(reply))
    (inside,) = [r for r in caplog.records if r.getMessage() == "inside act"]
    assert (inside.event_id, inside.request_id) == ("ev-1", "req-1")  # type: ignore[attr-defined]


# --- Dispatcher ----------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_owner_id_is_host_pid_random() -> None:
    host, pid, rand = owner_id().rsplit(":", 2)
    assert host and int(pid) > 0 and len(rand) == 8 and owner_id() != owner_id()


def test_dispatcher_wakes_on_enqueue() -> None:
    box = FakeOutbox()
    dispatcher = Dispatcher(box, FakeClient(), SETTINGS.replace(poll_interval=30.0), owner="o", threads=2)  # type: ignore[arg-type]
    dispatcher.start()
    try:
        time.sleep(0.1)  # both threads are asleep for up to 30 s now
        box.add(make_job())
        started = time.monotonic()
        dispatcher.wake()
        wait_for(lambda: len(box.records) == 1, timeout=2.0)
        assert time.monotonic() - started < 1.0
    finally:
        assert dispatcher.stop(timeout=5)
    assert box.records[0]["state"] == "delivered"


def test_dispatcher_survives_errors_in_its_loop(caplog: pytest.LogCaptureFixture) -> None:
    box = FakeOutbox([make_job()])
    box.fail_claims = 2
    dispatcher = Dispatcher(box, FakeClient(), SETTINGS, owner="o", threads=1)  # type: ignore[arg-type]
    dispatcher.start()
    try:
        wait_for(lambda: len(box.records) == 1)
        assert dispatcher.alive
    finally:
        dispatcher.stop(timeout=5)
    assert sum(r.getMessage() == "dispatcher loop failed, continuing" for r in caplog.records) == 2


def test_under_a_flood_of_webhooks_the_first_delivery_thread_keeps_delivering_and_the_others_hold_back() -> None:
    intake = IntakeFirst(tau=0.01, max_defer=10.0)
    request, release = hold_request(intake)
    time.sleep(0.05)
    assert intake.saturated()
    box = FakeOutbox([make_job(job_id=i) for i in range(1, 7)])
    delivered_by: list[str] = []

    def record_thread() -> PlatformResponse:
        delivered_by.append(threading.current_thread().name)
        time.sleep(0.05)  # long enough for idle threads to claim the other jobs, were they not held back
        return answer(200)

    client = FakeClient()
    client.default = record_thread
    dispatcher = Dispatcher(box, client, SETTINGS, owner="o", threads=3, batch=2, intake=intake)  # type: ignore[arg-type]
    started = time.monotonic()
    dispatcher.start()
    try:
        wait_for(lambda: len(box.records) == 6, timeout=5.0)
        assert set(delivered_by) == {"pipedial-deliver-0"}
        # Each call (0.05 s) first waited LEAD_MAX_DEFER_SECONDS (0.05 s): slowed down, never stopped.
        assert time.monotonic() - started >= 6 * (0.05 + 0.05) - 0.05
    finally:
        release.set()
        request.join(5)
        assert dispatcher.stop(timeout=5)


def test_stop_finishes_in_flight_and_releases_claimed_jobs() -> None:
    box = FakeOutbox([make_job(job_id=i) for i in (1, 2, 3)])
    gate = threading.Event()
    entered = threading.Event()

    def slow() -> PlatformResponse:
        entered.set()
        gate.wait(5)
        return answer(200)

    dispatcher = Dispatcher(box, FakeClient(slow), SETTINGS, owner="o", threads=1, batch=3)  # type: ignore[arg-type]
    dispatcher.start()
    assert entered.wait(5)
    stopper = threading.Thread(target=dispatcher.stop, kwargs={"timeout": 5})
    stopper.start()
    time.sleep(0.05)
    gate.set()
    stopper.join()
    assert not dispatcher.alive
    assert [r["job"].id for r in box.records] == [1]
    assert box.released == [2, 3]


def test_jobs_whose_lease_is_nearly_gone_are_given_back() -> None:
    box = FakeOutbox([make_job(job_id=1), make_job(job_id=2)])
    clock = {"now": NOW}

    def slow() -> PlatformResponse:
        clock["now"] += 28  # the first call eats nearly all of the batch's 30 s lease
        return answer(200)

    dispatcher = Dispatcher(box, FakeClient(slow), SETTINGS, owner="o", batch=2, now_fn=lambda: clock["now"])  # type: ignore[arg-type]
    assert dispatcher._run_once()
    assert [r["job"].id for r in box.records] == [1]
    assert box.released == [2]


def test_run_worker_returns_once_stop_is_set() -> None:
    box = FakeOutbox([make_job()])
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(SETTINGS, box, FakeClient(), stop))
    worker.start()
    wait_for(lambda: len(box.records) == 1)
    stop.set()
    worker.join(5)
    assert not worker.is_alive()


# --- over real HTTP: sandbox platform + SQLite outbox --------------------------------------------


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from receiver.outbox.sqlite import SqliteOutbox
    from receiver.sandbox import SandboxServer
    from tests.helpers.sandbox import CLIENT_ID, CLIENT_SECRET, sandbox_config

    config = sandbox_config()
    config["contact_lists"].append(
        {"id": "cl-home", "name": "Home", "division_id": "div-home", "columns": ["Phone", "Workspace", "Reason"],
         "phone_columns": ["Phone"]}
    )  # fmt: skip
    with SandboxServer(config) as sb:
        settings = SETTINGS.replace(
            api_url=sb.url, login_url=sb.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, request_timeout=5.0
        )
        box = SqliteOutbox(f"sqlite:///{tmp_path / 'outbox.db'}")
        box.migrate()
        try:
            yield {"url": sb.url, "settings": settings, "outbox": box}
        finally:
            box.close()


def enqueue(box: Any, target: Target, dedupe: str) -> int:
    event = replace(EVENT, dedupe_key=dedupe)
    stored = box.enqueue(
        event, [target], event_id=f"ev-{dedupe}", request_id="rq", mapping_version="mv", now=time.time()
    )
    job_id: int = stored.jobs[0].id
    return job_id


def settle(p: dict[str, Any], job_ids: Sequence[int], timeout: float = 15.0) -> list[Job]:
    """Run a Dispatcher until every job is delivered or dead; return them with their history."""
    box = p["outbox"]
    client = PlatformClient(p["settings"])
    dispatcher = Dispatcher(box, client, p["settings"], owner=owner_id(), threads=2)
    dispatcher.start()
    try:
        wait_for(lambda: all(box.get(i).state in ("delivered", "dead") for i in job_ids), timeout=timeout)
    finally:
        assert dispatcher.stop(timeout=10)
    return [box.get(i) for i in job_ids]


def script(url: str, path: str, *responses: dict[str, Any]) -> None:
    reply = requests.post(f"{url}/sandbox/script", json={"method": "POST", "path": path, "responses": list(responses)},
                          timeout=5)  # fmt: skip
    reply.raise_for_status()


def sandbox_get(url: str, what: str) -> Any:
    return requests.get(f"{url}/sandbox/{what}", timeout=5).json()


def test_sandbox_503_then_200_is_delivered_on_the_second_attempt(platform: dict[str, Any]) -> None:
    script(platform["url"], "contacts", {"status": 503})
    (job,) = settle(platform, [enqueue(platform["outbox"], ADD, "k-503")])
    assert job.state == "delivered" and job.attempts == 2
    assert [(a.outcome, a.status_code) for a in job.history] == [("retry", 503), ("delivered", 200)]
    journal = sandbox_get(platform["url"], "journal")
    assert len(journal) == 1 and journal[0]["contact_id"] == contact_id(ADD, replace(EVENT, dedupe_key="k-503"))
    assert journal[0]["body"][0]["data"] == {"Phone": "+15550100", "Workspace": "prod-network",
                                             "Reason": "failed: apply failed"}  # fmt: skip


def test_sandbox_429_retry_after_is_honoured(platform: dict[str, Any]) -> None:
    script(platform["url"], "contacts", {"status": 429, "headers": {"Retry-After": "2"}})
    (job,) = settle(platform, [enqueue(platform["outbox"], ADD, "k-429")])
    assert job.state == "delivered" and [a.status_code for a in job.history] == [429, 200]
    posts = [r for r in sandbox_get(platform["url"], "requests") if r["path"].endswith("/contacts")]
    assert [r["status"] for r in posts] == [429, 200]
    assert posts[1]["received_at"] - posts[0]["received_at"] >= 2.0


def test_sandbox_403_is_dead_at_once_with_code_and_correlation_id(platform: dict[str, Any]) -> None:
    home = replace(ADD, route="home", contact_list_id="cl-home", division_id="div-home")
    (job,) = settle(platform, [enqueue(platform["outbox"], home, "k-403")])
    assert job.state == "dead" and job.attempts == 1
    (attempt,) = job.history
    assert attempt.status_code == 403 and attempt.error_code == "missing.permissions"
    assert attempt.correlation_id and len(attempt.correlation_id) >= 32
    assert job.diagnosis is not None
    assert "client lacks outbound:contact:add in division div-home" in job.diagnosis["cause"]
    assert sandbox_get(platform["url"], "journal") == []


def test_sandbox_token_refresh_after_expiry(platform: dict[str, Any]) -> None:
    (first,) = settle(platform, [enqueue(platform["outbox"], ADD, "k-t1")])
    assert first.state == "delivered"
    box, settings = platform["outbox"], platform["settings"]
    client = PlatformClient(settings)
    client.auth.token()  # a token issued before the expiry, as a long-running process would hold
    requests.post(f"{platform['url']}/sandbox/expire-tokens", timeout=5).raise_for_status()
    job_id = enqueue(box, ADD, "k-t2")
    (job,) = box.claim("o", limit=1, lease_seconds=30, now=time.time())
    outcome = deliver_job(job, client, box, settings)
    assert outcome.kind == "delivered" and box.get(job_id).attempts == 1
    log = [(r["path"], r["status"]) for r in sandbox_get(platform["url"], "requests")][-3:]
    assert log == [("/api/v2/outbound/contactlists/cl-oncall/contacts", 401), ("/oauth/token", 200),
                   ("/api/v2/outbound/contactlists/cl-oncall/contacts", 200)]  # fmt: skip
    assert client.auth.fetches == 2


def test_sandbox_timeout_then_retry_upserts_one_contact(platform: dict[str, Any]) -> None:
    url, box = platform["url"], platform["outbox"]
    settings = platform["settings"].replace(request_timeout=0.3)
    faults = {"faults": {"timeout_rate": 1.0, "timeout_seconds": 0.8}}
    requests.patch(f"{url}/sandbox/state", json=faults, timeout=5).raise_for_status()
    job_id = enqueue(box, ADD, "k-timeout")
    client = PlatformClient(settings)
    (job,) = box.claim("o", limit=1, lease_seconds=30, now=time.time())
    assert deliver_job(job, client, box, settings).kind == "retry"
    requests.patch(f"{url}/sandbox/state", json={"faults": {"timeout_rate": 0.0}}, timeout=5).raise_for_status()
    time.sleep(1.0)  # the hung request completes on the platform: it acted although we saw a timeout
    jobs: list[Job] = []
    wait_for(lambda: bool(jobs.extend(box.claim("o", limit=1, lease_seconds=30, now=time.time())) or jobs))
    assert deliver_job(jobs[0], client, box, settings).kind == "delivered"
    stored = box.get(job_id)
    assert [a.error_code for a in stored.history] == ["timeout", None]
    assert len(sandbox_get(url, "journal")) == 1  # the same contact id: the retry was an upsert
    assert len(sandbox_get(url, "contacts")) == 1


def test_deliver_module_has_one_logger() -> None:
    assert deliver_mod.log.name == "receiver.deliver"
