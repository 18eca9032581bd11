"""PostgreSQL for tests: the test database's URL (skip locally, fail on CI) and a fresh schema per test.

Use the fixtures with `from tests.helpers.postgres import postgres_schema_url, postgres_url  # noqa: F401`,
or the plain functions `reachable_postgres_url()` and `fresh_schema(url)` outside of fixtures.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

POSTGRES_ENV = "PIPEDIAL_TEST_POSTGRES_URL"
UNREACHABLE = "PostgreSQL not reachable: set PIPEDIAL_TEST_POSTGRES_URL (scripts/start-postgres prints it)"


def reachable_postgres_url() -> str:
    """Return the test database's URL; skip when it is unreachable, but fail on CI so it never skips silently."""
    url = os.environ.get(POSTGRES_ENV, "")
    problem = "" if url else f"{POSTGRES_ENV} is not set"
    if url:
        try:
            psycopg.connect(url, connect_timeout=3).close()
        except psycopg.Error as exc:
            problem = "cannot connect: " + " ".join(str(exc).split())
    if problem and os.environ.get("CI") == "true":
        pytest.fail(f"{UNREACHABLE} ({problem}); CI=true, so PostgreSQL tests must not be skipped")
    if problem:
        pytest.skip(f"{UNREACHABLE} ({problem})")
    return url


def with_options(url: str, options: str) -> str:
    """Return url with a libpq `options` parameter (already percent-encoded, e.g. -csearch_path%3Ds)."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={options}"


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """Create a new, empty schema; yield a URL whose search_path is that schema; drop it afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
    try:
        yield with_options(url, f"-csearch_path%3D{schema}")
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test database's URL; skip when it is unreachable, but fail on CI so it never skips silently."""
    return reachable_postgres_url()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose search_path is a new, empty schema, dropped after the test."""
    with fresh_schema(postgres_url) as url:
        yield url
