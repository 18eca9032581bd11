"""The outbox both backends share: one set of SQL for dedupe, cooldown, stale, leases and history.

A backend supplies the transaction (SQL is written with %s placeholders for both), the claim
statement, its schema migrations and, on PostgreSQL, the locks that make enqueue and migrate safe
across instances; on SQLite every write transaction is already exclusive (BEGIN IMMEDIATE).
Event times are compared as fixed-width UTC text, so jobs.occurred_at holds `utc_text(...)`.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from ..errors import OutboxUnavailableError
from ..model import JOB_STATES, Attempt, Enqueued, Event, Job, Pruned, StoredJob, Target

Row = dict[str, Any]

#: Job states that start a cooldown: the action happened or is about to.
COOLDOWN_STATES: tuple[str, ...] = ("pending", "in_flight", "delivered")
#: States record() may set.
RECORD_STATES: tuple[str, ...] = ("pending", "delivered", "dead")
#: Job states prune() may delete: finished for good (a dead job waits for a replay or for a person).
PRUNABLE_STATES: tuple[str, ...] = ("delivered", "suppressed", "stale")
#: Events prune() deletes per write transaction: each stays short, so intake and delivery hardly wait.
PRUNE_BATCH = 500
#: How long ping() waits for a connection, in seconds.
PING_TIMEOUT = 2.0

#: Jobs claim() may take; parameters: now, now.
DUE = "(state = 'pending' AND next_attempt_at <= %s) OR (state = 'in_flight' AND lease_expires_at <= %s)"
#: The SET clause of a claim; parameters: owner, lease_expires_at, now.
LEASE = "state = 'in_flight', lease_owner = %s, lease_expires_at = %s, updated_at = %s"

_SELECT_JOBS = """
    SELECT j.id, j.event_id, j.route, j.target, j.state, j.attempts, j.next_attempt_at, j.lease_owner,
           j.lease_expires_at, j.created_at, j.updated_at, j.request_id, j.mapping_version, j.diagnosis,
           j.reason, j.replayed_attempts, e.event
    FROM jobs j JOIN events e ON e.event_id = j.event_id
"""
#: The SET clause of a replay; parameters: now, now. The retry budget starts afresh from the attempts so far.
_REQUEUE = (
    "state = 'pending', next_attempt_at = %s, lease_owner = NULL, lease_expires_at = NULL, "
    "diagnosis = NULL, reason = NULL, updated_at = %s, replayed_attempts = attempts"
)


class Tx(Protocol):
    """One open transaction."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Execute one statement (%s placeholders) and return its rows, if any, as dicts."""


