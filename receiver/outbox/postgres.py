"""PostgreSQL outbox: several instances share one database; claims use FOR UPDATE SKIP LOCKED."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow, dict_row
from psycopg_pool import ConnectionPool

from ..errors import ConfigError, OutboxUnavailableError
from ._common import DUE, LEASE, Row, SqlOutbox, Tx
from .migrations.postgres import MIGRATIONS

#: Advisory lock around migrate(); an (int4, int4) key, a space apart from the bigint target locks.
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(1885958245, 1)"

Pool = ConnectionPool[psycopg.Connection[TupleRow]]


class PostgresOutbox(SqlOutbox):
    """The shared outbox at postgresql://user:password@host:port/database, over a connection pool."""

    migrations = MIGRATIONS

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0) -> None:
        # timeout: seconds to wait for a pooled connection (and to connect) before OutboxUnavailableError
        try:
            params: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConfigError(f"RECEIVER_DATABASE_URL is not a valid PostgreSQL URL: {exc}") from exc
        params.setdefault("connect_timeout", max(2, round(timeout)))
        params.setdefault("application_name", "pipedial")
        self._params = {**params, "autocommit": True}
        self._min_size, self._max_size, self._timeout = min_size, max_size, timeout
        self._lock = threading.Lock()
        self._pool: Pool | None = None
        self._pool_pid = 0
        self._inherited: list[Pool] = []

    @contextmanager
    def _transaction(self, *, write: bool, timeout: float | None = None, durable: bool = True) -> Iterator[Tx]:
        """Run one transaction on a pooled connection (READ COMMITTED); not durable: no wait for the WAL flush."""
        try:
            with (
                self._connections().connection(timeout=min(timeout or self._timeout, self._timeout)) as conn,
                conn.transaction(),
                conn.cursor(row_factory=dict_row) as cursor,
            ):
                if write and not durable:
                    cursor.execute("SET LOCAL synchronous_commit = off")
                yield _PostgresTx(cursor)
        except psycopg.Error as exc:  # PoolTimeout is one too
            raise OutboxUnavailableError(f"PostgreSQL outbox is unavailable: {exc}") from exc

    def _lock_schema(self, tx: Tx) -> None:
        """Serialize migrate() across instances until the transaction ends."""
        tx.rows(_SCHEMA_LOCK)

    def _lock_targets(self, tx: Tx, targets: Sequence[tuple[str, str]]) -> None:
        """Serialize enqueues per (route, target key), so dedupe, cooldown and stale checks see each other."""
        for key in sorted({_lock_key(route, target_key) for route, target_key in targets}):  # one order: no deadlock
            tx.rows("SELECT pg_advisory_xact_lock(%s::bigint)", (key,))

    def _claim_ids(self, tx: Tx, owner: str, limit: int, lease_seconds: float, now: float) -> list[int]:
        """Lease due jobs, skipping rows another claim holds."""
        rows = tx.rows(
            f"WITH due AS (SELECT id FROM jobs WHERE {DUE} ORDER BY next_attempt_at, id LIMIT %s"
            f" FOR UPDATE SKIP LOCKED) UPDATE jobs SET {LEASE} FROM due WHERE jobs.id = due.id RETURNING jobs.id",
            (now, now, limit, owner, now + lease_seconds, now),
        )
        return [int(row["id"]) for row in rows]

    def close(self) -> None:
        """Close this process's pool; later calls open a new one."""
        with self._lock:
            pool, self._pool = self._pool, None
            if pool is not None and self._pool_pid != os.getpid():  # forked: the parent's, not ours
                self._inherited.append(pool)
                pool = None
        if pool is not None:
            pool.close()

    def _connections(self) -> Pool:
        """Return this process's pool, opening it on first use (a forked child never uses its parent's)."""
        with self._lock:
            if self._pool is not None and self._pool_pid != os.getpid():  # forked: never use or close it
                self._inherited.append(self._pool)
                self._pool = None
            if self._pool is None:
                pool: Pool = ConnectionPool(
                    kwargs=self._params,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    timeout=self._timeout,
                    check=ConnectionPool.check_connection,
                    name="pipedial-outbox",
                    open=False,
                )
                pool.open(wait=False)
                self._pool, self._pool_pid = pool, os.getpid()
            return self._pool


class _PostgresTx:
    """A transaction on one pooled connection."""

    def __init__(self, cursor: psycopg.Cursor[Row]) -> None:
        self._cursor = cursor

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Execute one statement and return its rows, if any, as dicts."""
        self._cursor.execute(sql, params or None)
        return self._cursor.fetchall() if self._cursor.description is not None else []


def _lock_key(route: str, target_key: str) -> int:
    """Return a stable signed 64-bit advisory lock key for one route and target."""
    digest = hashlib.blake2b(f"{route}\x00{target_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
