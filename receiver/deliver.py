"""Delivery: claim -> act -> record. The retry policy lives here, and only here.

classify() turns one platform answer (or failure) into an Outcome:

| answer                                                        | outcome                               |
|---------------------------------------------------------------|---------------------------------------|
| 2xx                                                           | delivered                             |
| 408, 429, 5xx; connection error or timeout                    | retry, never before Retry-After       |
| TokenError retryable (login host unreachable/throttled/5xx)   | retry                                 |
| 400, 403, 404, other 4xx; 401 (the client already refreshed)  | dead at once, with diagnosis          |
| TokenError not retryable (bad client id/secret, not set)      | dead, with diagnosis                  |
| any other error (invalid template, unknown action, a bug)     | dead, with diagnosis                  |

A retry waits backoff(): exponential from retry_base_seconds with full jitter, capped at
retry_max_seconds, never earlier than Retry-After. The attempt that reaches max_attempts without
success is dead ("gave up after N attempts: last error: ..."). A replay (`receiver outbox replay`)
grants a fresh budget: attempts and backoff count from the last replay (job.replayed_attempts),
while the history keeps every attempt.

Ambiguous outcomes: a timeout, a connection dropped after sending, or a 500/502/504 may mean the
platform acted although we saw no success. What happens then is decided per action by AMBIGUITY:
- add_contact: idempotent (the contact id is derived from route, target and event, so a repeat is
  an upsert of the same contact): retry.
- start_campaign: idempotent enough (starting a running campaign changes nothing): retry.
- trigger: NOT idempotent (a repeat may dial twice): still retried (at-least-once: a missed call
  is worse than a double call), and every such retry is logged with ambiguous=true.
Set `retry=False` in an entry to make that action's ambiguous outcomes dead (for a human to check
and replay) instead. Two ambiguous cases never reach this table, and are repeated whatever it says:
a worker that dies after sending (its job is taken over when the lease expires), and an attempt whose
result cannot be recorded (outbox unreachable, lease lost). README "What is guaranteed" states the
same policy to users; a test keeps the two in step.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from . import logs
from .actions import ACTIONS
from .config import Settings
from .contact import contact_id
from .diagnose import diagnose
from .errors import PlatformError, TokenError
from .model import Attempt, Event, Job, Outcome, Target
from .outbox.base import Outbox
from .platform import PacingTimeoutError, PlatformResponse, PlatformTimeoutError, PlatformTransportError
from .priority import LEAD_MAX_DEFER_SECONDS

if TYPE_CHECKING:
    from .metrics import Metrics
    from .priority import IntakeGate

log = logging.getLogger("receiver.deliver")


@dataclass(frozen=True, slots=True)
class Ambiguity:
    """How one action is treated when the platform may have acted without saying so."""

    idempotent: bool
    retry: bool
    why: str


#: Per-action policy for ambiguous outcomes (see the module docstring); keys follow ACTIONS.
AMBIGUITY: dict[str, Ambiguity] = {
    "add_contact": Ambiguity(True, True, "same contact id: a repeat is an upsert"),
    "start_campaign": Ambiguity(True, True, "starting a running campaign changes nothing"),
    "trigger": Ambiguity(False, True, "not idempotent: at-least-once, a repeat may dial twice"),
}
_UNKNOWN_ACTION = Ambiguity(False, True, "unknown action: treated as not idempotent")

#: Statuses retried besides 5xx.
RETRY_STATUSES: frozenset[int] = frozenset({408, 429})
#: Statuses after which the platform may have acted.
AMBIGUOUS_STATUSES: frozenset[int] = frozenset({500, 502, 504})
#: Actions whose request carries the derived contact id.
_CONTACT_ID_ACTIONS = frozenset({"add_contact", "trigger"})
_STATES = {"delivered": "delivered", "retry": "pending", "dead": "dead"}
#: error_code of the Outcome deliver_job returns when it gave the job back unsent (rate-limit pause).
PACED = "paced"


class DeliveryClient(Protocol):
    """What delivery needs from the platform client (PlatformClient, or a fake in tests)."""

    def act(self, target: Target, event: Event, *, pace_timeout: float | None = None) -> PlatformResponse:
        """Perform the target's action for the event."""

    def ready_in(self) -> float:
        """Return seconds until the client's pacer lets a request go."""


