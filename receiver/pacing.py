"""Client-side pacing: keep one process under the platform's per-token rate limit.

The platform allows `rate_limit_per_minute` requests per token, counted in fixed windows of
`rate_limit_window_seconds` (60 s for Genesys Cloud, CONTRACT.md §5), i.e. `n = limit * window / 60`
per window. The Pacer is a token bucket shared by every thread of the process: capacity `burst`
(small, min(10, n/20), at least 1) and refill `(n - burst) / window` per second, so that over ANY
window at most `burst + (n - burst) = n` requests go out, while a backlog still runs at
(n - burst) / n >= 95 % of the allowed rate (96.7 % at 300 per 60 s, 96 % at 50 per 10 s) for
windows of 20 requests and up.

On top of the bucket:
- `observe(headers)` reads `inin-ratelimit-count/allowed/reset` from every response; when the rest of
  the window's allowance would run out before the reset at the bucket's pace (others share the
  token, or the count started elsewhere), requests are spread evenly over the remaining seconds;
  when nothing is left, traffic pauses until the reset.
- `pause(seconds)` (a 429's Retry-After) blocks all traffic of the process until then.

The clock and sleep are injectable, so tests run on a fake clock without sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from .config import Settings

log = logging.getLogger("receiver.pacing")

#: Tolerance for float rounding when the bucket refills to exactly one token.
_EPSILON = 1e-9


class Pacer:
    """A thread-safe token bucket with header-driven slowdown and 429 pauses."""

    def __init__(
        self,
        rate_per_minute: int = 300,
        *,
        window: float = 60.0,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = max(0, int(rate_per_minute))
        self.window = window if window > 0 else 60.0
        # The platform counts requests in fixed windows: `per_window` of them per `window` seconds.
        per_window = max(1, int(self.limit * self.window / 60.0)) if self.limit else 0
        self.burst = burst if burst is not None else max(1, min(10, per_window // 20))
        if self.limit:
            self.burst = max(1, min(self.burst, per_window))
        # Refill so that burst + refill * window never exceeds what one window allows.
        refill_per_window = max(per_window - self.burst, 1) if self.limit else 0
        self.rate = refill_per_window / self.window  # tokens per second; 0 means "no pacing"
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._updated = clock()
        self._paused_until = 0.0
        self._spread_interval = 0.0
        self._spread_until = 0.0
        self._last_grant: float | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Pacer:
        """Build the pacer for settings.rate_limit_per_minute and its window (0 disables pacing)."""
        return cls(settings.rate_limit_per_minute, window=settings.rate_limit_window_seconds, clock=clock,
                   sleep=sleep)

    @property
    def enabled(self) -> bool:
        """Return whether requests are paced at all."""
        return self.limit > 0

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def _ready_at(self, now: float) -> float:
        """Return the earliest time the next request may go (caller holds the lock)."""
        ready = now
        if self.enabled and self._tokens < 1.0 - _EPSILON:
            ready = now + (1.0 - self._tokens) / self.rate
        ready = max(ready, self._paused_until)
        if self._last_grant is not None and now < self._spread_until:
            ready = max(ready, self._last_grant + self._spread_interval)
        return ready

    def ready_in(self) -> float:
        """Return how many seconds until a request may go (0 when one may go now)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            return max(0.0, self._ready_at(now) - now)

    def acquire(self, timeout: float | None = None) -> bool:
        """Block until a request may go and take its slot; return False if that is later than timeout."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                ready = self._ready_at(now)
                if ready <= now:
                    if self.enabled:
                        self._tokens = max(0.0, self._tokens - 1.0)
                    self._last_grant = now
                    return True
                if deadline is not None and ready > deadline:
                    return False
                wait = ready - now
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Stop all traffic of this process for `seconds` (a 429's Retry-After)."""
        if seconds <= 0:
            return
        with self._lock:
            until = self._clock() + seconds
            if until > self._paused_until:
                self._paused_until = until
                log.warning("rate limited, pausing platform calls", extra={"pause_seconds": round(seconds, 3)})

    def observe(self, headers: Mapping[str, str]) -> None:
        """Slow down when the platform's inin-ratelimit-* headers say the window's allowance is nearly used."""
        lowered = {str(k).lower(): v for k, v in headers.items()}
        count = _number(lowered.get("inin-ratelimit-count"))
        allowed = _number(lowered.get("inin-ratelimit-allowed"))
        reset = _number(lowered.get("inin-ratelimit-reset"))
        if count is None or allowed is None or reset is None or allowed <= 0 or reset <= 0:
            return
        remaining = allowed - count
        with self._lock:
            now = self._clock()
            if remaining <= 0:
                if now + reset > self._paused_until:
                    self._paused_until = now + reset
                    log.warning(
                        "rate limit allowance used up, pausing platform calls",
                        extra={"pause_seconds": round(reset, 3)},
                    )
                return
            interval = reset / remaining
            own_interval = 1.0 / self.rate if self.enabled else 0.0
            # The newest answer wins: spread when the bucket's own pace would overrun the window.
            self._spread_interval = interval if interval > own_interval else 0.0
            self._spread_until = now + reset


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
