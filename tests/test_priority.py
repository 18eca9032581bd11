"""receiver.priority: the intake gate averages how busy intake is and holds delivery back while it is saturated."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from receiver.priority import NOTIFY_EVERY_SECONDS, HeldIntake, IntakeFirst
from tests.helpers.intake import hold_request


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def timed_app(clock: Clock) -> Callable[..., Iterable[bytes]]:
    """A WSGI app that takes environ["seconds"] of the fake clock and raises when environ["fail"]."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        clock.now += environ["seconds"]
        if environ.get("fail"):
            raise RuntimeError("the app failed")
        return [b"ok"]

    return app


def requests_every(gate: IntakeFirst, clock: Clock, *, busy: float, idle: float, count: int) -> None:
    app = gate.wrap(timed_app(clock))
    for _ in range(count):
        app({"seconds": busy}, lambda *a: None)
        clock.now += idle


def test_back_to_back_requests_saturate_and_the_share_decays_after() -> None:
    clock = Clock()
    gate = IntakeFirst(tau=0.1, threshold=0.9, clock=clock)
    requests_every(gate, clock, busy=0.002, idle=0.0, count=400)  # 0.8 s with no gap: 8 time constants
    assert gate.busy_share() == pytest.approx(1 - math.exp(-8), abs=1e-6)
    assert gate.saturated()
    clock.now += 0.1
    assert gate.busy_share() == pytest.approx((1 - math.exp(-8)) * math.exp(-1), abs=1e-6)
    assert not gate.saturated()


def test_requests_with_gaps_do_not_saturate() -> None:
    clock = Clock()
    gate = IntakeFirst(tau=0.1, threshold=0.9, clock=clock)
    requests_every(gate, clock, busy=0.004, idle=0.006, count=200)  # busy 40% of the time
    assert 0.3 < gate.busy_share() < 0.6
    assert not gate.saturated()


def test_requests_in_flight_are_counted_and_uncounted_even_when_the_app_raises() -> None:
    clock = Clock()
    gate = IntakeFirst(clock=clock)
    seen: list[int] = []
    inner = timed_app(clock)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(gate.in_flight)
        return inner(environ, start_response)

    with pytest.raises(RuntimeError):
        gate.wrap(app)({"seconds": 0.5, "fail": True}, lambda *a: None)
    assert seen == [1] and gate.in_flight == 0
    assert gate.busy_share() == pytest.approx(1 - math.exp(-5), abs=1e-3)  # the failed request counted


def test_a_calm_gate_lets_delivery_through_at_once() -> None:
    gate = IntakeFirst()
    started = time.monotonic()
    assert gate.wait() is True
    assert time.monotonic() - started < 0.05


def test_under_saturation_delivery_waits_at_most_max_defer() -> None:
    gate = IntakeFirst(tau=0.01, max_defer=0.2)
    thread, release = hold_request(gate)
    try:
        time.sleep(0.05)  # five time constants in flight: saturated
        assert gate.saturated()
        started = time.monotonic()
        assert gate.wait() is False
        assert 0.19 <= time.monotonic() - started < 1.0
        started = time.monotonic()
        assert gate.wait(max_defer=0.05) is False  # a thread's own, shorter bound
        assert 0.045 <= time.monotonic() - started < 0.5
    finally:
        release.set()
        thread.join(5)


def test_delivery_resumes_once_the_share_has_decayed_below_the_threshold() -> None:
    gate = IntakeFirst(tau=0.05, threshold=0.5, max_defer=5.0)
    thread, release = hold_request(gate)
    time.sleep(0.3)
    waited: list[float] = []

    def deliver() -> None:
        started = time.monotonic()
        assert gate.wait()
        waited.append(time.monotonic() - started)

    waiter = threading.Thread(target=deliver)
    waiter.start()
    time.sleep(0.1)
    release.set()
    thread.join(5)
    waiter.join(5)
    # 0.1 s in flight while it waited, then tau * ln(1 / 0.5) = 35 ms of decay.
    assert waited and 0.12 <= waited[0] < 1.0


def test_stopping_ends_the_wait() -> None:
    gate = IntakeFirst(tau=0.01, max_defer=5.0)
    thread, release = hold_request(gate)
    stopping = threading.Event()
    try:
        time.sleep(0.05)
        stopping.set()
        started = time.monotonic()
        assert gate.wait(stopping) is False
        assert time.monotonic() - started < 0.5
    finally:
        release.set()
        thread.join(5)


# --- across processes: the worker's IntakeFirst tells its delivery process, whose HeldIntake holds back


def test_a_saturated_gate_says_so_at_most_every_notify_interval() -> None:
    clock = Clock()
    told: list[float] = []
    gate = IntakeFirst(tau=0.1, threshold=0.9, clock=clock, on_saturated=lambda: told.append(clock.now))
    requests_every(gate, clock, busy=0.002, idle=0.0, count=100)  # 0.2 s back to back: saturated after ~0.23 s
    assert told == []
    requests_every(gate, clock, busy=0.002, idle=0.0, count=200)  # 0.4 s more, saturated throughout
    assert len(told) in (7, 8)
    assert all(b - a >= NOTIFY_EVERY_SECONDS - 1e-9 for a, b in zip(told, told[1:], strict=False))
    count = len(told)
    requests_every(gate, clock, busy=0.004, idle=0.006, count=50)  # gaps: the share falls, nothing more is said
    assert len(told) <= count + 1


def test_a_calm_gate_never_says_saturated() -> None:
    clock = Clock()
    told: list[float] = []
    gate = IntakeFirst(tau=0.1, threshold=0.9, clock=clock, on_saturated=lambda: told.append(clock.now))
    requests_every(gate, clock, busy=0.004, idle=0.006, count=200)
    assert told == []


def test_a_held_intake_is_saturated_until_hold_seconds_after_the_last_word() -> None:
    clock = Clock()
    held = HeldIntake(hold=0.1, clock=clock)
    assert not held.saturated() and held.wait() is True
    held.hold()
    clock.now += 0.099
    assert held.saturated()
    held.hold()  # a new word starts the hold afresh
    clock.now += 0.099
    assert held.saturated()
    clock.now += 0.002
    assert not held.saturated() and held.wait() is True


def test_a_held_intake_lets_delivery_wait_at_most_max_defer_and_resumes_when_the_hold_ends() -> None:
    held = HeldIntake(hold=0.3, max_defer=0.1)
    held.hold()
    started = time.monotonic()
    assert held.wait() is False  # still held after max_defer: go anyway
    assert 0.09 <= time.monotonic() - started < 0.25
    started = time.monotonic()
    assert held.wait(max_defer=5.0) is True  # the hold runs out (0.3 s after the word) before 5 s
    assert 0.1 <= time.monotonic() - started < 0.5
    held.hold()
    stopping = threading.Event()
    stopping.set()
    assert held.wait(stopping, max_defer=5.0) is False