class SqlOutbox(ABC):
    """The Outbox contract over SQL; subclasses provide connections, locks and the claim statement."""

    migrations: tuple[tuple[str, ...], ...]

    @abstractmethod
    def _transaction(
        self, *, write: bool, timeout: float | None = None, durable: bool = True
    ) -> AbstractContextManager[Tx]:
        """Open a transaction and commit it on success; raise OutboxUnavailableError on store errors.

        A write that is not `durable` may return before its commit is on disk: only for writes whose
        loss in a crash of the machine is harmless (taking or giving back a lease: the job is then
        pending, and claimed again).
        """

    @abstractmethod
    def _claim_ids(self, tx: Tx, owner: str, limit: int, lease_seconds: float, now: float) -> list[int]:
        """Lease up to `limit` due jobs to `owner` and return their ids."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    def _lock_schema(self, tx: Tx) -> None:
        """Keep concurrent migrations apart until the transaction ends."""

    @abstractmethod
    def _lock_targets(self, tx: Tx, targets: Sequence[tuple[str, str]]) -> None:
        """Keep concurrent enqueues for the same (route, target key) apart until the transaction ends."""

    def migrate(self) -> None:
        """Create or upgrade the schema; idempotent and safe when run concurrently."""
        with self._transaction(write=True) as tx:
            self._lock_schema(tx)
            tx.rows(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            current = tx.rows("SELECT COALESCE(MAX(version), 0) AS version FROM schema_version")[0]["version"]
            for version, statements in enumerate(self.migrations, start=1):
                if version > current:
                    for statement in statements:
                        tx.rows(statement)
                    tx.rows("INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)", (version, time.time()))

    def ping(self) -> None:
        """Raise OutboxUnavailableError unless the store answers and has a schema."""
        with self._transaction(write=False, timeout=PING_TIMEOUT) as tx:
            tx.rows("SELECT MAX(version) AS version FROM schema_version")

    def enqueue(
        self,
        event: Event,
        targets: Sequence[Target],
        *,
        event_id: str,
        request_id: str | None,
        mapping_version: str | None,
        now: float,
    ) -> Enqueued:
        """Store the event and its jobs durably; raise OutboxUnavailableError if it cannot."""
        with self._transaction(write=True) as tx:
            inserted = tx.rows(
                "INSERT INTO events (event_id, source, delivery_id, dedupe_key, event, request_id, mapping_version,"
                " received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING event_id",
                (
                    event_id,
                    event.source,
                    event.delivery_id,
                    event.dedupe_key,
                    _dump(event.to_dict()),
                    request_id,
                    mapping_version,
                    now,
                ),
            )
            if not inserted:
                return _redelivery(tx, event, event_id, targets)
            self._lock_targets(tx, [(target.route, target.key) for target in targets])
            jobs = [
                _store_job(
                    tx,
                    event,
                    target,
                    event_id=event_id,
                    request_id=request_id,
                    mapping_version=mapping_version,
                    now=now,
                )
                for target in targets
            ]
        return Enqueued(event_id=event_id, duplicate=bool(jobs) and all(job.duplicate for job in jobs), jobs=jobs)

    def claim(self, owner: str, *, limit: int, lease_seconds: float, now: float) -> list[Job]:
        """Lease up to `limit` due jobs to `owner`, oldest due first; their history is left empty."""
        if limit <= 0:
            return []
        with self._transaction(write=True, durable=False) as tx:  # a lease lost in a crash: pending again
            ids = self._claim_ids(tx, owner, limit, lease_seconds, now)
            return _select_jobs(tx, ids)

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
        """Store an attempt and the job's new state, if `job.lease_owner` still holds its lease."""
        if state not in RECORD_STATES:
            raise ValueError(f"record() state must be one of {', '.join(RECORD_STATES)}, not {state!r}")
        due = (now if next_attempt_at is None else next_attempt_at) if state == "pending" else None
        params: list[Any] = [state, due, _dump(diagnosis), now, job.id, job.lease_owner]
        fence = ""
        if job.lease_expires_at is not None:  # the same owner name may lease the job again later
            fence = " AND lease_expires_at = %s"
            params.append(job.lease_expires_at)
        with self._transaction(write=True) as tx:
            updated = tx.rows(
                "UPDATE jobs SET state = %s, attempts = attempts + 1, next_attempt_at = COALESCE(%s, next_attempt_at),"
                " lease_owner = NULL, lease_expires_at = NULL, diagnosis = %s, updated_at = %s"
                f" WHERE id = %s AND state = 'in_flight' AND lease_owner = %s{fence} RETURNING attempts",
                params,
            )
            if not updated:
                return False
            tx.rows(
                "INSERT INTO attempts (job_id, number, started_at, duration_ms, outcome, status_code, correlation_id,"
                " error_code, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    job.id,
                    updated[0]["attempts"],
                    attempt.started_at,
                    attempt.duration_ms,
                    attempt.outcome,
                    attempt.status_code,
                    attempt.correlation_id,
                    attempt.error_code,
                    attempt.message,
                ),
            )
        return True

    def release(self, owner: str, job_ids: Sequence[int], *, now: float) -> None:
        """Give leased jobs back (pending, due now) without counting an attempt."""
        if not job_ids:
            return
        with self._transaction(write=True, durable=False) as tx:  # lost in a crash: the lease expires instead
            tx.rows(
                "UPDATE jobs SET state = 'pending', next_attempt_at = %s, lease_owner = NULL, lease_expires_at = NULL,"
                f" updated_at = %s WHERE state = 'in_flight' AND lease_owner = %s AND id IN ({_marks(job_ids)})"
                " RETURNING id",
                (now, now, owner, *job_ids),
            )

    def get(self, job_id: int) -> Job | None:
        """Return one job with its full attempt history."""
        with self._transaction(write=False) as tx:
            return _load_job(tx, job_id)

    def list_jobs(self, *, state: str | None = None, limit: int = 100) -> list[Job]:
        """Return jobs, newest first, optionally of one state; their history is left empty."""
        if state is not None and state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}; one of {', '.join(JOB_STATES)}")
        where, params = ("WHERE j.state = %s", [state]) if state is not None else ("", [])
        with self._transaction(write=False) as tx:
            rows = tx.rows(f"{_SELECT_JOBS} {where} ORDER BY j.id DESC LIMIT %s", (*params, limit))
        return [_job(row) for row in rows]

    def replay(self, job_id: int, *, now: float) -> Job:
        """Make a dead/suppressed/stale/delivered job pending again, keeping its history."""
        with self._transaction(write=True) as tx:
            updated = tx.rows(
                f"UPDATE jobs SET {_REQUEUE} WHERE id = %s AND state NOT IN ('pending', 'in_flight') RETURNING id",
                (now, now, job_id),
            )
            if not updated:
                found = tx.rows("SELECT state FROM jobs WHERE id = %s", (job_id,))
                if not found:
                    raise KeyError(job_id)
                raise ValueError(f"job {job_id} is {found[0]['state']}; only finished jobs can be replayed")
            job = _load_job(tx, job_id)
        if job is None:  # cannot happen: updated in this transaction
            raise KeyError(job_id)
        return job

    def replay_dead(self, *, now: float) -> int:
        """Make every dead job pending again, keeping their history; return how many."""
        with self._transaction(write=True) as tx:
            return len(tx.rows(f"UPDATE jobs SET {_REQUEUE} WHERE state = 'dead' RETURNING id", (now, now)))

    def prune(self, *, before: float, batch: int = PRUNE_BATCH) -> Pruned:
        """Delete the events received before `before` whose jobs are all finished for good and unchanged since.

        With them go their jobs and attempts. An event keeps everything while any of its jobs is pending,
        in flight or dead, or changed at or after `before` (a replay). Runs in transactions of `batch`
        events, so intake and delivery wait for one short transaction at a time.
        """
        pruned = Pruned()
        while True:
            with self._transaction(write=True) as tx:
                found = _prune_batch(tx, before, batch, pruned)
            if found < batch:
                return pruned

    def counts(self) -> dict[str, int]:
        """Return the number of jobs per state, every state of JOB_STATES included."""
        with self._transaction(write=False) as tx:
            rows = tx.rows("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        counts = dict.fromkeys(JOB_STATES, 0)
        counts.update({row["state"]: int(row["n"]) for row in rows})
        return counts

    def oldest_pending_age(self, *, now: float) -> float | None:
        """Return the age in seconds of the oldest pending job (since it was created), or None."""
        with self._transaction(write=False) as tx:
            oldest = tx.rows("SELECT MIN(created_at) AS t FROM jobs WHERE state = 'pending'")[0]["t"]
        return None if oldest is None else max(0.0, now - oldest)

    def next_due(self) -> float | None:
        """Return when claim() next finds a job: a pending job falls due or a lease expires; or None."""
        with self._transaction(write=False) as tx:
            rows = tx.rows(
                "SELECT MIN(next_attempt_at) AS t FROM jobs WHERE state = 'pending'"
                " UNION ALL SELECT MIN(lease_expires_at) AS t FROM jobs WHERE state = 'in_flight'"
            )
        times = [row["t"] for row in rows if row["t"] is not None]
        return min(times) if times else None


def _prune_batch(tx: Tx, before: float, batch: int, pruned: Pruned) -> int:
    """Delete up to `batch` prunable events, their jobs and attempts (counted in `pruned`); return the events found.

    The jobs are re-checked, and so locked, by an UPDATE before they are deleted: a replay running at the
    same moment (PostgreSQL) either commits first, and its job and event stay, or waits for this transaction.
    """
    states = _marks(PRUNABLE_STATES)
    events = [row["event_id"] for row in tx.rows(
        "SELECT e.event_id FROM events e WHERE e.received_at < %s AND NOT EXISTS (SELECT 1 FROM jobs j"
        f" WHERE j.event_id = e.event_id AND (j.state NOT IN ({states}) OR j.updated_at >= %s)) LIMIT %s",
        (before, *PRUNABLE_STATES, before, batch),
    )]
    if not events:
        return 0
    jobs = [row["id"] for row in tx.rows(
        f"UPDATE jobs SET updated_at = updated_at WHERE event_id IN ({_marks(events)}) AND state IN ({states})"
        " AND updated_at < %s RETURNING id",
        (*events, *PRUNABLE_STATES, before),
    )]
    if jobs:
        pruned.attempts += len(tx.rows(f"DELETE FROM attempts WHERE job_id IN ({_marks(jobs)}) RETURNING job_id", jobs))
        pruned.jobs += len(tx.rows(f"DELETE FROM jobs WHERE id IN ({_marks(jobs)}) RETURNING id", jobs))
    pruned.events += len(tx.rows(
        f"DELETE FROM events WHERE event_id IN ({_marks(events)})"
        " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.event_id = events.event_id) RETURNING event_id",
        events,
    ))
    return len(events)


def _redelivery(tx: Tx, event: Event, event_id: str, targets: Sequence[Target]) -> Enqueued:
    """Answer for an event already stored: its first event_id and the jobs it (or its state change) has."""
    found = tx.rows(
        "SELECT event_id, dedupe_key FROM events WHERE event_id = %s OR (source = %s AND delivery_id = %s)"
        " ORDER BY received_at LIMIT 1",
        (event_id, event.source, event.delivery_id),
    )
    if not found:
        raise OutboxUnavailableError(f"event {event_id} conflicted with a stored event that is gone")
    first = found[0]
    jobs_sql = "SELECT id, route, state, reason FROM jobs WHERE event_id = %s"
    rows = {row["id"]: row for row in tx.rows(jobs_sql, (first["event_id"],))}
    for target in targets:
        row = _find_job(tx, target, first["dedupe_key"])
        if row is not None:
            rows.setdefault(row["id"], row)
    jobs = [_stored(rows[job_id], duplicate=True) for job_id in sorted(rows)]
    return Enqueued(event_id=first["event_id"], duplicate=True, jobs=jobs)


def _store_job(
    tx: Tx,
    event: Event,
    target: Target,
    *,
    event_id: str,
    request_id: str | None,
    mapping_version: str | None,
    now: float,
) -> StoredJob:
    """Store one job (pending, stale or suppressed) unless the same state change already has one.

    The insert itself finds that one (ON CONFLICT on route, target and dedupe key), so a new state
    change, the common case, costs no lookup first.
    """
    occurred_at = utc_text(event.occurred_at)
    state, reason = "pending", _stale_reason(tx, event, target, occurred_at)
    if reason is not None:
        state = "stale"
    elif (reason := _cooldown_reason(tx, target, now)) is not None:
        state = "suppressed"
    inserted = tx.rows(
        "INSERT INTO jobs (event_id, route, target_key, target, dedupe_key, source, run_id, occurred_at, state,"
        " attempts, next_attempt_at, created_at, updated_at, reason, request_id, mapping_version)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING id",
        (
            event_id,
            target.route,
            target.key,
            _dump(target.to_dict()),
            event.dedupe_key,
            event.source,
            event.run_id,
            occurred_at,
            state,
            now,
            now,
            now,
            reason,
            request_id,
            mapping_version,
        ),
    )
    if not inserted:  # the same state change is stored already (by an earlier delivery or a concurrent one)
        same = _find_job(tx, target, event.dedupe_key)
        if same is None:
            raise OutboxUnavailableError(f"job for route {target.route} conflicted with a stored job that is gone")
        return _stored(same, duplicate=True)
    return StoredJob(id=int(inserted[0]["id"]), route=target.route, state=state, duplicate=False, reason=reason)


def _find_job(tx: Tx, target: Target, dedupe_key: str) -> Row | None:
    """Return the job of this route, target and state change, if stored."""
    rows = tx.rows(
        "SELECT id, route, state, reason FROM jobs WHERE route = %s AND target_key = %s AND dedupe_key = %s",
        (target.route, target.key, dedupe_key),
    )
    return rows[0] if rows else None


def _stale_reason(tx: Tx, event: Event, target: Target, occurred_at: str | None) -> str | None:
    """Name the job of the same route, target and run that reported a later state change, if any."""
    if not event.run_id or occurred_at is None:
        return None
    rows = tx.rows(
        "SELECT id, occurred_at FROM jobs WHERE route = %s AND target_key = %s AND source = %s AND run_id = %s"
        " AND occurred_at > %s ORDER BY occurred_at DESC, id DESC LIMIT 1",
        (target.route, target.key, event.source, event.run_id, occurred_at),
    )
    if not rows:
        return None
    newer = rows[0]
    return (
        f"stale: job {newer['id']} for the same route, target and run {event.run_id} has a newer state change"
        f" at {_short(newer['occurred_at'])} (this one: {_short(occurred_at)})"
    )


def _cooldown_reason(tx: Tx, target: Target, now: float) -> str | None:
    """Name the latest job of this route and target created within its cooldown, if any."""
    if target.cooldown_seconds <= 0:
        return None
    rows = tx.rows(
        f"SELECT id, created_at FROM jobs WHERE route = %s AND target_key = %s AND state IN ({_marks(COOLDOWN_STATES)})"
        " AND created_at > %s ORDER BY created_at DESC, id DESC LIMIT 1",
        (target.route, target.key, *COOLDOWN_STATES, now - target.cooldown_seconds),
    )
    if not rows:
        return None
    recent = rows[0]
    return (
        f"cooldown {target.cooldown_seconds:g}s: job {recent['id']} for the same route and target"
        f" at {iso_time(recent['created_at'])}"
    )


def _select_jobs(tx: Tx, ids: Sequence[int]) -> list[Job]:
    """Return these jobs without history, in claim order."""
    if not ids:
        return []
    rows = tx.rows(f"{_SELECT_JOBS} WHERE j.id IN ({_marks(ids)}) ORDER BY j.next_attempt_at, j.id", tuple(ids))
    return [_job(row) for row in rows]


def _load_job(tx: Tx, job_id: int) -> Job | None:
    """Return one job with its attempts ordered by number."""
    rows = tx.rows(f"{_SELECT_JOBS} WHERE j.id = %s", (job_id,))
    if not rows:
        return None
    job = _job(rows[0])
    job.history = [
        Attempt(**row)
        for row in tx.rows(
            "SELECT number, started_at, duration_ms, outcome, status_code, correlation_id, error_code, message"
            " FROM attempts WHERE job_id = %s ORDER BY number",
            (job_id,),
        )
    ]
    return job


def _job(row: Row) -> Job:
    """Build a Job from a row of _SELECT_JOBS."""
    return Job(
        id=int(row["id"]),
        event_id=row["event_id"],
        route=row["route"],
        target=Target.from_dict(_load(row["target"])),
        event=Event.from_dict(_load(row["event"])),
        state=row["state"],
        attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        request_id=row["request_id"],
        mapping_version=row["mapping_version"],
        diagnosis=_load(row["diagnosis"]),
        reason=row["reason"],
        replayed_attempts=int(row["replayed_attempts"]),
    )


def _stored(row: Row, *, duplicate: bool) -> StoredJob:
    """Build a StoredJob from a row with id, route, state and reason."""
    return StoredJob(
        id=int(row["id"]), route=row["route"], state=row["state"], duplicate=duplicate, reason=row["reason"]
    )


def utc_text(value: str | None) -> str | None:
    """Return an ISO-8601 time as fixed-width UTC text that sorts chronologically; None if unparsable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _short(text: str) -> str:
    """Drop zero microseconds from utc_text() output, for messages."""
    return text.replace(".000000Z", "Z")


def iso_time(timestamp: float) -> str:
    """Format unix seconds as ISO-8601 UTC, e.g. 2024-05-01T12:00:00Z."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _marks(values: Sequence[object]) -> str:
    """Return one %s placeholder per value, comma-separated."""
    return ", ".join(["%s"] * len(values))


def _dump(value: Any) -> str | None:
    """Serialize a JSON column value; None stays NULL."""
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _load(value: Any) -> Any:
    """Read a JSON column: text on SQLite, already decoded (jsonb) on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value
