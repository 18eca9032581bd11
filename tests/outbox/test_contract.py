"""The outbox contract (receiver/outbox/base.py), one behaviour per test, run against every backend."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from receiver.errors import OutboxUnavailableError
from receiver.model import JOB_STATES, Attempt, Enqueued, Event, Job, Pruned, Target
from receiver.outbox import Outbox
from receiver.outbox.migrations import postgres as postgres_migrations
from receiver.outbox.migrations import sqlite as sqlite_migrations

from . import _workers
from ._workers import NOW

EVENT = Event(
    source="hcp-terraform",
    kind="run:errored",
    state="failed",
    dedupe_key="nc-1:run-1:run:errored:2023-11-14T22:00:00Z",
    delivery_id="delivery-1",
    organization="acme",
    workspace="prod-network",
    run_id="run-1",
    url="https://app.terraform.io/app/acme/prod-network/runs/run-1",
    message="apply failed",
    occurred_at="2023-11-14T22:00:00Z",
)
TARGET = Target(route="prod-failed", action="trigger", division_id="div-ops", contact_list_id="cl-oncall")
LEASE = 60.0
DIAGNOSIS = {"cause": "the contact list is gone", "fix": "correct contact_list_id in the mapping"}


def put(
    box: Outbox,
    event: Event = EVENT,
    targets: Sequence[Target] = (TARGET,),
    *,
    event_id: str = "event-1",
    now: float = NOW,
) -> Enqueued:
    """Enqueue with the test defaults."""
    return box.enqueue(event, targets, event_id=event_id, request_id="req-1", mapping_version="map-1", now=now)


def change(n: int, **fields: Any) -> Event:
    """Return a different state change of EVENT (new delivery id and dedupe key)."""
    return replace(EVENT, **{"dedupe_key": f"state-change-{n}", "delivery_id": f"delivery-{n}", **fields})


def attempt(outcome: str, *, status_code: int | None = 200, at: float = NOW) -> Attempt:
    """Return an attempt as a worker would report it."""
    return Attempt(1, at, 12.5, outcome, status_code, correlation_id="corr-1", error_code=None, message=outcome)


def claim_one(box: Outbox, owner: str = "worker-a", *, now: float = NOW) -> Job:
    """Claim exactly one job."""
    jobs = box.claim(owner, limit=10, lease_seconds=LEASE, now=now)
    assert len(jobs) == 1
    return jobs[0]


# --- enqueue and dedupe


def test_enqueue_stores_one_pending_job_per_target_due_now(outbox: Outbox) -> None:
    other = replace(TARGET, route="prod-failed-campaign", action="start_campaign", campaign_id="camp-1")
    result = put(outbox, targets=[TARGET, other])
    assert result.event_id == "event-1" and not result.duplicate
    assert [(job.route, job.state, job.duplicate) for job in result.jobs] == [
        ("prod-failed", "pending", False),
        ("prod-failed-campaign", "pending", False),
    ]
    job = outbox.get(result.jobs[0].id)
    assert job is not None
    assert (job.next_attempt_at, job.created_at, job.attempts, job.history) == (NOW, NOW, 0, [])
    assert (job.request_id, job.mapping_version, job.event_id) == ("req-1", "map-1", "event-1")


def test_enqueue_round_trips_event_and_target(outbox: Outbox) -> None:
    contact = {"Phone": "+15550100", "Reason": "{state}: {message}"}
    target = replace(TARGET, action="add_contact", contact=contact, cooldown_seconds=0.5)
    result = put(outbox, targets=[target])
    job = outbox.get(result.jobs[0].id)
    assert job is not None
    assert (job.event, job.target) == (EVENT, target)


def test_redelivery_returns_first_event_id_and_its_jobs_as_duplicates(outbox: Outbox) -> None:
    first = put(outbox)
    again = put(outbox, event_id="event-2", now=NOW + 5)
    assert again.event_id == "event-1" and again.duplicate
    assert [(job.id, job.duplicate) for job in again.jobs] == [(first.jobs[0].id, True)]
    assert outbox.counts()["pending"] == 1


def test_same_delivery_id_from_another_source_is_not_a_redelivery(outbox: Outbox) -> None:
    put(outbox)
    other = put(outbox, replace(EVENT, source="github", dedupe_key="gh-1"), event_id="event-2")
    assert other.event_id == "event-2" and not other.duplicate


def test_events_without_delivery_id_do_not_collide(outbox: Outbox) -> None:
    put(outbox, replace(EVENT, delivery_id=None))
    other = put(outbox, replace(EVENT, delivery_id=None, dedupe_key="other"), event_id="event-2")
    assert other.event_id == "event-2" and not other.duplicate


def test_same_state_change_in_a_new_delivery_is_a_duplicate_job(outbox: Outbox) -> None:
    first = put(outbox)
    again = put(outbox, replace(EVENT, delivery_id="delivery-2"), event_id="event-2")
    assert again.event_id == "event-2" and again.duplicate
    assert [(job.id, job.state, job.duplicate) for job in again.jobs] == [(first.jobs[0].id, "pending", True)]
    # the new delivery's event row is stored: its own redelivery is recognized
    assert put(outbox, replace(EVENT, delivery_id="delivery-2"), event_id="event-3").event_id == "event-2"


def test_event_with_one_new_job_is_not_a_duplicate(outbox: Outbox) -> None:
    put(outbox)
    other = replace(TARGET, route="prod-failed-2", contact_list_id="cl-2")
    result = put(outbox, replace(EVENT, delivery_id="delivery-2"), [TARGET, other], event_id="event-2")
    assert not result.duplicate
    assert [(job.route, job.duplicate) for job in result.jobs] == [("prod-failed", True), ("prod-failed-2", False)]


# --- cooldown and stale


def test_cooldown_suppresses_a_new_job_for_the_same_route_and_target(outbox: Outbox) -> None:
    target = replace(TARGET, cooldown_seconds=600)
    first = put(outbox, targets=[target])
    second = put(outbox, change(2), [target], event_id="event-2", now=NOW + 599)
    job = second.jobs[0]
    assert (job.state, job.duplicate, second.duplicate) == ("suppressed", False, False)
    assert job.reason == f"cooldown 600s: job {first.jobs[0].id} for the same route and target at 2023-11-14T22:13:20Z"
    stored = outbox.get(job.id)
    assert stored is not None and (stored.state, stored.reason) == ("suppressed", job.reason)


def test_cooldown_ends_after_its_window(outbox: Outbox) -> None:
    target = replace(TARGET, cooldown_seconds=600)
    put(outbox, targets=[target])
    later = put(outbox, change(2), [target], event_id="event-2", now=NOW + 600)
    assert later.jobs[0].state == "pending"


def test_cooldown_is_not_started_by_dead_or_suppressed_jobs(outbox: Outbox) -> None:
    target = replace(TARGET, cooldown_seconds=600)
    put(outbox, targets=[target])
    job = claim_one(outbox)
    outbox.record(job, attempt("dead", status_code=403), state="dead", now=NOW, diagnosis=DIAGNOSIS)
    pending = put(outbox, change(2), [target], event_id="event-2", now=NOW + 1).jobs[0]
    assert pending.state == "pending"
    assert put(outbox, change(3), [target], event_id="event-3", now=NOW + 2).jobs[0].state == "suppressed"
    reason = put(outbox, change(4), [target], event_id="event-4", now=NOW + 3).jobs[0].reason
    assert reason is not None and f"job {pending.id} " in reason


def test_cooldown_applies_per_route_and_target(outbox: Outbox) -> None:
    target = replace(TARGET, cooldown_seconds=600)
    put(outbox, targets=[target])
    other_list = replace(target, contact_list_id="cl-other")
    assert put(outbox, change(2), [other_list], event_id="event-2").jobs[0].state == "pending"


def test_older_state_change_of_the_same_run_is_stale(outbox: Outbox) -> None:
    newer = put(outbox, change(1, occurred_at="2023-11-14T22:05:00Z"))
    # 23:01+01:00 is 22:01Z: older, although it sorts later as written
    older = put(outbox, change(2, occurred_at="2023-11-14T23:01:00+01:00"), event_id="event-2")
    job = older.jobs[0]
    assert job.state == "stale" and not older.duplicate
    assert job.reason is not None and f"job {newer.jobs[0].id}" in job.reason and "2023-11-14T22:05:00Z" in job.reason


def test_newer_state_change_or_another_run_is_not_stale(outbox: Outbox) -> None:
    put(outbox, change(1, occurred_at="2023-11-14T22:05:00Z"))
    assert put(outbox, change(2, occurred_at="2023-11-14T22:06:00Z"), event_id="e2").jobs[0].state == "pending"
    other_run = change(3, occurred_at="2023-11-14T22:00:00Z", run_id="run-2")
    assert put(outbox, other_run, event_id="e3").jobs[0].state == "pending"


def test_state_change_without_time_is_never_stale(outbox: Outbox) -> None:
    put(outbox, change(1, occurred_at="2023-11-14T22:05:00Z"))
    assert put(outbox, change(2, occurred_at=None), event_id="event-2").jobs[0].state == "pending"


# --- claim, leases and record


def test_claim_leases_due_jobs_oldest_first_up_to_limit(outbox: Outbox) -> None:
    for n in (3, 1, 2):
        put(outbox, change(n), [replace(TARGET, contact_list_id=f"cl-{n}")], event_id=f"e{n}", now=NOW + n)
    assert outbox.claim("worker-a", limit=5, lease_seconds=LEASE, now=NOW) == []
    jobs = outbox.claim("worker-a", limit=2, lease_seconds=LEASE, now=NOW + 10)
    assert [job.target.contact_list_id for job in jobs] == ["cl-1", "cl-2"]
    assert {(job.state, job.lease_owner, job.lease_expires_at, job.attempts) for job in jobs} == {
        ("in_flight", "worker-a", NOW + 10 + LEASE, 0)
    }
    rest = outbox.claim("worker-b", limit=5, lease_seconds=LEASE, now=NOW + 10)
    assert [job.target.contact_list_id for job in rest] == ["cl-3"]


@pytest.mark.slow
def test_claim_hands_each_job_to_exactly_one_of_many_workers(
    outbox: Outbox, outbox_url: str, together: Callable[..., list[Any]]
) -> None:
    targets = [replace(TARGET, contact_list_id=f"cl-{n}") for n in range(300)]
    job_ids = sorted(job.id for job in put(outbox, targets=targets).jobs)
    results = together(_workers.claim_all, (outbox_url, 4, 3), (outbox_url, 4, 3))
    owner_of = {job_id: owner for result in results for owner, ids in result.items() for job_id in ids}
    claimed = [job_id for result in results for ids in result.values() for job_id in ids]
    assert sorted(claimed) == job_ids  # every job once, none twice
    assert {job.id: job.lease_owner for job in outbox.list_jobs(limit=1000)} == owner_of


def test_expired_lease_is_claimed_again(outbox: Outbox) -> None:
    put(outbox)
    first = claim_one(outbox, "worker-a")
    assert outbox.claim("worker-b", limit=5, lease_seconds=LEASE, now=NOW + LEASE - 1) == []
    again = claim_one(outbox, "worker-b", now=NOW + LEASE)
    assert (again.id, again.lease_owner, again.lease_expires_at) == (first.id, "worker-b", NOW + 2 * LEASE)


def test_record_fails_when_the_lease_was_lost(outbox: Outbox) -> None:
    put(outbox)
    lost = claim_one(outbox, "worker-a")
    claim_one(outbox, "worker-b", now=NOW + LEASE)
    assert not outbox.record(lost, attempt("delivered"), state="delivered", now=NOW + LEASE + 1)
    job = outbox.get(lost.id)
    assert job is not None
    assert (job.state, job.lease_owner, job.attempts, job.history) == ("in_flight", "worker-b", 0, [])


def test_record_fails_for_the_same_owner_holding_an_older_lease(outbox: Outbox) -> None:
    put(outbox)
    old = claim_one(outbox, "worker-a")
    claim_one(outbox, "worker-a", now=NOW + LEASE)
    assert not outbox.record(old, attempt("delivered"), state="delivered", now=NOW + LEASE + 1)


def test_record_delivered_appends_the_attempt(outbox: Outbox) -> None:
    put(outbox)
    job = claim_one(outbox)
    assert outbox.record(job, attempt("delivered"), state="delivered", now=NOW + 1)
    stored = outbox.get(job.id)
    assert stored is not None
    assert (stored.state, stored.attempts, stored.lease_owner, stored.lease_expires_at) == ("delivered", 1, None, None)
    assert stored.history == [Attempt(1, NOW, 12.5, "delivered", 200, "corr-1", None, "delivered")]
    assert outbox.claim("worker-b", limit=5, lease_seconds=LEASE, now=NOW + 10 * LEASE) == []


def test_record_retry_schedules_the_next_attempt(outbox: Outbox) -> None:
    put(outbox)
    job = claim_one(outbox)
    assert outbox.record(job, attempt("retry", status_code=503), state="pending", now=NOW + 1, next_attempt_at=NOW + 30)
    assert outbox.claim("worker-a", limit=5, lease_seconds=LEASE, now=NOW + 29) == []
    again = claim_one(outbox, now=NOW + 30)
    assert (again.attempts, again.next_attempt_at) == (1, NOW + 30)
    assert outbox.record(
        again, attempt("retry", status_code=429), state="pending", now=NOW + 31, next_attempt_at=NOW + 90
    )
    stored = outbox.get(job.id)
    assert stored is not None and [(a.number, a.status_code) for a in stored.history] == [(1, 503), (2, 429)]


def test_record_dead_stores_the_diagnosis(outbox: Outbox) -> None:
    put(outbox)
    job = claim_one(outbox)
    diagnosis = {"cause": "the OAuth client lacks outbound:contactList:edit", "fix": "add it to the role"}
    assert outbox.record(job, attempt("dead", status_code=403), state="dead", now=NOW + 1, diagnosis=diagnosis)
    stored = outbox.get(job.id)
    assert stored is not None and (stored.state, stored.diagnosis) == ("dead", diagnosis)


def test_record_refuses_a_state_it_cannot_set(outbox: Outbox) -> None:
    put(outbox)
    job = claim_one(outbox)
    with pytest.raises(ValueError, match="suppressed"):
        outbox.record(job, attempt("delivered"), state="suppressed", now=NOW)


def test_release_gives_jobs_back_due_now_without_an_attempt(outbox: Outbox) -> None:
    put(outbox)
    job = claim_one(outbox, "worker-a")
    outbox.release("worker-b", [job.id], now=NOW + 1)  # not worker-b's to give back
    assert outbox.counts()["in_flight"] == 1
    outbox.release("worker-a", [job.id], now=NOW + 2)
    stored = outbox.get(job.id)
    assert stored is not None
    assert (stored.state, stored.next_attempt_at, stored.attempts, stored.lease_owner) == ("pending", NOW + 2, 0, None)
    assert claim_one(outbox, "worker-b", now=NOW + 2).id == job.id


# --- prune


def finish(box: Outbox, state: str = "delivered", *, at: float = NOW + 1) -> Job:
    """Claim the one due job and finish it (delivered or dead) at `at`."""
    job = claim_one(box, now=at)
    assert box.record(job, attempt(state, at=at), state=state, now=at)
    return job


def test_prune_deletes_old_finished_events_with_their_jobs_and_attempts(outbox: Outbox) -> None:
    cooled = replace(TARGET, cooldown_seconds=600)
    put(outbox, targets=(cooled,))
    delivered = finish(outbox)
    suppressed = put(outbox, change(2), (cooled,), event_id="event-2", now=NOW + 2).jobs[0]
    stale = put(outbox, change(3, occurred_at="2023-11-14T21:00:00Z"), event_id="event-3", now=NOW + 3).jobs[0]
    assert (suppressed.state, stale.state) == ("suppressed", "stale")
    pruned = outbox.prune(before=NOW + 10)
    assert (pruned.events, pruned.jobs, pruned.attempts) == (3, 3, 1)
    assert outbox.counts() == dict.fromkeys(JOB_STATES, 0)
    assert outbox.get(delivered.id) is None


def test_prune_keeps_pending_in_flight_and_dead_jobs_and_their_events(outbox: Outbox) -> None:
    put(outbox)
    finish(outbox, "dead")
    put(outbox, change(2), event_id="event-2")
    claim_one(outbox)
    put(outbox, change(3), event_id="event-3")
    before = outbox.counts()
    assert outbox.prune(before=NOW + 3600) == Pruned()
    assert outbox.counts() == before == {**dict.fromkeys(JOB_STATES, 0), "dead": 1, "in_flight": 1, "pending": 1}


def test_prune_keeps_an_event_while_any_of_its_jobs_is_unfinished(outbox: Outbox) -> None:
    other = replace(TARGET, route="prod-failed-too", contact_list_id="cl-other")
    put(outbox, targets=(TARGET, other))
    first, second = outbox.claim("worker-a", limit=2, lease_seconds=LEASE, now=NOW + 1)
    assert outbox.record(first, attempt("delivered"), state="delivered", now=NOW + 1)
    assert outbox.record(second, attempt("dead", status_code=403), state="dead", now=NOW + 1)
    assert outbox.prune(before=NOW + 3600) == Pruned()
    assert outbox.get(first.id) is not None and outbox.get(second.id) is not None


def test_prune_keeps_events_received_or_finished_since_the_cutoff(outbox: Outbox) -> None:
    put(outbox)
    finish(outbox, at=NOW + 100)  # received before the cutoff, delivered after it (a late or replayed job)
    put(outbox, change(2), event_id="event-2", now=NOW + 200)
    finish(outbox, at=NOW + 201)
    assert outbox.prune(before=NOW + 50) == Pruned()
    assert outbox.prune(before=NOW + 150) == Pruned(events=1, jobs=1, attempts=1)
    assert outbox.counts()["delivered"] == 1


def test_prune_deletes_events_whose_state_change_was_stored_by_an_earlier_one(outbox: Outbox) -> None:
    put(outbox)
    again = put(outbox, replace(EVENT, delivery_id="delivery-2"), event_id="event-2")  # no job of its own
    assert again.duplicate and again.event_id == "event-2"
    finish(outbox)
    assert outbox.prune(before=NOW + 10) == Pruned(events=2, jobs=1, attempts=1)


def test_prune_runs_in_batches_until_nothing_is_left(outbox: Outbox) -> None:
    for n in range(7):
        put(outbox, change(n), event_id=f"event-{n}")
        finish(outbox)
    assert outbox.prune(before=NOW + 10, batch=3) == Pruned(events=7, jobs=7, attempts=7)
    assert outbox.counts()["delivered"] == 0


def test_a_pruned_delivery_counts_as_new_when_it_comes_again(outbox: Outbox) -> None:
    """Why `receiver outbox prune` refuses ages under a week: dedupe needs the stored event."""
    put(outbox)
    finish(outbox)
    outbox.prune(before=NOW + 10)
    again = put(outbox, event_id="event-2", now=NOW + 20)
    assert not again.duplicate and again.jobs[0].state == "pending"


# --- replay and inspection


def test_replay_makes_a_dead_job_pending_and_keeps_its_history(outbox: Outbox) -> None:
    put(outbox)
    job = claim_one(outbox)
    outbox.record(job, attempt("dead", status_code=404), state="dead", now=NOW + 1, diagnosis=DIAGNOSIS)
    replayed = outbox.replay(job.id, now=NOW + 100)
    assert (replayed.state, replayed.next_attempt_at) == ("pending", NOW + 100)
    assert (replayed.diagnosis, replayed.reason) == (None, None)
    assert [(a.number, a.status_code) for a in replayed.history] == [(1, 404)]
    again = claim_one(outbox, now=NOW + 100)
    assert outbox.record(again, attempt("delivered"), state="delivered", now=NOW + 101)
    stored = outbox.get(job.id)
    assert stored is not None and [a.number for a in stored.history] == [1, 2]


def test_replay_makes_a_suppressed_job_pending(outbox: Outbox) -> None:
    target = replace(TARGET, cooldown_seconds=600)
    put(outbox, targets=[target])
    suppressed = put(outbox, change(2), [target], event_id="event-2").jobs[0]
    replayed = outbox.replay(suppressed.id, now=NOW + 5)
    assert (replayed.state, replayed.reason) == ("pending", None)


def test_replay_refuses_unknown_and_unfinished_jobs(outbox: Outbox) -> None:
    job_id = put(outbox).jobs[0].id
    with pytest.raises(KeyError):
        outbox.replay(job_id + 1000, now=NOW)
    with pytest.raises(ValueError, match="pending"):
        outbox.replay(job_id, now=NOW)
    claim_one(outbox)
    with pytest.raises(ValueError, match="in_flight"):
        outbox.replay(job_id, now=NOW)


def test_replay_dead_requeues_every_dead_job(outbox: Outbox) -> None:
    for n in range(3):
        put(outbox, change(n), [replace(TARGET, contact_list_id=f"cl-{n}")], event_id=f"e{n}")
    jobs = outbox.claim("worker-a", limit=3, lease_seconds=LEASE, now=NOW)
    for job in jobs[:2]:
        outbox.record(job, attempt("dead", status_code=400), state="dead", now=NOW + 1, diagnosis=DIAGNOSIS)
    outbox.record(jobs[2], attempt("delivered"), state="delivered", now=NOW + 1)
    assert outbox.replay_dead(now=NOW + 50) == 2
    assert outbox.counts()["pending"] == 2 and outbox.counts()["dead"] == 0
    assert all(len(job.history) == 1 for job in map(outbox.get, [jobs[0].id, jobs[1].id]) if job is not None)
    assert outbox.replay_dead(now=NOW + 60) == 0


def test_replay_grants_a_fresh_retry_budget_and_keeps_the_count(outbox: Outbox) -> None:
    put(outbox)
    for n in range(3):  # three failed attempts, the last one dead
        job = claim_one(outbox, now=NOW + n)
        assert job.replayed_attempts == 0
        state = "dead" if n == 2 else "pending"
        outbox.record(job, attempt("retry", status_code=503), state=state, now=NOW + n, diagnosis=None)
    replayed = outbox.replay(job.id, now=NOW + 100)
    assert (replayed.attempts, replayed.replayed_attempts, len(replayed.history)) == (3, 3, 3)
    again = claim_one(outbox, now=NOW + 100)
    assert (again.attempts, again.replayed_attempts) == (3, 3)  # delivery sees where the new budget starts
    assert outbox.record(again, attempt("retry", status_code=503), state="dead", now=NOW + 101)
    stored = outbox.get(job.id)
    assert stored is not None
    assert (stored.attempts, stored.replayed_attempts, [a.number for a in stored.history]) == (4, 3, [1, 2, 3, 4])
    assert outbox.replay(job.id, now=NOW + 200).replayed_attempts == 4  # each replay starts a new budget


def test_replay_dead_grants_every_job_a_fresh_retry_budget(outbox: Outbox) -> None:
    for n in range(2):
        put(outbox, change(n), [replace(TARGET, contact_list_id=f"cl-{n}")], event_id=f"e{n}")
    for job in outbox.claim("worker-a", limit=2, lease_seconds=LEASE, now=NOW):
        outbox.record(job, attempt("dead", status_code=503), state="dead", now=NOW + 1, diagnosis=DIAGNOSIS)
    assert outbox.replay_dead(now=NOW + 50) == 2
    jobs = outbox.claim("worker-b", limit=2, lease_seconds=LEASE, now=NOW + 50)
    assert [(job.attempts, job.replayed_attempts) for job in jobs] == [(1, 1), (1, 1)]


def test_counts_include_every_state(outbox: Outbox) -> None:
    assert outbox.counts() == dict.fromkeys(JOB_STATES, 0)
    target = replace(TARGET, cooldown_seconds=600)
    put(outbox, targets=[target])
    put(outbox, change(2), [target], event_id="event-2")
    claim_one(outbox)
    assert outbox.counts() == {**dict.fromkeys(JOB_STATES, 0), "in_flight": 1, "suppressed": 1}


def test_oldest_pending_age_counts_from_creation(outbox: Outbox) -> None:
    assert outbox.oldest_pending_age(now=NOW) is None
    put(outbox, now=NOW)
    put(outbox, change(2), [replace(TARGET, contact_list_id="cl-2")], event_id="event-2", now=NOW + 20)
    assert outbox.oldest_pending_age(now=NOW + 30) == 30.0
    claim_one(outbox, now=NOW + 1)  # only the first is due then
    assert outbox.oldest_pending_age(now=NOW + 30) == 10.0


def test_next_due_is_the_earliest_pending_job_or_expiring_lease(outbox: Outbox) -> None:
    assert outbox.next_due() is None
    put(outbox, now=NOW)
    put(outbox, change(2), [replace(TARGET, contact_list_id="cl-2")], event_id="event-2", now=NOW + 20)
    assert outbox.next_due() == NOW
    claim_one(outbox, now=NOW + 1)
    assert outbox.next_due() == NOW + 20
    claim_one(outbox, now=NOW + 20)
    assert outbox.next_due() == NOW + 1 + LEASE


def test_get_returns_none_for_an_unknown_job(outbox: Outbox) -> None:
    assert outbox.get(12345) is None


def test_list_jobs_is_newest_first_and_filters_by_state(outbox: Outbox) -> None:
    ids = [
        put(outbox, change(n), [replace(TARGET, contact_list_id=f"cl-{n}")], event_id=f"e{n}").jobs[0].id
        for n in range(3)
    ]
    outbox.claim("worker-a", limit=1, lease_seconds=LEASE, now=NOW)
    assert [job.id for job in outbox.list_jobs()] == ids[::-1]
    assert [job.id for job in outbox.list_jobs(limit=2)] == ids[:0:-1]
    assert [job.id for job in outbox.list_jobs(state="in_flight")] == ids[:1]
    with pytest.raises(ValueError, match="unknown job state"):
        outbox.list_jobs(state="done")


# --- concurrency across processes


@pytest.mark.slow
def test_same_state_change_enqueued_by_several_processes_stores_one_job(
    outbox: Outbox, outbox_url: str, together: Callable[..., list[Any]]
) -> None:
    calls = [(outbox_url, change(1, delivery_id=f"d-{n}").to_dict(), TARGET.to_dict(), f"e{n}") for n in range(4)]
    results = together(_workers.enqueue, *calls)
    assert sorted(duplicate for duplicate, _ in results) == [False, True, True, True]
    assert len({jobs[0][0] for _, jobs in results}) == 1
    assert outbox.counts()["pending"] == 1


@pytest.mark.slow
def test_redelivery_racing_in_several_processes_stores_one_event(
    outbox: Outbox, outbox_url: str, together: Callable[..., list[Any]]
) -> None:
    calls = [(outbox_url, EVENT.to_dict(), TARGET.to_dict(), f"e{n}") for n in range(4)]
    results = together(_workers.enqueue, *calls)
    assert sorted(duplicate for duplicate, _ in results) == [False, True, True, True]
    assert _workers.raw_rows(outbox_url, "SELECT COUNT(*) FROM events") == [(1,)]
    assert outbox.counts()["pending"] == 1


@pytest.mark.slow
def test_cooldown_racing_in_several_processes_lets_one_job_through(
    outbox: Outbox, outbox_url: str, together: Callable[..., list[Any]]
) -> None:
    target = replace(TARGET, cooldown_seconds=600).to_dict()
    results = together(_workers.enqueue, *[(outbox_url, change(n).to_dict(), target, f"e{n}") for n in range(4)])
    assert sorted(jobs[0][1] for _, jobs in results) == ["pending", "suppressed", "suppressed", "suppressed"]


# --- availability and schema


def test_enqueue_on_a_broken_store_raises_outbox_unavailable(broken_outbox: Outbox) -> None:
    with pytest.raises(OutboxUnavailableError):
        put(broken_outbox)


def test_ping_on_a_broken_store_raises_outbox_unavailable(broken_outbox: Outbox) -> None:
    with pytest.raises(OutboxUnavailableError):
        broken_outbox.ping()


def test_ping_answers_on_a_migrated_store(outbox: Outbox) -> None:
    outbox.ping()


def test_migrate_twice_keeps_the_data(outbox: Outbox, outbox_url: str) -> None:
    put(outbox)
    outbox.migrate()
    assert outbox.counts()["pending"] == 1
    assert _workers.raw_rows(outbox_url, "SELECT COUNT(*) FROM schema_version") == [(len(_migrations(outbox_url)),)]


def test_migrating_a_version_1_store_keeps_its_jobs_with_a_zero_replay_count(outbox_url: str) -> None:
    old = _workers.open_store(outbox_url)
    old.migrations = _migrations(outbox_url)[:1]  # type: ignore[misc]  # the store as version 1 left it
    try:
        old.migrate()
        job_id = put(old).jobs[0].id
    finally:
        old.close()
    box = _workers.open_store(outbox_url)
    try:
        box.migrate()
        job = box.get(job_id)
        assert job is not None and (job.state, job.attempts, job.replayed_attempts) == ("pending", 0, 0)
    finally:
        box.close()


@pytest.mark.slow
def test_migrate_concurrently_from_several_processes(outbox_url: str, together: Callable[..., list[Any]]) -> None:
    together(_workers.migrate, *[(outbox_url,)] * 4)
    versions = _workers.raw_rows(outbox_url, "SELECT version FROM schema_version ORDER BY version")
    assert versions == [(n,) for n in range(1, len(_migrations(outbox_url)) + 1)]
    box = _workers.open_store(outbox_url)
    try:
        assert not put(box).duplicate
    finally:
        box.close()


def _migrations(url: str) -> tuple[tuple[str, ...], ...]:
    return sqlite_migrations.MIGRATIONS if url.startswith("sqlite:") else postgres_migrations.MIGRATIONS


def _enqueue_in_child(box: Outbox) -> None:
    put(box, change(2), event_id="event-2")
    box.close()


def test_a_forked_child_uses_its_own_connections(outbox: Outbox) -> None:
    """gunicorn forks after start-up: a child must not share the parent's connection or pool."""
    put(outbox, change(1), event_id="event-1")
    child = multiprocessing.get_context("fork").Process(target=_enqueue_in_child, args=(outbox,))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert outbox.counts()["pending"] == 2
    put(outbox, change(3), event_id="event-3")  # the parent's connections still work
    assert outbox.counts()["pending"] == 3
