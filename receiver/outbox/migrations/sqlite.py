"""SQLite schema migrations; jobs.occurred_at holds the event time normalized to UTC (see _common)."""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE events (
            event_id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            delivery_id TEXT,
            dedupe_key TEXT NOT NULL,
            event TEXT NOT NULL,
            request_id TEXT,
            mapping_version TEXT,
            received_at REAL NOT NULL,
            UNIQUE (source, delivery_id)
        )
        """,
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL REFERENCES events (event_id),
            route TEXT NOT NULL,
            target_key TEXT NOT NULL,
            target TEXT NOT NULL,
            dedupe_key TEXT NOT NULL,
            source TEXT NOT NULL,
            run_id TEXT,
            occurred_at TEXT,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            lease_owner TEXT,
            lease_expires_at REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            diagnosis TEXT,
            reason TEXT,
            request_id TEXT,
            mapping_version TEXT,
            UNIQUE (route, target_key, dedupe_key)
        )
        """,
        "CREATE INDEX jobs_due ON jobs (state, next_attempt_at)",
        "CREATE INDEX jobs_lease ON jobs (state, lease_expires_at)",
        "CREATE INDEX jobs_cooldown ON jobs (route, target_key, created_at)",
        "CREATE INDEX jobs_run ON jobs (route, target_key, source, run_id, occurred_at)",
        "CREATE INDEX jobs_event ON jobs (event_id)",
        """
        CREATE TABLE attempts (
            job_id INTEGER NOT NULL REFERENCES jobs (id),
            number INTEGER NOT NULL,
            started_at REAL NOT NULL,
            duration_ms REAL NOT NULL,
            outcome TEXT NOT NULL,
            status_code INTEGER,
            correlation_id TEXT,
            error_code TEXT,
            message TEXT,
            PRIMARY KEY (job_id, number)
        )
        """,
    ),
    # 2: a replay grants a fresh retry budget; attempts made before the last replay do not count against it.
    ("ALTER TABLE jobs ADD COLUMN replayed_attempts INTEGER NOT NULL DEFAULT 0",),
)
