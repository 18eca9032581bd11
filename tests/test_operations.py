"""Operating the receiver: /metrics across gunicorn workers, /readyz and intake while the outbox is down, SIGTERM.

- /metrics under gunicorn with two workers: every counter and histogram is the sum over the workers
  (each writes its own file; whichever answers the scrape merges them), rejections carry a bounded
  source label, and the outbox gauges are what the store holds now (not a stale worker's reading).
- /readyz answers 503 while the PostgreSQL outbox is unreachable, intake answers 503 then (never a 2xx
  without a durable write), and both recover by themselves once it is back. The database is cut off
  with a TCP proxy between the receiver and PostgreSQL: the shared server stays up for everyone else.
- SIGTERM while calls are in flight: each in-flight call finishes and is recorded, jobs claimed but
  not started are given back without counting an attempt; nothing stays in_flight with a dead owner,
  and a restarted receiver delivers the rest: one call per state change overall.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from receiver.sandbox.server import SandboxServer
from tests.helpers.postgres import postgres_schema_url, postgres_url  # noqa: F401
from tests.helpers.receiver import REPO, ReceiverProcess, free_port, hcp_headers, hcp_run_body, wait_for
from tests.helpers.sandbox import journal, sandbox_config

pytestmark = pytest.mark.slow

ROUTE = {
    "name": "page-oncall",
    "match": {"source": "hcp-terraform", "state": ["failed"]},
    "target": {"action": "trigger", "contact_list_id": "cl-oncall", "division_id": "div-ops"},
}
UNPACED = {"RECEIVER_RATE_LIMIT_PER_MINUTE": "1000000"}


@pytest.fixture(name="platform")
def _platform() -> Iterator[SandboxServer]:
    with SandboxServer(sandbox_config()) as server:
        patch(server, rate_limit_per_minute=1_000_000)
        yield server


@pytest.fixture(name="mapping")
def _mapping(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"version": 1, "routes": [ROUTE]}))
    return path


def patch(platform: SandboxServer, **state: Any) -> None:
    requests.patch(f"{platform.url}/sandbox/state", json=state, timeout=5).raise_for_status()



def outbox_jobs(receiver: ReceiverProcess) -> list[dict[str, Any]]:
    """Return every job as `receiver outbox list --json` prints it (the operator's view)."""
    done = subprocess.run([sys.executable, "-m", "receiver", "outbox", "list", "--json", "--limit", "10000"],
                          cwd=REPO, env=receiver.env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    jobs: list[dict[str, Any]] = json.loads(done.stdout)
    return jobs


def post(receiver: ReceiverProcess, body: bytes, headers: dict[str, str], source: str = "hcp-terraform") -> int:
    # A new connection per request, so that the kernel spreads them over both workers.
    return requests.post(f"{receiver.url}/hooks/{source}", data=body, headers={**headers, "Connection": "close"},
                         timeout=15).status_code


# --- /metrics under gunicorn with two workers


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(receiver: ReceiverProcess) -> Samples:
    answer = requests.get(f"{receiver.url}/metrics", headers={"Connection": "close"}, timeout=10)
    assert answer.status_code == 200
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def received_per_process(metrics_dir: Path) -> dict[str, float]:
    """Return pipedial_webhooks_received_total as each worker process wrote it to its own file."""
    totals: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
        totals[path.stem] = sum(v for key, v, *_ in values if json.loads(key)[1] == "pipedial_webhooks_received_total")
    return totals


def test_metrics_are_summed_over_both_workers_and_gauges_are_current(
    tmp_path: Path, platform: SandboxServer, mapping: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # An earlier run's counters in the same directory must not be added to this run's.
    subprocess.run([sys.executable, "-c", "from prometheus_client import Counter; Counter('pipedial_webhooks_received',"
                    " 'x', ['source']).labels('hcp-terraform').inc(1000)"],
                   env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, check=True, timeout=30)
    patch(platform, faults={"error_rate": 1.0})  # every call fails: jobs wait in the outbox, retrying
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping, workers=2,
                               env={**UNPACED, "RECEIVER_MAX_ATTEMPTS": "100"})
    receiver.env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    receiver.start()
    sent: Counter[str] = Counter()
    answers: Counter[tuple[str, int]] = Counter()
    try:
        def one_round(n: int) -> None:
            firsts = [hcp_run_body(f"run-{n}-{i}") for i in range(8)]
            calls: list[tuple[str, bytes, dict[str, str], str]] = [
                *[("accepted", b, hcp_headers(b), "hcp-terraform") for b in firsts],
                *[("duplicate", b, hcp_headers(b), "hcp-terraform") for b in firsts[:2]],
                *[("ignored", b, hcp_headers(b), "hcp-terraform")
                  for b in [hcp_run_body(f"run-{n}-ok", trigger="run:completed", status="applied")]],
                ("bad_signature", firsts[0], hcp_headers(firsts[0], secret="not-the-secret"), "hcp-terraform"),
                ("invalid_payload", b"{}", hcp_headers(b"{}"), "hcp-terraform"),
                ("unknown_source", b"{}", hcp_headers(b"{}"), f"no-such-source-{n}"),
            ]
            with ThreadPoolExecutor(max_workers=8) as pool:  # the duplicates go after their first deliveries
                statuses = list(pool.map(lambda c: post(receiver, c[1], c[2], c[3]), calls[:8]))
                statuses += list(pool.map(lambda c: post(receiver, c[1], c[2], c[3]), calls[8:]))
            for (kind, *_), status in zip(calls, statuses, strict=True):
                sent[kind] += 1
                answers[kind, status] += 1

        for n in range(10):  # until both workers have taken webhooks (usually the first round)
            one_round(n)
            if len([v for v in received_per_process(metrics_dir).values() if v > 0]) >= 2:
                break
        assert set(answers) == {("accepted", 202), ("duplicate", 200), ("ignored", 200), ("bad_signature", 401),
                                ("invalid_payload", 400), ("unknown_source", 404)}, answers
        accepted = sent["accepted"]
        hcp_total = sum(n for kind, n in sent.items() if kind != "unknown_source")

        # While every call fails: jobs are pending (or in flight), the oldest pending one ages.
        wait_for(lambda: value(scrape(receiver), "pipedial_platform_responses_total", action="trigger",
                               status="503") >= accepted, timeout=20)
        oldest = []
        for _ in range(8):
            samples = scrape(receiver)
            waiting = sum(value(samples, "pipedial_outbox_jobs", state=s) for s in ("pending", "in_flight"))
            assert (waiting, value(samples, "pipedial_outbox_jobs", state="delivered")) == (accepted, 0)
            oldest.append(value(samples, "pipedial_outbox_oldest_pending_seconds"))
            time.sleep(0.15)
        assert max(oldest) > 0

        # Then the platform recovers, after one 429: everything is delivered.
        requests.post(f"{platform.url}/sandbox/script", timeout=5, json={
            "method": "POST", "path": "/trigger$", "responses": [{"status": 429, "headers": {"Retry-After": "1"}}]})
        patch(platform, faults={"error_rate": 0.0})
        wait_for(lambda: len(journal(platform)) >= accepted, timeout=30)
        wait_for(lambda: all(job["state"] == "delivered" for job in outbox_jobs(receiver)), timeout=15)
        time.sleep(1.1)  # each worker reads the store at most once a second
        for _ in range(6):  # whichever worker answers: the store as it is now, not as some worker last saw it
            samples = scrape(receiver)
            states = {s: value(samples, "pipedial_outbox_jobs", state=s) for s in ("pending", "in_flight", "delivered",
                                                                                   "dead")}
            assert states == {"pending": 0, "in_flight": 0, "delivered": accepted, "dead": 0}
            assert value(samples, "pipedial_outbox_oldest_pending_seconds") == 0
    finally:
        receiver.stop()

    per_process = received_per_process(metrics_dir)
    assert len([v for v in per_process.values() if v > 0]) >= 2, per_process  # both workers counted some
    assert sum(per_process.values()) == hcp_total  # ... and the stale file of the earlier run is gone
    m = samples
    assert value(m, "pipedial_webhooks_received_total", source="hcp-terraform") == hcp_total
    for reason in ("bad_signature", "invalid_payload"):
        assert value(m, "pipedial_webhooks_rejected_total", source="hcp-terraform", reason=reason) == sent[reason]
    assert value(m, "pipedial_webhooks_rejected_total", source="unknown", reason="unknown_source") \
        == sent["unknown_source"]
    assert not [key for key in m if ("source", "no-such-source-0") in key[1]]  # no label per URL tried
    for outcome in ("accepted", "duplicate", "ignored"):
        assert value(m, "pipedial_webhooks_outcome_total", source="hcp-terraform", outcome=outcome) == sent[outcome]
    acked = sent["accepted"] + sent["duplicate"] + sent["ignored"]
    assert value(m, "pipedial_ack_seconds_count", source="hcp-terraform") == acked
    assert value(m, "pipedial_ack_seconds_bucket", source="hcp-terraform", le="+Inf") == acked
    assert value(m, "pipedial_delivery_seconds_count", action="trigger") == accepted
    assert value(m, "pipedial_delivery_seconds_bucket", action="trigger", le="+Inf") == accepted
    assert value(m, "pipedial_platform_responses_total", action="trigger", status="202") == accepted
    assert value(m, "pipedial_platform_responses_total", action="trigger", status="429") == 1
    assert value(m, "pipedial_platform_responses_total", action="trigger", status="503") >= accepted


# --- /readyz and intake while PostgreSQL is unreachable


class TcpProxy:
    """Forward 127.0.0.1:port to a target; cut() refuses new connections and breaks the open ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.05)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            for step in (lambda s: s.shutdown(socket.SHUT_RDWR), lambda s: s.close()):
                try:
                    step(sock)
                except OSError:
                    pass

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def via(url: str, port: int) -> str:
    """Return the PostgreSQL URL with its host and port replaced by 127.0.0.1:port."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"))


