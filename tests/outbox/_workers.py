"""Code the outbox tests run in other processes (spawned, so it must be importable), plus raw helpers."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import closing
from typing import Any

import psycopg

from receiver.model import Event, Target
from receiver.outbox import Outbox
from receiver.outbox.postgres import PostgresOutbox
from receiver.outbox.sqlite import SqliteOutbox

#: "now" for every test: 2023-11-14T22:13:20Z.
NOW = 1_700_000_000.0


def open_store(url: str) -> Outbox:
    """Construct the backend for url, without migrating."""
    return SqliteOutbox(url) if url.startswith("sqlite:") else PostgresOutbox(url, max_size=4)


def raw_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one query on the store behind the outbox's back."""
    if url.startswith("sqlite:"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return list(conn.execute(sql).fetchall())
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql.encode()).fetchall())


def warm_up(seconds: float) -> int:
    """Keep a pool process busy for a moment so that every process of the pool starts."""
    time.sleep(seconds)
    return os.getpid()


def _wait(start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))


def migrate(url: str, start_at: float) -> int:
    """Migrate at start_at; return the pid."""
    box = open_store(url)
    try:
        _wait(start_at)
        box.migrate()
    finally:
        box.close()
    return os.getpid()


def claim_all(url: str, start_at: float, threads: int, limit: int) -> dict[str, list[int]]:
    """Claim from `threads` threads until nothing is due; return the job ids each owner got."""
    box = open_store(url)
    claimed: dict[str, list[int]] = {}

    def run(owner: str) -> None:
        ids: list[int] = []
        _wait(start_at)
        while batch := box.claim(owner, limit=limit, lease_seconds=600, now=NOW + 1):
            ids.extend(job.id for job in batch)
        claimed[owner] = ids

    try:
        workers = [threading.Thread(target=run, args=(f"{os.getpid()}-{n}",)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        box.close()
    return claimed


def enqueue(
    url: str, start_at: float, event: dict[str, Any], target: dict[str, Any], event_id: str
) -> tuple[bool, list[tuple[int, str, bool]]]:
    """Enqueue one event at start_at; return (duplicate, [(job id, state, duplicate)])."""
    box = open_store(url)
    try:
        _wait(start_at)
        result = box.enqueue(
            Event.from_dict(event),
            [Target.from_dict(target)],
            event_id=event_id,
            request_id=None,
            mapping_version=None,
            now=NOW,
        )
    finally:
        box.close()
    return result.duplicate, [(job.id, job.state, job.duplicate) for job in result.jobs]


def open_new_files(directory: str, start_at: float, count: int, spacing: float) -> list[str]:
    """Open count fresh SQLite files, the i-th at start_at + i * spacing; return the errors."""
    errors = []
    for n in range(count):
        box = SqliteOutbox(f"sqlite:///{directory}/outbox-{n}.db")
        _wait(start_at + n * spacing)
        try:
            box.migrate()
        except Exception as exc:
            errors.append(f"{n}: {exc}")
        finally:
            box.close()
    return errors
