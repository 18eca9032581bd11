"""SQLite specifics: URLs, pragmas, connections per thread and per process."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from receiver.errors import ConfigError, OutboxUnavailableError
from receiver.model import Event, Target
from receiver.outbox import open_outbox
from receiver.outbox.sqlite import SqliteOutbox

from . import _workers
from ._workers import NOW

EVENT = Event(source="github", kind="workflow_run", state="failed", dedupe_key="k-1", delivery_id="d-1")
TARGET = Target(route="ci-failed", action="trigger", division_id="div-ops", contact_list_id="cl-oncall")


def put(box: SqliteOutbox, n: int = 1) -> int:
    """Enqueue state change n; return its job id."""
    event = Event(source="github", kind="workflow_run", state="failed", dedupe_key=f"k-{n}", delivery_id=f"d-{n}")
    result = box.enqueue(event, [TARGET], event_id=f"e-{n}", request_id=None, mapping_version=None, now=NOW)
    return result.jobs[0].id


def test_relative_url_is_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    box = SqliteOutbox("sqlite:///data/nested/outbox.db")
    try:
        box.migrate()
    finally:
        box.close()
    assert box.path == tmp_path / "data" / "nested" / "outbox.db"
    assert box.path.is_file()


def test_absolute_url_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "outbox.db"
    box = open_outbox(f"sqlite:///{path}")  # sqlite:////tmp/...: four slashes
    try:
        assert isinstance(box, SqliteOutbox) and box.path == path
        assert box.counts()["pending"] == 0
    finally:
        box.close()


@pytest.mark.parametrize("url", ["sqlite://outbox.db", "sqlite:///", "sqlite:///:memory:", "sqlite:///x.db?mode=ro"])
def test_unusable_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="sqlite:///"):
        SqliteOutbox(url)


def test_connections_use_wal_full_sync_and_a_busy_timeout(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    assert isinstance(box, SqliteOutbox)
    try:
        conn = box._connection()
        names = ("journal_mode", "synchronous", "busy_timeout")
        pragmas = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names}
        assert pragmas == {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 10000}
    finally:
        box.close()


def test_each_thread_gets_its_own_connection_and_close_reopens(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    assert isinstance(box, SqliteOutbox)
    seen: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: seen.append(box._connection()))
    thread.start()
    thread.join()
    mine = box._connection()
    assert seen[0] is not mine
    box.close()
    assert box._connection() is not mine
    put(box)
    box.close()


def test_store_in_an_uncreatable_directory_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a directory")
    box = SqliteOutbox(f"sqlite:///{tmp_path / 'file' / 'outbox.db'}")
    with pytest.raises(OutboxUnavailableError, match="outbox.db"):
        box.migrate()


def test_store_whose_tables_are_gone_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = open_outbox(f"sqlite:///{path}")
    try:
        with closing(sqlite3.connect(path)) as conn:
            conn.executescript("DROP TABLE attempts; DROP TABLE jobs;")
        with pytest.raises(OutboxUnavailableError, match="no such table"):
            box.enqueue(EVENT, [TARGET], event_id="e-1", request_id=None, mapping_version=None, now=NOW)
    finally:
        box.close()


@pytest.mark.slow
def test_processes_opening_a_new_file_at_once_all_get_wal(tmp_path: Path, together: Callable[..., list[Any]]) -> None:
    """Two processes switching a new file to WAL at once make SQLite answer "locked" without waiting."""
    results = together(_workers.open_new_files, *[(str(tmp_path), 60, 0.02)] * 4)
    assert [error for errors in results for error in errors if "locked" in error] == []


def traced(box: SqliteOutbox) -> list[str]:
    """Record every statement of the process's write connection from now on."""
    put(box, 1000)  # opens the write connection
    statements: list[str] = []
    conn = box._writer._conn
    assert conn is not None
    conn.set_trace_callback(statements.append)
    return statements