def classify(
    response: PlatformResponse | None,
    error: Exception | None,
    *,
    target: Target | None = None,
    context: dict[str, Any] | None = None,
) -> Outcome:
    """Classify one platform answer or failure; dead outcomes carry diagnose() when target is given."""
    if error is not None:
        retry = isinstance(error, PlatformError) and error.retryable
        outcome = Outcome(
            kind="retry" if retry else "dead",
            error_code=_error_code(error),
            message=str(error)[:1000],
        )
    elif response is None:
        outcome = Outcome(kind="dead", error_code="no_response", message="no response and no error")
    else:
        status = response.status
        if 200 <= status < 300:
            kind = "delivered"
        elif status in RETRY_STATUSES or status >= 500:
            kind = "retry"
        else:
            kind = "dead"
        outcome = Outcome(
            kind=kind,
            status_code=status,
            correlation_id=response.correlation_id,
            error_code=response.error_code,
            message=None if kind == "delivered" else (response.error_message or f"HTTP {status}")[:1000],
            retry_after=response.retry_after if kind == "retry" else None,
        )
    if outcome.kind == "dead" and target is not None:
        outcome = replace(outcome, diagnosis=diagnose(target, response, error=error, context=context))
    return outcome


def _error_code(error: Exception) -> str:
    if isinstance(error, TokenError):
        return f"token_error:{error.error or 'unknown'}"
    if isinstance(error, PlatformTimeoutError):
        return "timeout"
    if isinstance(error, PlatformTransportError):
        return "connection_error"
    if isinstance(error, PlatformError):
        return error.code
    return type(error).__name__


def is_ambiguous(response: PlatformResponse | None, error: Exception | None) -> bool:
    """Return whether the platform may have acted although no success was seen."""
    if isinstance(error, PlatformTransportError):
        return error.maybe_sent
    return error is None and response is not None and response.status in AMBIGUOUS_STATUSES


