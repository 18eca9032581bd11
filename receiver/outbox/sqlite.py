"""SQLite outbox: one WAL file shared by every thread and process (gunicorn worker) of one host."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OutboxUnavailableError
from ..model import Job
from ._common import DUE, LEASE, Row, SqlOutbox, Tx
from .migrations.sqlite import MIGRATIONS

#: How long a writer waits for another process's write transaction, in seconds.
BUSY_TIMEOUT = 10.0
_PREFIX = "sqlite:///"


class SqliteOutbox(SqlOutbox):
    """The embedded outbox at sqlite:///relative/path.db or sqlite:////absolute/path.db."""

    migrations = MIGRATIONS

    def __init__(self, url: str) -> None:
        self.path = _path(url)
        self._local = _Local()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._generation = 0
        self._open: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._inherited: list[sqlite3.Connection] = []
        self._writer = _GroupCommit(self.path)

    @contextmanager
    def _transaction(self, *, write: bool, timeout: float | None = None, durable: bool = True) -> Iterator[Tx]:
        """Run one transaction; a write one takes the write lock up front (BEGIN IMMEDIATE); reads never wait."""
        try:
            if write:  # BEGIN IMMEDIATE ... COMMIT, shared with this process's other writers
                with self._writer.transaction(durable=durable) as tx:
                    yield tx
                return
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield _SqliteTx(conn)
                conn.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            raise OutboxUnavailableError(f"SQLite outbox {self.path} is unavailable: {exc}") from exc

    def _lock_schema(self, tx: Tx) -> None:
        """Nothing to do: BEGIN IMMEDIATE already serializes writers across processes."""

    def _lock_targets(self, tx: Tx, targets: Sequence[tuple[str, str]]) -> None:
        """Nothing to do: BEGIN IMMEDIATE already serializes writers across processes."""

    def claim(self, owner: str, *, limit: int, lease_seconds: float, now: float) -> list[Job]:
        """Lease up to `limit` due jobs; look with a read first, so that finding none takes no write lock.

        Every enqueue wakes the process's idle delivery threads and each of them claims; all but one find
        nothing. A read costs no turn in the group commit and no wait for another process's commit.
        """
        if limit > 0:
            with self._transaction(write=False) as tx:
                if not tx.rows(f"SELECT 1 FROM jobs WHERE {DUE} LIMIT 1", (now, now)):
                    return []
        return super().claim(owner, limit=limit, lease_seconds=lease_seconds, now=now)

    def _claim_ids(self, tx: Tx, owner: str, limit: int, lease_seconds: float, now: float) -> list[int]:
        """Lease due jobs with one UPDATE inside the exclusive write transaction."""
        rows = tx.rows(
            f"UPDATE jobs SET {LEASE} WHERE id IN"
            f" (SELECT id FROM jobs WHERE {DUE} ORDER BY next_attempt_at, id LIMIT %s) RETURNING id",
            (owner, now + lease_seconds, now, now, now, limit),
        )
        return [int(row["id"]) for row in rows]

    def close(self) -> None:
        """Close every connection this process opened; later calls open new ones."""
        with self._lock:
            conns = [conn for _, conn in self._open] if self._pid == os.getpid() else []
            self._open = []
            self._generation += 1
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._writer.close()

    def _connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening one in a new thread, process or after close()."""
        local = self._local
        if local.conn is not None and local.key == (os.getpid(), self._generation):
            return local.conn
        conn = _connect(self.path)
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's connections are not ours to use or close
                self._inherited.extend(old for _, old in self._open)  # kept, so never closed by the collector
                self._pid, self._open = os.getpid(), []
            dead = [old for thread, old in self._open if not _alive(thread)]
            self._open = [(thread, old) for thread, old in self._open if _alive(thread)]
            self._open.append((weakref.ref(threading.current_thread()), conn))
            local.conn, local.key = conn, (self._pid, self._generation)
        for old in dead:
            with suppress(sqlite3.Error):
                old.close()
        return conn


#: Most write transactions one commit carries: bounds the wait of the first and what a failed commit undoes.
GROUP_COMMIT_MAX = 64
_SAVEPOINT = "pipedial_write"


class _Batch:
    """Write transactions that share one BEGIN IMMEDIATE ... COMMIT."""

    def __init__(self, *, durable: bool) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.members = 0
        self.durable = durable  # its COMMIT waits for the disk (synchronous=FULL)


class _GroupCommit:
    """Group commit: the write transactions of one process's threads share commits, and so fsyncs.

    With synchronous=FULL every COMMIT waits for the disk; one commit per webhook (plus one per claim
    and per recorded attempt) made the disk's flush rate the intake's ceiling. Threads take turns on
    one write connection instead: the first opens BEGIN IMMEDIATE, each runs its statements inside its
    own SAVEPOINT (its failure rolls back only its own statements), and the thread that ends its turn
    with nobody queued behind it commits for all. Every caller returns only after the COMMIT that holds
    its writes, and raises if that COMMIT failed: a 2xx still means a durable write. Processes queue
    for the database with flock() (see _lock_processes) and BEGIN IMMEDIATE, as before.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inherited: list[sqlite3.Connection] = []
        self._reset()
        _WRITERS.add(self)

    def _reset(self) -> None:
        """Start afresh (at creation, and in a forked child: the parent's turn and batch are not ours)."""
        inherited: sqlite3.Connection | None = getattr(self, "_conn", None)
        if inherited is not None:
            self._inherited.append(inherited)  # kept, so never closed by the collector in this process
        self._cond = threading.Condition()
        self._busy = False  # a thread holds the turn: runs its statements or commits
        self._waiting = 0  # threads queued for the turn
        self._batch: _Batch | None = None  # read and changed only by the turn's holder
        self._conn: sqlite3.Connection | None = None
        self._synchronous = "FULL"  # the write connection's level, set before each BEGIN that needs another
        self._lock_fd: int | None = None  # a forked child opens its own: flock() belongs to the open file

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Tx]:
        """Run the caller's statements in the open batch; return once they are committed.

        Writes that are not `durable` go into batches that commit without waiting for the disk
        (synchronous=NORMAL, set before BEGIN: SQLite refuses to change it inside a transaction). Their
        writes reach the disk with the next durable commit, or are lost with a crash of the machine,
        which must be harmless for them (a job's lease). A durable write never joins such a batch: it
        commits it first and opens its own. A write that is not durable may join a durable batch.
        """
        self._take_turn()
        try:
            batch, conn = self._join(durable)
        except BaseException:
            self._pass_turn()
            raise
        try:
            yield _SqliteTx(conn)
        except BaseException:
            self._undo(batch, conn)
            self._pass_turn()
            raise
        try:
            conn.execute(f"RELEASE {_SAVEPOINT}")
        except BaseException as exc:
            self._abort(batch, conn, exc)
            self._pass_turn()
            raise
        self._pass_turn()
        batch.done.wait()
        if batch.error is not None:
            raise sqlite3.OperationalError(f"commit failed: {batch.error}") from batch.error

    def close(self) -> None:
        """Commit an open batch and close the write connection; later writes open a new one."""
        try:
            self._take_turn()
        except sqlite3.OperationalError:
            return  # a writer is stuck in its turn: its connection stays with it
        try:
            if self._batch is not None:
                self._commit(self._batch)
            conn, self._conn = self._conn, None
            if conn is not None:
                with suppress(sqlite3.Error):
                    conn.close()
            fd, self._lock_fd = self._lock_fd, None
            if fd is not None:
                with suppress(OSError):
                    os.close(fd)
        finally:
            self._release()

    def _take_turn(self) -> None:
        deadline = time.monotonic() + BUSY_TIMEOUT
        with self._cond:
            self._waiting += 1
            try:
                while self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise sqlite3.OperationalError(f"database is locked (no turn to write in {BUSY_TIMEOUT:g}s)")
                    self._cond.wait(left)
            finally:
                self._waiting -= 1
            self._busy = True

    def _join(self, durable: bool) -> tuple[_Batch, sqlite3.Connection]:
        """Open a batch unless a suitable one is open, and a savepoint for the caller (the turn is held)."""
        if self._conn is None:
            self._conn = _connect(self.path)
            self._synchronous = "FULL"
        conn = self._conn
        if self._batch is not None and durable and not self._batch.durable:
            self._commit(self._batch)  # closes it: a durable write opens its own below
        if self._batch is None:
            synchronous = "FULL" if durable else "NORMAL"
            if synchronous != self._synchronous:
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                self._synchronous = synchronous
            self._lock_processes()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._unlock_processes()
                raise
            self._batch = _Batch(durable=durable)
        batch = self._batch
        try:
            conn.execute(f"SAVEPOINT {_SAVEPOINT}")
        except BaseException as exc:
            self._abort(batch, conn, exc)
            raise
        batch.members += 1
        return batch, conn

    def _undo(self, batch: _Batch, conn: sqlite3.Connection) -> None:
        """Roll back the failed caller's statements only; if SQLite already ended the transaction, all of it."""
        try:
            if not conn.in_transaction:
                raise sqlite3.OperationalError("the transaction was rolled back")
            conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
            conn.execute(f"RELEASE {_SAVEPOINT}")
        except BaseException as exc:
            self._abort(batch, conn, exc)

    def _abort(self, batch: _Batch, conn: sqlite3.Connection, exc: BaseException) -> None:
        """Roll back the whole batch; its other members raise (the turn is held)."""
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        self._unlock_processes()
        batch.error = exc
        if self._batch is batch:
            self._batch = None
        batch.done.set()

    def _pass_turn(self) -> None:
        """Leave the batch open for the next queued writer, or commit it when none is queued."""
        with self._cond:
            batch = self._batch
            if batch is not None and self._waiting and batch.members < GROUP_COMMIT_MAX:
                self._busy = False
                self._cond.notify_all()
                return
        try:
            if batch is not None:
                self._commit(batch)
        finally:
            self._release()

    def _commit(self, batch: _Batch) -> None:
        self._batch = None
        try:
            if self._conn is None:
                raise sqlite3.OperationalError("the write connection is gone")
            self._conn.execute("COMMIT")
        except BaseException as exc:
            if self._conn is not None:
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            batch.error = exc
        finally:
            self._unlock_processes()
            batch.done.set()

    def _lock_processes(self) -> None:
        """Wait for this host's other writer processes with flock(), which wakes us as soon as one commits.

        Left to BEGIN IMMEDIATE alone, a process that finds the database locked retries on SQLite's
        timer (1, 2, 5, 10 ... 100 ms), so the lock sits idle while it sleeps and a busy peer takes it
        again and again. The holder keeps the flock only from BEGIN IMMEDIATE to COMMIT or ROLLBACK,
        and the kernel drops it if the process dies. Writers that do not take it (the sqlite3 shell)
        are still kept apart by BEGIN IMMEDIATE and the busy timeout.
        """
        if self._lock_fd is None:
            self._lock_fd = os.open(f"{self.path}-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def _unlock_processes(self) -> None:
        if self._lock_fd is not None:
            with suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()


_WRITERS: weakref.WeakSet[_GroupCommit] = weakref.WeakSet()


def _after_fork() -> None:
    for writer in list(_WRITERS):
        writer._reset()


os.register_at_fork(after_in_child=_after_fork)


class _Local(threading.local):
    """The calling thread's connection and the (pid, generation) it was opened for."""

    conn: sqlite3.Connection | None = None
    key: tuple[int, int] | None = None


class _SqliteTx:
    """A transaction on one sqlite3 connection; turns %s placeholders into ?."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Execute one statement and return its rows as dicts."""
        cursor = self._conn.execute(sql.replace("%s", "?"), tuple(params))
        return [dict(row) for row in cursor.fetchall()]


def _alive(thread: weakref.ref[threading.Thread]) -> bool:
    """Tell whether the thread that opened a connection still runs (its connection is then in use)."""
    alive = thread()
    return alive is not None and alive.is_alive()


def _connect(path: Path) -> sqlite3.Connection:
    """Open a connection in autocommit mode with WAL, synchronous=FULL and a busy timeout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        _use_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL; retry while another process switches a new file (SQLite skips the busy wait)."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    if mode != "wal":
        raise sqlite3.OperationalError(f"cannot use WAL (journal_mode is {mode}); is it on a network filesystem?")


def _path(url: str) -> Path:
    """Return the absolute database path of a sqlite:/// URL (relative to the working directory)."""
    rest = url[len(_PREFIX) :] if url.startswith(_PREFIX) else ""
    if not rest or rest.startswith(":memory:") or "?" in rest:
        raise ConfigError(f"RECEIVER_DATABASE_URL {url!r}: use sqlite:///relative/path.db or sqlite:////abs/path.db")
    return Path(rest).absolute()