def test_leases_commit_without_waiting_for_the_disk_and_enqueues_with(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    assert isinstance(box, SqliteOutbox)
    try:
        statements = traced(box)
        put(box, 1)
        jobs = box.claim("o", limit=2, lease_seconds=30, now=NOW)
        box.release("o", [jobs[0].id], now=NOW)
        put(box, 2)
    finally:
        box.close()
    levels = [s for s in statements if s.startswith("PRAGMA synchronous") or s.startswith(("BEGIN", "COMMIT"))]
    # enqueue 1 (FULL, as opened), claim and release (NORMAL), enqueue 2 (FULL again)
    assert levels == ["BEGIN IMMEDIATE", "COMMIT", "PRAGMA synchronous = NORMAL", "BEGIN IMMEDIATE", "COMMIT",
                      "BEGIN IMMEDIATE", "COMMIT", "PRAGMA synchronous = FULL", "BEGIN IMMEDIATE", "COMMIT"]


def test_a_durable_write_commits_an_open_lease_batch_first_and_never_joins_it(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    assert isinstance(box, SqliteOutbox)
    writer = box._writer
    try:
        statements = traced(box)
        first_done = threading.Event()
        release_first = threading.Event()

        def lease_write() -> None:
            with writer.transaction(durable=False) as tx:
                tx.rows("UPDATE jobs SET lease_owner = 'x' WHERE id = -1")
                release_first.wait(5)
            first_done.set()

        thread = threading.Thread(target=lease_write)
        thread.start()
        while writer._batch is None:  # the lease write holds the turn inside its open batch
            time.sleep(0.001)
        enqueuer = threading.Thread(target=put, args=(box, 7))
        enqueuer.start()
        while writer._waiting == 0:  # the enqueue waits for the turn
            time.sleep(0.001)
        release_first.set()
        thread.join(5)
        enqueuer.join(5)
        assert first_done.is_set()
    finally:
        box.close()
    levels = [s for s in statements if s.startswith("PRAGMA synchronous") or s.startswith(("BEGIN", "COMMIT"))]
    assert levels == ["PRAGMA synchronous = NORMAL", "BEGIN IMMEDIATE", "COMMIT",
                      "PRAGMA synchronous = FULL", "BEGIN IMMEDIATE", "COMMIT"]


# --- group commit: the write transactions of one process's threads share one BEGIN ... COMMIT


def scratch(box: SqliteOutbox) -> None:
    """A table t for the tests' own rows, and a row in c that breaks a deferred foreign key."""
    with box._writer.transaction() as tx:
        tx.rows("CREATE TABLE t (x INTEGER)")
        tx.rows("CREATE TABLE p (id INTEGER PRIMARY KEY)")
        tx.rows("CREATE TABLE c (pid INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)")


def rows_of_t(box: SqliteOutbox) -> list[int]:
    with closing(sqlite3.connect(box.path)) as conn:
        return sorted(x for (x,) in conn.execute("SELECT x FROM t"))


def insert(box: SqliteOutbox, x: int, *, fail: bool = False, hold: threading.Event | None = None,
           errors: dict[int, BaseException] | None = None) -> None:
    """One write transaction: insert x into t, then wait for `hold`, then raise if `fail`."""
    try:
        with box._writer.transaction() as tx:
            tx.rows("INSERT INTO t (x) VALUES (%s)", (x,))
            if hold is not None:
                assert hold.wait(5)
            if fail:
                raise ValueError(f"writer {x} failed")
    except BaseException as exc:  # noqa: BLE001 - the test looks at what each writer got
        if errors is None:
            raise
        errors[x] = exc


def batch_of(box: SqliteOutbox, writers: list[dict[str, Any]]) -> tuple[dict[int, BaseException], list[str]]:
    """Run writers[0] holding the turn while the others queue, so that all share one batch."""
    statements = traced(box)
    errors: dict[int, BaseException] = {}
    hold = threading.Event()
    first = threading.Thread(target=insert, args=(box, writers[0]["x"]),
                             kwargs={"fail": writers[0].get("fail", False), "hold": hold, "errors": errors})
    first.start()
    while box._writer._batch is None:
        time.sleep(0.001)
    others = [threading.Thread(target=insert, args=(box, w["x"]),
                               kwargs={"fail": w.get("fail", False), "errors": errors}) for w in writers[1:]]
    for thread in others:
        thread.start()
    while box._writer._waiting < len(others):
        time.sleep(0.001)
    hold.set()
    for thread in [first, *others]:
        thread.join(5)
    return errors, statements


def test_a_failing_writer_alone_leaves_nothing_and_the_next_write_works(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    assert isinstance(box, SqliteOutbox)
    try:
        scratch(box)
        with pytest.raises(ValueError, match="writer 1 failed"):
            insert(box, 1, fail=True)
        insert(box, 2)
        assert rows_of_t(box) == [2]
    finally:
        box.close()


@pytest.mark.parametrize("failing", [0, 1, 2], ids=["first", "second", "last"])
def test_a_failing_writer_in_a_batch_undoes_only_its_own_statements(tmp_path: Path, failing: int) -> None:
    box = open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    assert isinstance(box, SqliteOutbox)
    try:
        scratch(box)
        writers = [{"x": x, "fail": i == failing} for i, x in enumerate((10, 20, 30))]
        errors, statements = batch_of(box, writers)
        assert statements.count("BEGIN IMMEDIATE") == 1 and statements.count("COMMIT") == 1  # one batch
        failed = writers[failing]["x"]
        assert set(errors) == {failed} and isinstance(errors[failed], ValueError)
        assert rows_of_t(box) == sorted({10, 20, 30} - {failed})
    finally:
        box.close()


def test_a_failed_commit_fails_every_writer_of_the_batch(tmp_path: Path) -> None:
    box = open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    assert isinstance(box, SqliteOutbox)
    try:
        scratch(box)
        statements = traced(box)
        errors: dict[int, BaseException] = {}
        hold = threading.Event()

        def breaks_the_commit() -> None:
            try:
                with box._writer.transaction() as tx:
                    tx.rows("INSERT INTO c (pid) VALUES (99)")  # no parent 99: refused at COMMIT
                    assert hold.wait(5)
            except BaseException as exc:  # noqa: BLE001
                errors[99] = exc

        first = threading.Thread(target=breaks_the_commit)
        first.start()
        while box._writer._batch is None:
            time.sleep(0.001)
        second = threading.Thread(target=insert, args=(box, 1), kwargs={"errors": errors})
        second.start()
        while box._writer._waiting < 1:
            time.sleep(0.001)
        hold.set()
        first.join(5)
        second.join(5)
        assert statements.count("BEGIN IMMEDIATE") == 1
        assert set(errors) == {1, 99}
        assert all(isinstance(e, sqlite3.OperationalError) and "commit failed" in str(e) for e in errors.values())
        assert rows_of_t(box) == []
        insert(box, 2)  # the writer recovers
        assert rows_of_t(box) == [2]
    finally:
        box.close()