def backoff(
    attempt: int, settings: Settings, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Return seconds to wait after failed attempt number `attempt` (1-based): full jitter, >= Retry-After."""
    exponent = min(max(attempt - 1, 0), 62)
    cap = min(settings.retry_max_seconds, settings.retry_base_seconds * (2.0**exponent))
    delay = (rng or random).uniform(0.0, cap)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def _pace_budget(job: Job, settings: Settings, now: float) -> float | None:
    """Return how long the pacer may hold this job before its lease is at risk."""
    if job.lease_expires_at is None:
        return None
    remaining = job.lease_expires_at - now
    budget = remaining - 2 * settings.request_timeout
    return budget if budget > 0 else max(0.0, remaining * 0.25)


def deliver_job(
    job: Job,
    client: DeliveryClient,
    outbox: Outbox,
    settings: Settings,
    *,
    now_fn: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    metrics: Metrics | None = None,
) -> Outcome:
    """Perform one claimed job's action and record the attempt: delivered, pending with a time, or dead."""
    target, event = job.target, job.event
    number = job.attempts + 1
    budgeted = number - job.replayed_attempts  # this attempt's place in the retry budget (fresh after a replay)
    cid = contact_id(target, event) if target.action in _CONTACT_ID_ACTIONS else None
    fields = _fields(job, number)
    with logs.bound(**fields):  # every line of this attempt (the client's too) carries the job's fields
        started = now_fn()
        clock = time.monotonic()
        if settings.dry_run:
            return _dry_run(job, outbox, fields, started, cid, now_fn)
        response: PlatformResponse | None = None
        error: Exception | None = None
        try:
            response = client.act(target, event, pace_timeout=_pace_budget(job, settings, started))
        except PacingTimeoutError:
            outbox.release(job.lease_owner or "", [job.id], now=now_fn())
            log.info("rate-limit pause outlasts the lease, job released")
            return Outcome(
                kind="retry", error_code=PACED, message="released: rate-limit pause", retry_after=client.ready_in()
            )
        except PlatformError as exc:
            error = exc
        except Exception as exc:  # a bug or bad data must not kill the loop: the job goes dead, explained
            log.exception("platform action raised")
            error = exc
        duration_ms = round((time.monotonic() - clock) * 1000, 1)
        outcome = classify(response, error, target=target)
        ambiguous = is_ambiguous(response, error)
        policy = AMBIGUITY.get(target.action, _UNKNOWN_ACTION)
        if outcome.kind == "retry" and ambiguous and not policy.retry:
            context: dict[str, Any] = {"ambiguous_not_retried": policy.why}
            outcome = replace(outcome, kind="dead", diagnosis=diagnose(target, response, error=error, context=context))
        elif outcome.kind == "retry" and budgeted >= settings.max_attempts:
            context = {"attempts": budgeted}
            outcome = replace(outcome, kind="dead", diagnosis=diagnose(target, response, error=error, context=context))
        outcome = replace(outcome, contact_id=cid)
        now = now_fn()
        next_at = None
        if outcome.kind == "retry":
            next_at = now + backoff(budgeted, settings, outcome.retry_after, rng)
        attempt = Attempt(
            number=number,
            started_at=started,
            duration_ms=duration_ms,
            outcome=outcome.kind,
            status_code=outcome.status_code,
            correlation_id=outcome.correlation_id,
            error_code=outcome.error_code,
            message=outcome.message,
        )
        recorded = outbox.record(
            job, attempt, state=_STATES[outcome.kind], now=now, next_attempt_at=next_at, diagnosis=outcome.diagnosis
        )
        _audit(fields, outcome, duration_ms, ambiguous=ambiguous, next_in=None if next_at is None else next_at - now)
        if not recorded:
            log.warning("lease lost before the attempt was recorded; another worker owns the job")
        if metrics is not None:
            label = str(outcome.status_code) if outcome.status_code is not None else (outcome.error_code or "error")
            metrics.platform_responses.labels(target.action, label).inc()
            if outcome.kind == "delivered" and job.created_at:
                metrics.delivery_seconds.labels(target.action).observe(max(0.0, now - job.created_at))
        return outcome


def _dry_run(
    job: Job, outbox: Outbox, fields: dict[str, Any], started: float, cid: str | None, now_fn: Callable[[], float]
) -> Outcome:
    """Record the job delivered without calling the platform, and say what would have been called."""
    action = ACTIONS.get(job.target.action)
    if action is not None:
        ids = {"contact_list_id": job.target.contact_list_id or "", "campaign_id": job.target.campaign_id or ""}
        path = action.path.format(**ids) + (f"?{action.query}" if action.query else "")
        log.info("dry run: would call", extra={"method": action.method, "path": path})
    outcome = Outcome(kind="delivered", message="dry_run", contact_id=cid)
    attempt = Attempt(
        number=fields["attempt"], started_at=started, duration_ms=0.0, outcome="delivered", message="dry_run"
    )
    outbox.record(job, attempt, state="delivered", now=now_fn())
    _audit(fields, outcome, 0.0, label="dry_run")
    return outcome


def _fields(job: Job, number: int) -> dict[str, Any]:
    """Return the audit fields that describe the job and attempt (bound for the attempt's log lines)."""
    t, e = job.target, job.event
    return {
        "event_id": job.event_id,
        "request_id": job.request_id,
        "job_id": job.id,
        "source": e.source,
        "kind": e.kind,
        "state": e.state,
        "route": job.route,
        "contact_list_id": t.contact_list_id,
        "campaign_id": t.campaign_id,
        "division_id": t.division_id,
        "action": t.action,
        "attempt": number,
        "mapping_version": job.mapping_version,
    }


_MESSAGES = {
    "delivered": "platform action delivered",
    "dry_run": "dry run: platform action not called",
    "retry": "platform action failed, will retry",
    "dead": "platform action failed, giving up",
}
_LEVELS = {"delivered": logging.INFO, "dry_run": logging.INFO, "retry": logging.WARNING, "dead": logging.ERROR}


def _audit(
    fields: dict[str, Any],
    outcome: Outcome,
    duration_ms: float,
    *,
    label: str | None = None,
    ambiguous: bool = False,
    next_in: float | None = None,
) -> None:
    """Write the one audit line of this attempt (the job's fields are bound; absent ones are logged as null)."""
    label = label or outcome.kind
    extra: dict[str, Any] = {k: None for k, v in fields.items() if v is None}  # bound() leaves out None
    error = None
    if outcome.kind != "delivered":
        error = ": ".join(p for p in (outcome.error_code, outcome.message) if p) or None
    extra.update(
        status_code=outcome.status_code,
        correlation_id=outcome.correlation_id,
        outcome=label,
        duration_ms=duration_ms,
        error=error,
        contact_id=outcome.contact_id,
    )
    if ambiguous:
        extra["ambiguous"] = True
    if next_in is not None:
        extra["next_attempt_in"] = round(next_in, 3)
    if outcome.diagnosis is not None:
        extra["diagnosis"] = outcome.diagnosis
    log.log(_LEVELS[label], _MESSAGES[label], extra=extra)


def owner_id() -> str:
    """Return a lease owner id unique to this process and dispatcher: host:pid:random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dispatcher:
    """Background delivery threads: claim due jobs, deliver each, sleep until woken or due."""

    def __init__(
        self,
        outbox: Outbox,
        client: DeliveryClient,
        settings: Settings,
        *,
        owner: str | None = None,
        threads: int = 4,  # 2 lost the GIL to 4 busy request threads: delivery fell behind intake (docs/BENCHMARKS.md)
        batch: int = 4,
        now_fn: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        intake: IntakeGate | None = None,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.settings = settings
        self.owner = owner or owner_id()
        self.threads = max(1, threads)
        self.batch = max(1, batch)
        self._now = now_fn
        self._rng = rng
        self._metrics = metrics
        self._intake = intake
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []

    @property
    def alive(self) -> bool:
        """Return whether every delivery thread is running."""
        return bool(self._workers) and all(t.is_alive() for t in self._workers)

    def start(self) -> None:
        """Start the delivery threads (daemon); a second call does nothing."""
        if self._workers:
            return
        self._stopping.clear()
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, args=(i,), name=f"pipedial-deliver-{i}", daemon=True)
            self._workers.append(thread)
            thread.start()
        log.info("dispatcher started", extra={"owner": self.owner, "threads": self.threads})

    def wake(self) -> None:
        """Make idle threads look for due jobs now (called after an enqueue)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> bool:
        """Finish in-flight deliveries, give back jobs claimed but not started; return whether all stopped."""
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        stopped = not any(t.is_alive() for t in self._workers)
        log.info("dispatcher stopped", extra={"owner": self.owner, "clean": stopped})
        if stopped:
            self._workers = []
        return stopped

    def _run(self, index: int = 0) -> None:
        """Loop until stopped; log and survive every error."""
        # Under a flood of webhooks (receiver.priority) the first thread still starts calls several
        # times a second; the others wait up to the gate's full max_defer.
        defer = LEAD_MAX_DEFER_SECONDS if index == 0 else None
        try:
            while not self._stopping.is_set():
                try:
                    self._wake.clear()
                    if not self._run_once(defer):
                        self._sleep(self._idle_wait())
                except Exception:
                    log.exception("dispatcher loop failed, continuing", extra={"owner": self.owner})
                    self._sleep(max(self.settings.poll_interval, 0.05))
        except BaseException:
            log.critical("dispatcher thread died", exc_info=True, extra={"owner": self.owner})
            raise

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._stopping.is_set():
            self._wake.wait(seconds)

    def _idle_wait(self) -> float:
        """Return how long to sleep when nothing was due: poll_interval, or less if a job falls due sooner."""
        wait = self.settings.poll_interval
        due = self.outbox.next_due()
        if due is not None:
            wait = min(wait, due - self._now())
        return max(wait, 0.05)

    def _run_once(self, defer: float | None = None) -> bool:
        """Claim and deliver one batch; return whether to look again at once (False: idle).

        Embedded in the receiver, wait while the process's intake is saturated (receiver.priority)
        before the claim and before each call, at most `defer` seconds (None: the gate's max_defer):
        under a flood of webhooks, answering them keeps most of the GIL.
        """
        paced = self.client.ready_in()
        if paced > 0:
            self._sleep(paced)  # hold no leases while the rate limit makes us wait
            return True
        self._yield_to_intake(defer)
        jobs = self.outbox.claim(
            self.owner, limit=self.batch, lease_seconds=self.settings.lease_seconds, now=self._now()
        )
        for i, job in enumerate(jobs):
            if i:
                self._yield_to_intake(defer)
            if self._stopping.is_set() or not self._lease_ok(job):
                self._release(jobs[i:])
                break
            try:
                outcome = deliver_job(
                    job, self.client, self.outbox, self.settings, now_fn=self._now, rng=self._rng, metrics=self._metrics
                )
            except Exception:
                log.exception(
                    "delivery failed, the job's lease will expire and it will be retried",
                    extra={"job_id": job.id, "event_id": job.event_id, "owner": self.owner},
                )
                continue
            if outcome.error_code == PACED:
                self._release(jobs[i + 1 :])
                break
        return bool(jobs)

    def _yield_to_intake(self, defer: float | None) -> None:
        if self._intake is not None:
            self._intake.wait(self._stopping, defer)

    def _lease_ok(self, job: Job) -> bool:
        """Return whether enough of the job's lease is left to start its call."""
        if job.lease_expires_at is None:
            return True
        needed = min(2 * self.settings.request_timeout, self.settings.lease_seconds / 2)
        return job.lease_expires_at - self._now() >= needed

    def _release(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        try:
            self.outbox.release(self.owner, [j.id for j in jobs], now=self._now())
        except Exception:
            log.exception("releasing claimed jobs failed; their leases will expire", extra={"owner": self.owner})


def run_worker(settings: Settings, outbox: Outbox, client: DeliveryClient, stop_event: threading.Event) -> None:
    """Run a standalone delivery worker until stop_event is set (the CLI sets it on SIGTERM/SIGINT)."""
    dispatcher = Dispatcher(outbox, client, settings, owner=owner_id(), threads=max(1, settings.workers))
    dispatcher.start()
    log.info("worker running", extra={"owner": dispatcher.owner, "dry_run": settings.dry_run})
    try:
        while not stop_event.wait(1.0):
            if not dispatcher.alive:
                log.error("delivery threads died; stopping the worker", extra={"owner": dispatcher.owner})
                break
    finally:
        dispatcher.stop(timeout=settings.lease_seconds)