@pytest.mark.postgres
def test_readyz_and_intake_answer_503_while_postgres_is_unreachable_then_recover(
    tmp_path: Path, platform: SandboxServer, mapping: Path, postgres_schema_url: str  # noqa: F811
) -> None:
    parts = urlsplit(postgres_schema_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432)).start()
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping,
                               database_url=via(postgres_schema_url, proxy.port), env=UNPACED).start()
    try:
        before = hcp_run_body("run-before")
        assert post(receiver, before, hcp_headers(before)) == 202
        wait_for(lambda: len(journal(platform)) == 1)
        # Cut only once the call is recorded: a cut between the platform's answer and the record is
        # the "could not record" ambiguity, and the job is (rightly) delivered again after recovery.
        wait_for(lambda: [job["state"] for job in outbox_jobs(receiver)] == ["delivered"])

        proxy.cut()
        started = time.monotonic()
        ready = wait_for(lambda: [r for r in [requests.get(f"{receiver.url}/readyz", timeout=10)]
                                  if r.status_code == 503], timeout=15)[0]  # (a Response is falsy when not ok)
        assert ready.json()["status"] == "unavailable" and "PostgreSQL outbox is unavailable" in ready.json()["outbox"]
        during = hcp_run_body("run-during")
        with ThreadPoolExecutor(2) as pool:  # each waits for a connection as long as the pool allows
            scraping = pool.submit(scrape, receiver)
            answer = requests.post(f"{receiver.url}/hooks/hcp-terraform", data=during, headers=hcp_headers(during),
                                   timeout=15)
            samples = scraping.result()
        # The counters are there; the outbox gauges are absent, not stale numbers from before the outage.
        assert value(samples, "pipedial_webhooks_received_total", source="hcp-terraform") >= 1
        assert not [key for key in samples if key[0].startswith("pipedial_outbox_")]
        assert answer.status_code == 503
        assert answer.json()["error"] == "outbox_unavailable"
        assert requests.get(f"{receiver.url}/healthz", timeout=5).status_code == 200  # alive: do not restart it
        outage = time.monotonic() - started

        proxy.start()
        restored = time.monotonic()
        wait_for(lambda: requests.get(f"{receiver.url}/readyz", timeout=10).status_code == 200, timeout=20)
        recovered_in = time.monotonic() - restored
        after = hcp_run_body("run-after")
        assert post(receiver, after, hcp_headers(after)) == 202
        wait_for(lambda: len(journal(platform)) == 2, timeout=15)  # the dispatcher survived the outage too
        assert post(receiver, during, hcp_headers(during)) == 202  # the sender's retry of the refused one
        wait_for(lambda: len(journal(platform)) == 3, timeout=15)
        time.sleep(1.0)  # the gauges are read at most once a second
        assert value(scrape(receiver), "pipedial_outbox_jobs", state="delivered") == 3
    finally:
        receiver.stop()
        proxy.cut()
    runs = Counter(entry["body"]["runId"] for entry in journal(platform))
    assert runs == {"run-before": 1, "run-during": 1, "run-after": 1}
    lines = receiver.log_lines()
    refused = [line for line in lines if line.get("outcome") == "rejected" and line.get("status_code") == 503]
    assert refused and refused[0]["error"] == "outbox_unavailable"
    print(f"outage {outage:.1f}s; ready again {recovered_in:.1f}s after PostgreSQL came back")


