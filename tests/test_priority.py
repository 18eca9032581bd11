"""receiver.priority: the intake gate counts requests in flight and holds delivery back while all are busy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from receiver.priority import IntakeFirst


def blocking_app(entered: threading.Semaphore, release: threading.Event) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        entered.release()
        release.wait(5)
        if environ.get("fail"):
            raise RuntimeError("the app failed")
        return [b"ok"]

    return app


def run_requests(gate: IntakeFirst, n: int, release: threading.Event, **environ: Any) -> list[threading.Thread]:
    """Start n requests through the gate; return once all are inside the app."""
    entered = threading.Semaphore(0)
    app = gate.wrap(blocking_app(entered, release))

    def one() -> None:
        try:
            app(dict(environ), lambda *a: None)
        except RuntimeError:
            pass

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for _ in range(n):
        assert entered.acquire(timeout=5)
    return threads


def test_requests_in_flight_are_counted_and_uncounted_even_when_the_app_raises() -> None:
    gate = IntakeFirst(4)
    release = threading.Event()
    threads = run_requests(gate, 2, release, fail=True)
    assert gate.in_flight == 2
    release.set()
    for t in threads:
        t.join(5)
    assert gate.in_flight == 0


def test_some_threads_busy_is_not_saturation() -> None:
    gate = IntakeFirst(4)
    release = threading.Event()
    threads = run_requests(gate, 3, release)
    try:
        assert not gate.saturated()
        started = time.monotonic()
        assert gate.wait() is True
        assert time.monotonic() - started < 0.05
    finally:
        release.set()
        for t in threads:
            t.join(5)


def test_all_threads_busy_holds_delivery_back_for_at_most_max_defer() -> None:
    gate = IntakeFirst(2, max_defer=0.2, quiet=0.01)
    release = threading.Event()
    threads = run_requests(gate, 2, release)
    try:
        assert gate.saturated()
        started = time.monotonic()
        assert gate.wait() is False
        assert 0.19 <= time.monotonic() - started < 1.0
    finally:
        release.set()
        for t in threads:
            t.join(5)


def test_saturation_lasts_for_the_quiet_time_after_the_last_full_moment() -> None:
    gate = IntakeFirst(2, max_defer=2.0, quiet=0.2)
    release = threading.Event()
    threads = run_requests(gate, 2, release)
    waited: list[float] = []

    def deliver() -> None:
        started = time.monotonic()
        assert gate.wait()
        waited.append(time.monotonic() - started)

    waiter = threading.Thread(target=deliver)
    waiter.start()
    time.sleep(0.1)
    released_at = time.monotonic()
    release.set()
    for t in threads:
        t.join(5)
    assert gate.saturated()  # idle now, but only for less than the quiet time
    waiter.join(5)
    assert waited and 0.3 <= waited[0] < 1.5
    assert time.monotonic() - released_at >= 0.2
    assert not gate.saturated()


def test_stopping_ends_the_wait() -> None:
    gate = IntakeFirst(1, max_defer=5.0)
    release = threading.Event()
    threads = run_requests(gate, 1, release)
    stopping = threading.Event()
    stopping.set()
    try:
        started = time.monotonic()
        assert gate.wait(stopping) is False
        assert time.monotonic() - started < 0.5
    finally:
        release.set()
        for t in threads:
            t.join(5)


@pytest.mark.parametrize("threads", [0, -1])
def test_a_gate_counts_at_least_one_thread(threads: int) -> None:
    assert IntakeFirst(threads).threads == 1
