"""PostgreSQL schema migrations; jobs.occurred_at holds the event time normalized to UTC (see _common)."""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE events (
            event_id text PRIMARY KEY,
            source text NOT NULL,
            delivery_id text,
            dedupe_key text NOT NULL,
            event jsonb NOT NULL,
            request_id text,
            mapping_version text,
            received_at double precision NOT NULL,
            CONSTRAINT events_delivery UNIQUE (source, delivery_id)
        )
        """,
        """
        CREATE TABLE jobs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id text NOT NULL REFERENCES events (event_id),
            route text NOT NULL,
            target_key text NOT NULL,
            target jsonb NOT NULL,
            dedupe_key text NOT NULL,
            source text NOT NULL,
            run_id text,
            occurred_at text,
            state text NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at double precision NOT NULL,
            lease_owner text,
            lease_expires_at double precision,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            diagnosis jsonb,
            reason text,
            request_id text,
            mapping_version text,
            CONSTRAINT jobs_dedupe UNIQUE (route, target_key, dedupe_key)
        )
        """,
        "CREATE INDEX jobs_due ON jobs (state, next_attempt_at)",
        "CREATE INDEX jobs_lease ON jobs (state, lease_expires_at)",
        "CREATE INDEX jobs_cooldown ON jobs (route, target_key, created_at)",
        "CREATE INDEX jobs_run ON jobs (route, target_key, source, run_id, occurred_at)",
        "CREATE INDEX jobs_event ON jobs (event_id)",
        """
        CREATE TABLE attempts (
            job_id bigint NOT NULL REFERENCES jobs (id),
            number integer NOT NULL,
            started_at double precision NOT NULL,
            duration_ms double precision NOT NULL,
            outcome text NOT NULL,
            status_code integer,
            correlation_id text,
            error_code text,
            message text,
            PRIMARY KEY (job_id, number)
        )
        """,
    ),
    # 2: a replay grants a fresh retry budget; attempts made before the last replay do not count against it.
    ("ALTER TABLE jobs ADD COLUMN replayed_attempts integer NOT NULL DEFAULT 0",),
)