# --- the delivery process


def children(pid: int) -> list[int]:
    """The processes whose parent is pid (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_each_worker_delivers_through_a_child_process_that_is_replaced_when_killed(
    tmp_path: Path, platform: SandboxServer, mapping: Path
) -> None:
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping, env=UNPACED).start()
    assert receiver.proc is not None
    try:
        (worker,) = wait_for(lambda: children(receiver.proc.pid) or None)
        (first,) = wait_for(lambda: children(worker) or None)  # python -m receiver.delivery_process
        assert "receiver.delivery_process" in Path(f"/proc/{first}/cmdline").read_text()
        body = hcp_run_body("run-before-kill")
        assert post(receiver, body, hcp_headers(body)) == 202
        wait_for(lambda: len(journal(platform)) == 1)
        os.kill(first, signal.SIGKILL)
        (second,) = wait_for(lambda: [pid for pid in children(worker) if pid != first] or None, timeout=15)
        body = hcp_run_body("run-after-kill")
        assert post(receiver, body, hcp_headers(body)) == 202
        wait_for(lambda: len(journal(platform)) == 2)
    finally:
        assert receiver.stop() == 0
    assert not Path(f"/proc/{second}").exists() or "\nState:\tZ" in Path(f"/proc/{second}/status").read_text()
    lines = receiver.log_lines()
    died = [line for line in lines if line.get("message") == "delivery process exited; starting a new one"]
    assert len(died) == 1 and died[0]["pid"] == first and died[0]["returncode"] == -9
    assert sum(line.get("message") == "delivery process stopped" and line.get("clean") for line in lines) == 1


# --- graceful shutdown


def test_sigterm_finishes_in_flight_calls_and_gives_back_claimed_jobs(
    tmp_path: Path, platform: SandboxServer, mapping: Path
) -> None:
    patch(platform, faults={"latency_ms": 1500})
    env = {**UNPACED, "RECEIVER_LEASE_SECONDS": "30"}
    receiver = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping, workers=2, env=env).start()
    runs = [f"run-stop-{i}" for i in range(12)]
    try:
        # Each worker's delivery process starts after the worker is ready: wait for both.
        wait_for(lambda: sum(line.get("message") == "dispatcher started" for line in receiver.log_lines()) == 2)
        for run in runs:
            body = hcp_run_body(run)
            assert post(receiver, body, hcp_headers(body)) == 202
        # Both dispatchers (four threads each) have claimed batches and are waiting on the slow platform.
        wait_for(lambda: sum(job["state"] == "in_flight" for job in outbox_jobs(receiver)) >= 6, timeout=10)
        time.sleep(0.3)  # the calls are on the wire
    finally:
        stopping = time.monotonic()
        code = receiver.stop(timeout=30)
        stop_seconds = time.monotonic() - stopping
    assert code == 0, receiver.output()[-3000:]
    jobs = outbox_jobs(receiver)
    called = Counter(entry["body"]["runId"] for entry in journal(platform))
    by_state = Counter(job["state"] for job in jobs)
    assert by_state["in_flight"] == 0, jobs  # nothing left leased to a process that is gone
    assert set(by_state) <= {"delivered", "pending"} and sum(by_state.values()) == len(runs)
    assert by_state["delivered"] >= 4  # at least the calls in flight at the SIGTERM finished
    for job in jobs:
        if job["state"] == "delivered":
            assert job["attempts"] == 1
        else:  # given back unstarted: no attempt counted, no owner, due now
            assert (job["attempts"], job["lease_owner"], job["lease_expires_at"]) == (0, None, None)
    delivered = {job["event"]["run_id"] for job in jobs if job["state"] == "delivered"}
    assert set(called) == delivered and all(n == 1 for n in called.values())  # no call without its record
    lines = receiver.log_lines()
    stopped = [line for line in lines if line.get("message") == "dispatcher stopped"]
    assert len(stopped) == 2 and all(line["clean"] for line in stopped)

    # A restarted receiver delivers the rest: one call per state change in all.
    patch(platform, faults={"latency_ms": 0})
    again = ReceiverProcess(tmp_path, sandbox_url=platform.url, mapping=mapping, env=env, port=receiver.port).start()
    try:
        wait_for(lambda: len(journal(platform)) >= len(runs), timeout=20)
        time.sleep(0.5)
    finally:
        again.stop()
    assert Counter(entry["body"]["runId"] for entry in journal(platform)) == dict.fromkeys(runs, 1)
    assert {job["state"] for job in outbox_jobs(again)} == {"delivered"}
    print(f"stopped in {stop_seconds:.1f}s with {by_state['delivered']} delivered, {by_state['pending']} given back")
