"""Outbox fixtures: every contract test runs against SQLite and, when reachable, PostgreSQL."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from receiver.outbox import Outbox
from receiver.outbox.postgres import PostgresOutbox
from receiver.outbox.sqlite import SqliteOutbox
from tests.helpers.postgres import postgres_schema_url, postgres_url  # noqa: F401

from . import _workers

BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def outbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, unmigrated store: a new SQLite file or a new PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def outbox(outbox_url: str) -> Iterator[Outbox]:
    """A migrated outbox on a fresh store."""
    box = _workers.open_store(outbox_url)
    box.migrate()
    yield box
    box.close()


@pytest.fixture(params=BACKENDS)
def broken_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outbox]:
    """An outbox whose store cannot answer: a SQLite file that is not a database, a refused port."""
    box: Outbox
    if request.param == "sqlite":
        path = tmp_path / "outbox.db"
        path.write_bytes(b"this is not a SQLite database, it only has the name of one" * 100)
        box = SqliteOutbox(f"sqlite:///{path}")
    else:
        box = PostgresOutbox("postgresql://pipedial:pipedial@127.0.0.1:1/pipedial_test", timeout=0.5)
    yield box
    box.close()


@pytest.fixture(scope="session")
def processes() -> Iterator[ProcessPoolExecutor]:
    """Four spawned processes, started once, for tests that race several processes."""
    with ProcessPoolExecutor(max_workers=4, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_workers.warm_up, [0.3] * 4))
        yield pool


@pytest.fixture
def together(processes: ProcessPoolExecutor) -> Callable[..., list[Any]]:
    """Run fn(*args, start_at) in several processes at once; return their results."""

    def run(fn: Callable[..., Any], *calls: tuple[Any, ...]) -> list[Any]:
        start_at = time.time() + 0.3
        futures = [processes.submit(fn, args[0], start_at, *args[1:]) for args in calls]
        return [future.result(timeout=60) for future in futures]

    return run
