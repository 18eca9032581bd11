"""Durable outbox: SQLite (embedded default) or PostgreSQL (several instances)."""

from __future__ import annotations

from .base import Outbox


def open_outbox(url: str) -> Outbox:
    """Open (and migrate) the outbox named by RECEIVER_DATABASE_URL."""
    if url.startswith("sqlite:"):
        from .sqlite import SqliteOutbox

        box: Outbox = SqliteOutbox(url)
    elif url.startswith(("postgresql:", "postgres:")):
        from .postgres import PostgresOutbox

        box = PostgresOutbox(url)
    else:
        from ..errors import ConfigError

        raise ConfigError(f"RECEIVER_DATABASE_URL {url!r}: use sqlite:///path or postgresql://...")
    box.migrate()
    return box


__all__ = ["Outbox", "open_outbox"]
