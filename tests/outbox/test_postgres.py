"""PostgreSQL specifics: URLs, the pool, and the schema in the database."""

from __future__ import annotations

import time

import psycopg
import pytest

from receiver.errors import ConfigError, OutboxUnavailableError
from receiver.outbox import open_outbox
from receiver.outbox.migrations.postgres import MIGRATIONS
from receiver.outbox.postgres import PostgresOutbox

pytestmark = pytest.mark.postgres


def test_invalid_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PostgreSQL URL"):
        PostgresOutbox("postgresql://host/db?nonsense=1")


def test_open_outbox_migrates_the_schema(postgres_schema_url: str) -> None:
    box = open_outbox(postgres_schema_url)
    try:
        assert isinstance(box, PostgresOutbox)
        box.ping()
    finally:
        box.close()
    with psycopg.connect(postgres_schema_url) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        versions = conn.execute("SELECT version FROM schema_version").fetchall()
    assert tables == {"schema_version", "events", "jobs", "attempts"}
    assert versions == [(n,) for n in range(1, len(MIGRATIONS) + 1)]


def test_unreachable_server_fails_within_the_timeout() -> None:
    box = PostgresOutbox("postgresql://pipedial:pipedial@127.0.0.1:1/pipedial_test", timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(OutboxUnavailableError, match="PostgreSQL outbox is unavailable"):
            box.counts()
    finally:
        box.close()
    assert time.monotonic() - started < 3


def test_wrong_password_is_unavailable_not_a_crash(postgres_url: str) -> None:
    box = PostgresOutbox(psycopg.conninfo.make_conninfo(postgres_url, password="wrong"), timeout=0.5)
    try:
        with pytest.raises(OutboxUnavailableError):
            box.ping()
    finally:
        box.close()


def test_only_writes_that_are_not_durable_skip_the_wait_for_the_wal_flush(postgres_schema_url: str) -> None:
    box = open_outbox(postgres_schema_url)
    assert isinstance(box, PostgresOutbox)
    try:
        levels = {}
        for write, durable in ((True, True), (True, False), (False, True)):
            with box._transaction(write=write, durable=durable) as tx:
                levels[(write, durable)] = tx.rows("SHOW synchronous_commit")[0]["synchronous_commit"]
        with box._transaction(write=True) as tx:  # SET LOCAL ended with its transaction
            after = tx.rows("SHOW synchronous_commit")[0]["synchronous_commit"]
    finally:
        box.close()
    assert levels == {(True, True): "on", (True, False): "off", (False, True): "on"}
    assert after == "on"
