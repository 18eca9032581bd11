"""Prometheus metrics: one registry per app, multiprocess-aware under gunicorn."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class Metrics:
    """The receiver's metrics, registered on one registry."""

    registry: CollectorRegistry
    received: Counter
    rejected: Counter
    outcomes: Counter
    ack_seconds: Histogram
    delivery_seconds: Histogram
    platform_responses: Counter
    jobs: Gauge
    oldest_pending_seconds: Gauge

    def render(self) -> tuple[bytes, str]:
        """Return the exposition text and its content type (merging processes under gunicorn)."""
        if _multiproc_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _multiproc_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def create_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Create the metrics on a fresh registry (one per app, so tests don't share counters)."""
    reg = registry if registry is not None else CollectorRegistry()
    live: Literal["livemax", "all"] = "livemax" if _multiproc_dir() else "all"
    return Metrics(
        registry=reg,
        received=Counter("pipedial_webhooks_received_total", "Webhooks received", ["source"], registry=reg),
        rejected=Counter(
            "pipedial_webhooks_rejected_total", "Webhooks rejected", ["source", "reason"], registry=reg
        ),
        outcomes=Counter(
            "pipedial_webhooks_outcome_total",
            "Webhooks by outcome (accepted, duplicate, ignored)",
            ["source", "outcome"],
            registry=reg,
        ),
        ack_seconds=Histogram(
            "pipedial_ack_seconds", "Time to acknowledge a webhook", ["source"], buckets=_ACK_BUCKETS, registry=reg
        ),
        delivery_seconds=Histogram(
            "pipedial_delivery_seconds",
            "From acceptance to the platform's answer for delivered jobs",
            ["action"],
            buckets=_DELIVERY_BUCKETS,
            registry=reg,
        ),
        platform_responses=Counter(
            "pipedial_platform_responses_total",
            "Platform responses by action and status",
            ["action", "status"],
            registry=reg,
        ),
        jobs=Gauge(
            "pipedial_outbox_jobs", "Outbox jobs by state", ["state"], registry=reg, multiprocess_mode=live
        ),
        oldest_pending_seconds=Gauge(
            "pipedial_outbox_oldest_pending_seconds",
            "Age of the oldest pending job",
            registry=reg,
            multiprocess_mode=live,
        ),
    )
