"""Intake first: while a process's request threads are all busy, its delivery threads hold back.

Acknowledging a webhook is the part with a deadline (HCP Terraform gives up after 10 s and never
retries); delivery works from the durable outbox and can wait. In one process the request threads
and the delivery threads share one GIL and the cores, so under a flood of webhooks every delivery
slows every answer. The gate counts the requests in flight (a WSGI middleware). When all request
threads were busy at once within the last `quiet` seconds, intake is saturated, and a delivery thread
waits before it claims jobs or starts a call. At ordinary rates that moment never comes and delivery
never waits. Under a flood each delivery thread still starts a call at least every `max_defer`
seconds, so delivery never stops, and the backlog goes out as soon as the flood ebbs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

#: Longest a delivery thread waits for intake to calm down before it starts a call anyway, in seconds.
MAX_DEFER_SECONDS = 0.5
#: How long after the last moment with every request thread busy intake still counts as saturated.
QUIET_SECONDS = 0.01

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class IntakeFirst:
    """Count requests in flight; let delivery threads wait while intake is saturated."""

    def __init__(self, threads: int, *, max_defer: float = MAX_DEFER_SECONDS, quiet: float = QUIET_SECONDS) -> None:
        self.threads = max(1, threads)
        self.max_defer = max_defer
        self.quiet = quiet
        self._in_flight = 0
        self._full_at = float("-inf")  # the last moment every request thread was busy
        self._cond = threading.Condition(threading.Lock())

    @property
    def in_flight(self) -> int:
        """Return how many requests this process is answering now."""
        return self._in_flight

    def saturated(self, now: float | None = None) -> bool:
        """Return whether every request thread was busy within the last `quiet` seconds."""
        now = time.monotonic() if now is None else now
        return self._in_flight >= self.threads or now - self._full_at < self.quiet

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """Return a WSGI app that counts its requests in flight around `app`."""

        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            with self._cond:
                self._in_flight += 1
                if self._in_flight >= self.threads:
                    self._full_at = time.monotonic()
            try:
                return app(environ, start_response)
            finally:
                with self._cond:
                    if self._in_flight >= self.threads:  # no longer full: waiters now wait for the quiet time
                        self._full_at = time.monotonic()
                        self._cond.notify_all()
                    self._in_flight -= 1

        return counted

    def wait(self, stopping: threading.Event | None = None) -> bool:
        """Wait while intake is saturated, at most `max_defer` seconds; return whether it calmed down."""
        deadline = time.monotonic() + self.max_defer
        with self._cond:
            while True:
                now = time.monotonic()
                if not self.saturated(now):
                    return True
                if now >= deadline or (stopping is not None and stopping.is_set()):
                    return False
                calm_at = self._full_at + self.quiet if self._in_flight < self.threads else deadline
                self._cond.wait(max(0.0, min(deadline, calm_at) - now))
