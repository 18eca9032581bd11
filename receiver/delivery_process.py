"""`receiver serve`'s embedded delivery: a child process per gunicorn worker, at a lower CPU priority.

Delivery threads inside a gunicorn worker share its GIL with the request threads: every platform
call (about 2 ms of Python in `requests`, the outbox and the audit log) delays the webhooks arriving
meanwhile (docs/BENCHMARKS.md, section 8). So each worker starts its dispatcher in a child process
instead (`python -m receiver.delivery_process`, the same Dispatcher with the same settings, read from
the same environment) and writes to the child's stdin: WAKE after every enqueue, HOLD while its
intake is saturated (receiver.priority: the child's delivery threads then hold back, as they did in
the worker). The child also runs NICENESS steps below the worker, so that when the CPU is short the
kernel gives it to intake first.

The child stops, finishing the calls in flight and giving back the jobs it claimed, on SIGTERM or
SIGINT or when its stdin closes: the worker stopped it, or died (even by SIGKILL). If the child
dies, the worker starts a new one; jobs it held come back when their leases expire.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

log = logging.getLogger("receiver.deliver")

#: How much lower the delivery process's CPU priority is than its worker's (nice(2) steps).
NICENESS = 10
#: Seconds before restarting a child that died, doubled after each quick death up to RESTART_MAX.
RESTART_FIRST = 1.0
RESTART_MAX = 30.0
#: A child that ran this long before dying resets the restart delay.
RESTART_RESET_AFTER = 60.0
#: How long stop() waits, beyond the time given for the calls in flight, for the child to exit.
EXIT_SECONDS = 3.0
#: What the worker writes to the child: look for due jobs now; intake is saturated, hold back.
WAKE = b"w"
HOLD = b"h"


class DeliveryProcess:
    """The worker side: start the child, wake it, restart it if it dies, stop it."""

    def __init__(self, command: list[str] | None = None) -> None:
        self.command = command or [sys.executable, "-m", "receiver.delivery_process"]
        self._lock = threading.Lock()  # guards _proc and _stdin against wake() racing a restart or stop
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdin: IO[bytes] | None = None
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The running child's process id, if any."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> DeliveryProcess:
        """Start the child and the thread that restarts it; return self."""
        self._spawn()
        self._monitor = threading.Thread(target=self._watch, name="pipedial-delivery-monitor", daemon=True)
        self._monitor.start()
        return self

    def wake(self) -> None:
        """Make the child look for due jobs now; never blocks (a full pipe already holds a wake)."""
        self._send(WAKE)

    def hold(self) -> None:
        """Tell the child that intake is saturated: its delivery threads hold back for a moment."""
        self._send(HOLD)

    def _send(self, message: bytes) -> None:
        with self._lock:
            if self._stdin is None:
                return
            try:
                os.write(self._stdin.fileno(), message)
            except BlockingIOError:  # a full pipe: the child has plenty to read already
                pass
            except OSError:  # the child is gone: the monitor starts a new one, which looks for due jobs
                pass

    def stop(self, timeout: float = 30.0) -> bool:
        """Close the child's stdin and wait for it to exit; kill it after `timeout` + EXIT_SECONDS.

        The child gives its calls in flight up to its RECEIVER_LEASE_SECONDS, which is what the
        worker passes as `timeout`, and gives back the jobs it claimed but has not started.
        """
        self._stopping.set()
        with self._lock:
            proc, stdin, self._stdin = self._proc, self._stdin, None
        if stdin is not None:
            stdin.close()
        clean = True
        if proc is not None:
            try:
                proc.wait(timeout + EXIT_SECONDS)
            except subprocess.TimeoutExpired:
                clean = False
                proc.kill()
                proc.wait()
            clean = clean and proc.returncode == 0
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(5.0)
        log.info("delivery process stopped", extra={"pid": proc.pid if proc else None, "clean": clean})
        return clean

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():  # stop() came first: no child to outlive it
                return
            proc = subprocess.Popen(self.command, stdin=subprocess.PIPE)  # noqa: S603 - our own module
            assert proc.stdin is not None
            os.set_blocking(proc.stdin.fileno(), False)
            self._proc, self._stdin = proc, proc.stdin
        log.info("delivery process started", extra={"pid": proc.pid, "niceness": NICENESS})

    def _watch(self) -> None:
        """Restart the child whenever it exits on its own, with a growing delay if it keeps dying."""
        delay = RESTART_FIRST
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            started = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > RESTART_RESET_AFTER:
                delay = RESTART_FIRST
            log.error("delivery process exited; starting a new one",
                      extra={"pid": proc.pid, "returncode": code, "restart_in_seconds": delay})
            with self._lock:
                if self._stdin is not None:
                    self._stdin.close()
                    self._stdin = None
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, RESTART_MAX)
            try:
                self._spawn()
            except OSError as exc:  # the old child stays in _proc: its wait() returns at once, and we retry
                log.error("delivery process could not start", extra={"error": repr(exc)})


def main() -> int:
    """The child: deliver until SIGTERM, SIGINT or the end of stdin; act on each WAKE and HOLD read."""
    from .config import Settings
    from .deliver import Dispatcher, owner_id
    from .logs import configure_logging
    from .metrics import create_metrics
    from .outbox import open_outbox
    from .platform import PlatformClient
    from .priority import HeldIntake

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    os.nice(NICENESS)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    outbox = open_outbox(settings.database_url)
    intake = HeldIntake()
    dispatcher = Dispatcher(outbox, PlatformClient(settings), settings, owner=owner_id(), metrics=create_metrics(),
                            intake=intake)
    threading.Thread(target=_read_stdin, args=(dispatcher.wake, intake.hold, stop), name="pipedial-stdin",
                     daemon=True).start()
    dispatcher.start()
    try:
        while not stop.wait(1.0):
            if not dispatcher.alive:
                log.error("delivery threads died; stopping the delivery process", extra={"owner": dispatcher.owner})
                return 1
        return 0
    finally:
        dispatcher.stop(timeout=settings.lease_seconds)
        outbox.close()
        _forget_metrics()


def _read_stdin(wake: Callable[[], None], hold: Callable[[], None], stop: threading.Event) -> None:
    """Act on what the worker writes; the end of stdin means the worker stopped us or is gone."""
    while True:
        try:
            data = os.read(0, 4096)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            stop.set()
            return
        if HOLD in data:
            hold()
        if WAKE in data:
            wake()


def _forget_metrics() -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    sys.exit(main())
