"""Intake first: while a process is swamped with webhooks, its delivery threads hold back.

Acknowledging a webhook is the part with a deadline (HCP Terraform gives up after 10 s and never
retries); delivery works from the durable outbox and can wait. In one process the request threads
and the delivery threads share one GIL and the cores, so under a flood of webhooks every delivery
slows every answer. The gate counts the requests in flight (a WSGI middleware) and keeps a moving
average, over about `tau` seconds, of the share of time at least one was in flight. Above
`threshold` (there is hardly a gap between requests) intake is saturated: a delivery thread then
waits before it claims jobs or starts a call, at most its `max_defer`, so delivery never stops. At
ordinary rates the worker is idle between webhooks, the average stays low and nothing waits; after a
flood it falls below the threshold within about `tau`.

Under `receiver serve` delivery runs in a child process of the worker (receiver.delivery_process):
the worker's IntakeFirst tells the child, at most every NOTIFY_EVERY_SECONDS while saturated (`on_saturated`),
and the child's HeldIntake holds its delivery threads back until HOLD_SECONDS after the last word.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

#: Longest a delivery thread waits for intake to calm down before it starts a call anyway, in seconds.
MAX_DEFER_SECONDS = 0.5
#: The same for a dispatcher's first thread: under any flood it keeps starting calls, several a second.
LEAD_MAX_DEFER_SECONDS = 0.05
#: Time constant of the moving average of "a request in flight", in seconds.
TAU_SECONDS = 0.1
#: Share of recent time with a request in flight above which intake counts as saturated.
THRESHOLD = 0.9
#: How often, at most, a saturated IntakeFirst calls its `on_saturated` (tells its delivery process).
NOTIFY_EVERY_SECONDS = TAU_SECONDS / 2
#: How long a HeldIntake stays saturated after the last word from its worker: two missed words.
HOLD_SECONDS = 2 * NOTIFY_EVERY_SECONDS

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class IntakeGate(Protocol):
    """What a Dispatcher asks before it claims or calls: IntakeFirst, or HeldIntake in a child process."""

    def wait(self, stopping: threading.Event | None = None, max_defer: float | None = None) -> bool:
        """Wait while intake is saturated, at most `max_defer` seconds; return whether it calmed down."""


class IntakeFirst:
    """Count requests in flight; let delivery threads wait while intake is saturated."""

    def __init__(
        self,
        *,
        max_defer: float = MAX_DEFER_SECONDS,
        tau: float = TAU_SECONDS,
        threshold: float = THRESHOLD,
        clock: Callable[[], float] = time.monotonic,
        on_saturated: Callable[[], None] | None = None,
    ) -> None:
        self.max_defer = max_defer
        self.tau = tau
        self.threshold = threshold
        self._clock = clock
        self._on_saturated = on_saturated
        self._notified_at = -math.inf
        self._in_flight = 0
        self._busy_share = 0.0  # moving average of "a request in flight", as of _busy_at
        self._busy_at = clock()
        self._cond = threading.Condition(threading.Lock())

    @property
    def in_flight(self) -> int:
        """Return how many requests this process is answering now."""
        return self._in_flight

    def busy_share(self) -> float:
        """Return the moving average of the share of time a request was in flight."""
        with self._cond:
            return self._share(self._clock())

    def saturated(self) -> bool:
        """Return whether intake is saturated now (the busy share is over the threshold)."""
        return self.busy_share() >= self.threshold

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """Return a WSGI app that counts its requests in flight around `app`."""

        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            with self._cond:
                self._advance(self._clock())
                self._in_flight += 1
            try:
                return app(environ, start_response)
            finally:
                with self._cond:
                    now = self._clock()
                    self._advance(now)
                    self._in_flight -= 1
                    if not self._in_flight:  # idle: waiters re-plan
                        self._cond.notify_all()
                    notify = (self._on_saturated is not None and self._busy_share >= self.threshold
                              and now - self._notified_at >= NOTIFY_EVERY_SECONDS)
                    if notify:
                        self._notified_at = now
                if notify and self._on_saturated is not None:
                    self._on_saturated()

        return counted

    def wait(self, stopping: threading.Event | None = None, max_defer: float | None = None) -> bool:
        """Wait while intake is saturated, at most `max_defer` seconds; return whether it calmed down."""
        deadline = self._clock() + (self.max_defer if max_defer is None else max_defer)
        with self._cond:
            while True:
                now = self._clock()
                share = self._share(now)
                if share < self.threshold:
                    return True
                if now >= deadline or (stopping is not None and stopping.is_set()):
                    return False
                calm_at = deadline
                if not self._in_flight:  # the share only decays now: it is below the threshold then
                    calm_at = min(deadline, now + self.tau * math.log(share / self.threshold) + 1e-4)
                self._cond.wait(max(0.0, calm_at - now))

    def _share(self, now: float) -> float:
        """Return the busy share at `now` (lock held), without storing it."""
        decay = math.exp(-max(0.0, now - self._busy_at) / self.tau)
        busy = 1.0 if self._in_flight else 0.0
        return self._busy_share * decay + busy * (1.0 - decay)

    def _advance(self, now: float) -> None:
        """Bring the busy share up to `now` before the number in flight changes (lock held)."""
        self._busy_share = self._share(now)
        self._busy_at = now


class HeldIntake:
    """Intake first in a delivery process: saturated until HOLD_SECONDS after the worker last said so."""

    def __init__(
        self, *, max_defer: float = MAX_DEFER_SECONDS, hold: float = HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_defer = max_defer
        self.hold_seconds = hold
        self._clock = clock
        self._held_until = -math.inf
        self._cond = threading.Condition(threading.Lock())

    def hold(self) -> None:
        """The worker's intake is saturated now."""
        with self._cond:
            self._held_until = self._clock() + self.hold_seconds

    def saturated(self) -> bool:
        """Return whether the worker said "saturated" less than HOLD_SECONDS ago."""
        with self._cond:
            return self._clock() < self._held_until

    def wait(self, stopping: threading.Event | None = None, max_defer: float | None = None) -> bool:
        """Wait while held, at most `max_defer` seconds; return whether the hold ran out."""
        deadline = self._clock() + (self.max_defer if max_defer is None else max_defer)
        with self._cond:
            while True:
                now = self._clock()
                if now >= self._held_until:
                    return True
                if now >= deadline or (stopping is not None and stopping.is_set()):
                    return False
                self._cond.wait(max(0.0, min(deadline, self._held_until) - now))
