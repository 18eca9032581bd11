"""Load generators for the bench: signed HCP Terraform deliveries, an open-loop fixed-rate sender, a bulk sender.

The open-loop sender schedules request i at t0 + i/rate whatever happened before, hands it to a pool of
keep-alive connections, and measures each latency from the *scheduled* send time, so a slow answer
delays nothing it should not and queueing shows up in the numbers (no coordinated omission).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HOOK_PATH = "/hooks/hcp-terraform"


@dataclass(frozen=True)
class Delivery:
    """One signed HCP Terraform notification: a distinct state change of its own run."""

    run_id: str
    body: bytes
    signature: str

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "X-TFE-Notification-Signature": self.signature}


def hcp_body(run_id: str, workspace: str = "prod-network") -> bytes:
    """Return a compact HCP Terraform "run errored" notification (routed to a trigger by examples/mapping.yaml)."""
    payload = {
        "payload_version": 1,
        "notification_configuration_id": "nc-bench",
        "run_url": f"https://app.terraform.io/app/acme/{workspace}/runs/{run_id}",
        "run_id": run_id,
        "run_message": "bench: apply failed",
        "run_created_at": "2026-11-21T09:59:00.000Z",
        "run_created_by": "bench-user",
        "workspace_id": "ws-bench",
        "workspace_name": workspace,
        "organization_name": "acme",
        "notifications": [{"message": "Run Errored", "trigger": "run:errored", "run_status": "errored",
                           "run_updated_at": "2026-11-21T10:00:00.000Z", "run_updated_by": "bench-user"}],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def deliveries(prefix: str, count: int, secret: str) -> list[Delivery]:
    """Return `count` signed deliveries with run ids run-<prefix>-<n>."""
    key = secret.encode()
    out = []
    for i in range(count):
        run_id = f"run-{prefix}-{i:07d}"
        body = hcp_body(run_id)
        out.append(Delivery(run_id, body, hmac.new(key, body, hashlib.sha512).hexdigest()))
    return out


def write_pool(path: Path, items: Sequence[Delivery]) -> Path:
    """Write deliveries for intake.lua: "<signature>\\t<body>" per line."""
    with path.open("wb") as f:
        for d in items:
            f.write(d.signature.encode() + b"\t" + d.body + b"\n")
    return path


@dataclass
class Sample:
    """What happened to one request of an open-loop run (perf_counter times, plus wall clock for matching)."""

    run_id: str
    scheduled: float
    sent: float
    done: float
    status: int
    sent_wall: float
    done_wall: float

    @property
    def latency(self) -> float:
        """Seconds from the scheduled send time to the complete answer."""
        return self.done - self.scheduled


def _connect(host: str, port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(host, port, timeout=30)


def _send(conn: http.client.HTTPConnection, d: Delivery) -> tuple[http.client.HTTPConnection, int]:
    """POST one delivery on a keep-alive connection; reconnect once if the server closed it."""
    for attempt in (1, 2):
        try:
            conn.request("POST", HOOK_PATH, body=d.body, headers=d.headers())
            resp = conn.getresponse()
            resp.read()
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
            return conn, resp.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = _connect(conn.host, conn.port)
            if attempt == 2:
                return conn, -1
    return conn, -1


def open_loop(host: str, port: int, items: Sequence[Delivery], rate: float, connections: int = 16) -> list[Sample]:
    """Send items[i] at t0 + i/rate over a pool of keep-alive connections; return one Sample per item."""
    work: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
    samples: list[Sample | None] = [None] * len(items)

    def sender() -> None:
        conn = _connect(host, port)
        while (job := work.get()) is not None:
            i, scheduled = job
            d = items[i]
            sent, sent_wall = time.perf_counter(), time.time()
            conn, status = _send(conn, d)
            samples[i] = Sample(d.run_id, scheduled, sent, time.perf_counter(), status, sent_wall, time.time())
        conn.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    t0 = time.perf_counter() + 0.05
    for i in range(len(items)):
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        work.put((i, at))
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()
    return [s for s in samples if s is not None]


def bulk(host: str, port: int, items: Sequence[Delivery], connections: int = 8) -> dict[int, int]:
    """Send every item as fast as `connections` keep-alive connections allow; return a count per status."""
    work: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
    for d in items:
        work.put(d)
    counts: dict[int, int] = {}
    lock = threading.Lock()

    def sender() -> None:
        conn = _connect(host, port)
        while (d := work.get()) is not None:
            conn, status = _send(conn, d)
            with lock:
                counts[status] = counts.get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(connections)]
    for _ in threads:
        work.put(None)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts
