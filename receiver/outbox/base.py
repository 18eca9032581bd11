"""The outbox contract: what every backend (SQLite, PostgreSQL) does, identically.

Semantics (both backends, one contract test suite):
- enqueue() stores the event and one job per target in ONE transaction and returns only after the
  commit. Dedupe: an event whose (source, delivery_id) is already stored is a redelivery: nothing
  new is stored, the first event_id is returned, duplicate=True. A job whose
  (route, target.key, event.dedupe_key) already exists is not stored again; when no job at all is
  new, duplicate=True.
- Cooldown: a new job whose route+target.key had a job (pending, in_flight or delivered) created
  within target.cooldown_seconds is stored with state "suppressed" and a reason.
- Stale: a new job for an event with run_id and occurred_at, when a job of the same route,
  target.key, source and run_id exists with a later occurred_at, is stored with state "stale".
- claim() atomically moves due jobs (pending with next_attempt_at <= now, or in_flight whose lease
  expired) to in_flight with lease_owner=owner, lease_expires_at=now+lease_seconds; no job is ever
  handed to two owners with overlapping leases.
- record() appends the attempt to the job's history and sets its state (pending with
  next_attempt_at for a retry, delivered, dead with diagnosis); it returns False, changing
  nothing, when the caller no longer holds the lease.
- prune() deletes events received before a time whose jobs are all delivered, suppressed or stale
  and unchanged since, with their jobs and attempts; pending, in-flight and dead jobs and their
  events are never deleted.
- replay() and replay_dead() make finished jobs pending again and keep their history; they set
  replayed_attempts = attempts, so delivery grants a replayed job a fresh retry budget
  (max_attempts counts the attempts after the last replay).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..model import Attempt, Enqueued, Event, Job, Pruned, Target


class Outbox(Protocol):
    """A durable job store; see the module docstring for the contract."""

    def migrate(self) -> None:
        """Create or upgrade the schema; idempotent and safe when run concurrently."""

    def ping(self) -> None:
        """Raise OutboxUnavailableError unless the store answers."""

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

    def claim(self, owner: str, *, limit: int, lease_seconds: float, now: float) -> list[Job]:
        """Lease up to `limit` due jobs to `owner`."""

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
        """Store an attempt and the job's new state, if `job.lease_owner` still holds it."""

    def release(self, owner: str, job_ids: Sequence[int], *, now: float) -> None:
        """Give leased jobs back (pending, due now) without counting an attempt."""

    def get(self, job_id: int) -> Job | None:
        """Return one job with its full attempt history."""

    def list_jobs(self, *, state: str | None = None, limit: int = 100) -> list[Job]:
        """Return jobs, newest first, optionally of one state."""

    def replay(self, job_id: int, *, now: float) -> Job:
        """Make a dead/suppressed/stale/delivered job pending again with a fresh retry budget, keeping its history."""

    def replay_dead(self, *, now: float) -> int:
        """Make every dead job pending again with a fresh retry budget; return how many."""

    def prune(self, *, before: float, batch: int = ...) -> Pruned:
        """Delete events received before `before` whose jobs are all delivered, suppressed or stale since then."""

    def counts(self) -> dict[str, int]:
        """Return the number of jobs per state."""

    def oldest_pending_age(self, *, now: float) -> float | None:
        """Return the age in seconds of the oldest pending job, or None."""

    def next_due(self) -> float | None:
        """Return when the next pending job falls due (unix seconds), or None."""

    def close(self) -> None:
        """Release connections."""
