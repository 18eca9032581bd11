"""The embedded delivery process of `receiver serve` (receiver/delivery_process.py), as real processes.

Each test starts the real child (`python -m receiver.delivery_process`) against a real SQLite outbox
and the sandbox platform over HTTP. The poll interval is 30 s throughout, so a job delivered within
seconds was found because of a wake, not a poll.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from receiver import delivery_process
from receiver.delivery_process import NICENESS, DeliveryProcess
from receiver.model import Event, Target
from receiver.outbox import Outbox, open_outbox
from receiver.priority import LEAD_MAX_DEFER_SECONDS, MAX_DEFER_SECONDS
from receiver.sandbox.server import SandboxServer
from tests.helpers.receiver import wait_for
from tests.helpers.sandbox import CLIENT_ID, CLIENT_SECRET, journal, sandbox  # noqa: F401

EVENT = Event(source="hcp-terraform", kind="run:errored", state="failed", dedupe_key="change-0", delivery_id="d-0",
              organization="acme", workspace="prod-network", run_id="run-1", message="apply failed",
              occurred_at="2023-11-14T22:00:00Z")
TARGET = Target(route="prod-failed", action="trigger", division_id="div-ops", contact_list_id="cl-oncall")


@pytest.fixture(name="outbox")
def _outbox(tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Outbox]:  # noqa: F811
    """A migrated SQLite outbox, and the environment the child reads its settings from."""
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    for name, value in {
        "RECEIVER_DATABASE_URL": url,
        "RECEIVER_MAPPING": str(Path(__file__).resolve().parents[1] / "examples" / "mapping.yaml"),
        "GENESYSCLOUD_API_URL": sandbox.url,
        "GENESYSCLOUD_LOGIN_URL": sandbox.url,
        "GENESYSCLOUD_OAUTHCLIENT_ID": CLIENT_ID,
        "GENESYSCLOUD_OAUTHCLIENT_SECRET": CLIENT_SECRET,
        "RECEIVER_POLL_INTERVAL": "30",
        "RECEIVER_LEASE_SECONDS": "5",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    box = open_outbox(url)
    box.migrate()
    yield box
    box.close()


def put(box: Outbox, n: int) -> None:
    """Store state change n of EVENT for TARGET."""
    event = replace(EVENT, dedupe_key=f"change-{n}", delivery_id=f"d-{n}")
    box.enqueue(event, [TARGET], event_id=f"event-{n}", request_id=None, mapping_version=None, now=time.time())


def delivered(box: Outbox) -> int:
    return box.counts()["delivered"]



def test_a_wake_makes_the_child_deliver_at_once(outbox: Outbox, sandbox: SandboxServer) -> None:  # noqa: F811
    process = DeliveryProcess().start()
    try:
        put(outbox, 1)
        process.wake()
        wait_for(lambda: delivered(outbox) == 1, timeout=20)  # the child's start-up, then its first look
        time.sleep(0.5)  # every delivery thread is asleep now, for up to the 30 s poll interval
        put(outbox, 2)
        woken = time.monotonic()
        process.wake()
        wait_for(lambda: delivered(outbox) == 2, timeout=5)
        assert time.monotonic() - woken < 3
    finally:
        assert process.stop(timeout=10)
    assert len(journal(sandbox)) == 2


def test_without_a_wake_the_child_waits_for_its_poll(outbox: Outbox) -> None:
    process = DeliveryProcess().start()
    try:
        put(outbox, 1)
        process.wake()
        wait_for(lambda: delivered(outbox) == 1, timeout=20)
        time.sleep(0.5)
        put(outbox, 2)
        time.sleep(2.0)
        assert delivered(outbox) == 1  # the wake of the other test is what delivered at once
    finally:
        assert process.stop(timeout=10)


def test_while_its_worker_says_intake_is_saturated_the_child_holds_back_but_delivers(outbox: Outbox) -> None:
    process = DeliveryProcess().start()
    saying = threading.Event()

    def keep_saying_saturated() -> None:  # what the worker's IntakeFirst does under a flood
        while not saying.wait(0.02):
            process.hold()

    speaker = threading.Thread(target=keep_saying_saturated)
    try:
        put(outbox, 0)
        process.wake()
        wait_for(lambda: delivered(outbox) == 1, timeout=20)
        speaker.start()
        time.sleep(0.1)
        for n in range(1, 7):
            put(outbox, n)
        started = time.monotonic()
        process.wake()
        wait_for(lambda: delivered(outbox) == 7, timeout=20)  # held back, never stopped
        held_for = time.monotonic() - started
    finally:
        saying.set()
        if speaker.is_alive():
            speaker.join(5)
        assert process.stop(timeout=10)
    # Unheld, four threads deliver six jobs at once. Held, the first thread waits LEAD_MAX_DEFER_SECONDS
    # before its claim and before each call; the others wait MAX_DEFER_SECONDS before theirs.
    assert held_for >= min(4 * LEAD_MAX_DEFER_SECONDS, MAX_DEFER_SECONDS)


def test_the_child_runs_niceness_steps_below_its_worker(outbox: Outbox) -> None:
    process = DeliveryProcess().start()
    try:
        put(outbox, 1)
        process.wake()
        wait_for(lambda: delivered(outbox) == 1, timeout=20)  # it has set its priority before delivering
        assert process.pid is not None
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == min(19, own + NICENESS)
    finally:
        assert process.stop(timeout=10)


def test_stop_ends_the_child_cleanly(outbox: Outbox) -> None:
    process = DeliveryProcess().start()
    wait_for(lambda: process.pid is not None, timeout=5)
    child = process._proc
    assert process.stop(timeout=10)
    assert child is not None and child.returncode == 0
    assert process.pid is None
    process.wake()  # after stop: nothing to wake, and no error


def test_a_child_that_dies_is_replaced(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery_process, "RESTART_FIRST", 0.2)
    process = DeliveryProcess().start()
    try:
        put(outbox, 1)
        process.wake()
        wait_for(lambda: delivered(outbox) == 1, timeout=20)
        first = process.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: process.pid not in (None, first), timeout=10)
        put(outbox, 2)
        process.wake()
        wait_for(lambda: delivered(outbox) == 2, timeout=20)
    finally:
        assert process.stop(timeout=10)


def test_the_child_stops_when_its_worker_is_killed(outbox: Outbox, tmp_path: Path) -> None:
    worker = subprocess.Popen(  # a stand-in for a gunicorn worker that starts its delivery process
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from receiver.delivery_process import DeliveryProcess
            process = DeliveryProcess().start()
            print(process.pid, flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1],
    )
    assert worker.stdout is not None
    with worker.stdout:
        child = int(worker.stdout.readline())
    put(outbox, 1)
    wait_for(lambda: delivered(outbox) == 1, timeout=20)  # the child is up (its first look found the job)
    worker.kill()  # SIGKILL: no worker_exit, no stop(); only the closed pipe tells the child
    worker.wait()
    wait_for(lambda: not _running(child), timeout=15)


def _running(pid: int) -> bool:
    """Tell whether pid is a live process (a zombie waiting for its reaper has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_child_that_does_not_stop_in_time_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery_process, "EXIT_SECONDS", 0.5)
    stuck = DeliveryProcess([sys.executable, "-c", "import time; time.sleep(60)"]).start()  # ignores its stdin
    wait_for(lambda: stuck.pid is not None, timeout=5)
    child = stuck._proc
    started = time.monotonic()
    assert not stuck.stop(timeout=0.5)
    assert 0.9 <= time.monotonic() - started < 5
    assert child is not None and child.returncode == -signal.SIGKILL
