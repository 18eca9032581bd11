"""The Pacer on a fake clock: never over the limit in any 60 s window, >= 95 % used, header slowdown, 429 pause."""

from __future__ import annotations

import bisect
import threading

import pytest

from receiver.config import Settings
from receiver.pacing import Pacer


class FakeClock:
    """A clock that only moves when someone sleeps (thread-safe)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(seconds, 0.0)


def max_in_window(times: list[float], window: float = 60.0) -> int:
    """Return the most requests inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    return max(bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered))


def run_backlog(pacer: Pacer, clock: FakeClock, n: int) -> list[float]:
    times = []
    for _ in range(n):
        assert pacer.acquire()
        times.append(clock.now)
    return times


@pytest.mark.parametrize("limit", [300, 60, 20, 1000, 7])
def test_backlog_never_exceeds_limit_in_any_window(limit: int) -> None:
    clock = FakeClock()
    pacer = Pacer(limit, clock=clock, sleep=clock.sleep)
    times = run_backlog(pacer, clock, limit * 5)
    assert max_in_window(times) <= limit


@pytest.mark.parametrize("limit", [300, 60, 20, 1000])
def test_backlog_runs_at_95_percent_or_more_of_the_limit(limit: int) -> None:
    clock = FakeClock()
    pacer = Pacer(limit, clock=clock, sleep=clock.sleep)
    times = run_backlog(pacer, clock, limit * 5)
    ordered = sorted(times)
    # every full 60 s window inside the run (steady state included) carries >= 95 % of the limit
    full = [t for t in ordered if t + 60 <= ordered[-1]]
    worst = min(bisect.bisect_left(ordered, t + 60) - bisect.bisect_right(ordered, t) for t in full)
    assert worst >= 0.95 * limit


def test_burst_is_small_and_immediate() -> None:
    clock = FakeClock()
    pacer = Pacer(300, clock=clock, sleep=clock.sleep)
    assert pacer.burst == 10
    for _ in range(10):
        assert pacer.acquire()
    assert clock.now == 1000.0
    assert pacer.ready_in() > 0


def test_concurrent_threads_share_the_bucket() -> None:
    clock = FakeClock()
    pacer = Pacer(300, clock=clock, sleep=clock.sleep)
    times: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(100):
            pacer.acquire()
            with lock:
                times.append(clock.now)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(times) == 800
    assert max_in_window(times) <= 300


def test_acquire_timeout_returns_false_without_taking_a_slot() -> None:
    clock = FakeClock()
    pacer = Pacer(60, clock=clock, sleep=clock.sleep)  # burst 6, ~0.9 s per token after that
    for _ in range(pacer.burst):
        pacer.acquire()
    assert pacer.acquire(timeout=0.1) is False
    assert clock.now == 1000.0
    assert pacer.acquire(timeout=5) is True


def test_pause_blocks_all_traffic_until_retry_after() -> None:
    clock = FakeClock()
    pacer = Pacer(300, clock=clock, sleep=clock.sleep)
    pacer.pause(2.0)
    assert pacer.ready_in() == pytest.approx(2.0)
    assert pacer.acquire(timeout=1.0) is False
    assert pacer.acquire()
    assert clock.now >= 1002.0


def test_pause_never_shortens_a_longer_pause() -> None:
    clock = FakeClock()
    pacer = Pacer(300, clock=clock, sleep=clock.sleep)
    pacer.pause(10)
    pacer.pause(2)
    assert pacer.ready_in() == pytest.approx(10)


def test_headers_near_the_limit_spread_the_rest_over_the_window() -> None:
    clock = FakeClock()
    pacer = Pacer(300, clock=clock, sleep=clock.sleep)
    pacer.observe({"inin-ratelimit-allowed": "300", "inin-ratelimit-count": "290", "inin-ratelimit-reset": "30"})
    times = run_backlog(pacer, clock, 10)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 3.0 - 1e-9  # 10 left for 30 s: one every 3 s


def test_headers_far_from_the_limit_change_nothing() -> None:
    clock = FakeClock()
    pacer = Pacer(300, clock=clock, sleep=clock.sleep)
    pacer.observe({"Inin-RateLimit-Allowed": "300", "Inin-RateLimit-Count": "12", "Inin-RateLimit-Reset": "50"})
    run_backlog(pacer, clock, 10)
    assert clock.now == 1000.0


def test_headers_with_the_allowance_used_up_pause_until_reset() -> None:
    clock = FakeClock()
    pacer = Pacer(300, clock=clock, sleep=clock.sleep)
    pacer.observe({"inin-ratelimit-allowed": "300", "inin-ratelimit-count": "300", "inin-ratelimit-reset": "12"})
    pacer.acquire()
    assert clock.now >= 1012.0


def test_spread_ends_with_the_window() -> None:
    clock = FakeClock()
    pacer = Pacer(300, clock=clock, sleep=clock.sleep)
    pacer.observe({"inin-ratelimit-allowed": "300", "inin-ratelimit-count": "299", "inin-ratelimit-reset": "5"})
    pacer.acquire()
    clock.sleep(6)
    start = clock.now
    run_backlog(pacer, clock, 5)
    assert clock.now == start  # the old window's spread no longer applies


@pytest.mark.parametrize(
    "headers",
    [{}, {"inin-ratelimit-count": "x", "inin-ratelimit-allowed": "300", "inin-ratelimit-reset": "5"}],
)
def test_missing_or_bad_headers_are_ignored(headers: dict[str, str]) -> None:
    clock = FakeClock()
    pacer = Pacer(300, clock=clock, sleep=clock.sleep)
    pacer.observe(headers)
    assert pacer.ready_in() == 0


def test_zero_limit_disables_pacing() -> None:
    clock = FakeClock()
    pacer = Pacer.from_settings(Settings(rate_limit_per_minute=0), clock=clock, sleep=clock.sleep)
    run_backlog(pacer, clock, 1000)
    assert clock.now == 1000.0


@pytest.mark.parametrize(("limit", "window"), [(300, 10.0), (300, 30.0), (600, 5.0)])
def test_a_shorter_platform_window_is_never_exceeded_and_still_well_used(limit: int, window: float) -> None:
    """300/min counted per 10 s windows is 50 per window: no window over it, every full one >= 95 % used."""
    clock = FakeClock()
    pacer = Pacer(limit, window=window, clock=clock, sleep=clock.sleep)
    per_window = limit * window / 60
    times = sorted(run_backlog(pacer, clock, limit * 3))
    assert max_in_window(times, window) <= per_window
    full = [t for t in times if t + window <= times[-1]]
    worst = min(bisect.bisect_left(times, t + window) - bisect.bisect_right(times, t) for t in full)
    assert worst >= 0.95 * per_window


def test_window_comes_from_settings() -> None:
    pacer = Pacer.from_settings(Settings(rate_limit_per_minute=300, rate_limit_window_seconds=10))
    assert (pacer.window, pacer.burst) == (10, 2)
