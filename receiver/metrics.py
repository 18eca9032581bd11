"""Prometheus metrics: one registry per app, multiprocess-aware under gunicorn.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by `receiver serve`) the counters and histograms of
every worker are written to shared files and summed at scrape time, whichever worker answers. The
outbox gauges are different: they describe the one shared store, not a process, so they are not
merged across processes (a worker that refreshed them a minute ago would otherwise report its stale
numbers, e.g. as the max of all workers); the worker that answers the scrape reads the store (at
most once a second) and reports what it read.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .model import JOB_STATES

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
    outbox: OutboxGauges

    def render(self) -> tuple[bytes, str]:
        """Return the exposition text and its content type (merging processes under gunicorn)."""
        if _multiproc_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(self.outbox)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class OutboxGauges(Collector):
    """The outbox's jobs by state and oldest pending age, as last read from the store by this process.

    While the store cannot be read the gauges are absent rather than stale: "0 pending" from before an
    outage is not a fact about the outbox now (alert on absent() or on /readyz).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] | None = dict.fromkeys(JOB_STATES, 0)
        self._oldest = 0.0

    def set(self, counts: Mapping[str, int], oldest_pending_seconds: float | None) -> None:
        """Remember what the store said: jobs per state and the oldest pending job's age (None: none)."""
        with self._lock:
            self._counts = {state: int(counts.get(state, 0)) for state in JOB_STATES}
            self._oldest = oldest_pending_seconds or 0.0

    def set_unknown(self) -> None:
        """Forget the last reading: the store could not be read."""
        with self._lock:
            self._counts = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, oldest = self._counts, self._oldest
        if counts is None:
            return
        jobs = GaugeMetricFamily("pipedial_outbox_jobs", "Outbox jobs by state", labels=["state"])
        for state, n in counts.items():
            jobs.add_metric([state], n)
        yield jobs
        yield GaugeMetricFamily("pipedial_outbox_oldest_pending_seconds", "Age of the oldest pending job", value=oldest)


def _multiproc_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def clear_multiproc_dir(path: str) -> None:
    """Remove the metric files of earlier runs (counters would otherwise go on from their totals)."""
    for stale in Path(path).glob("*.db"):
        stale.unlink(missing_ok=True)


def create_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Create the metrics on a fresh registry (one per app, so tests don't share counters)."""
    reg = registry if registry is not None else CollectorRegistry()
    outbox = OutboxGauges()
    reg.register(outbox)
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
        outbox=outbox,
    )
