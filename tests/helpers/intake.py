"""A webhook held in flight through receiver.priority's gate: `hold_request(gate)`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from receiver.priority import IntakeFirst


def hold_request(gate: IntakeFirst) -> tuple[threading.Thread, threading.Event]:
    """Start a request that stays in flight until the returned event is set; return its thread too."""
    entered, release = threading.Event(), threading.Event()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        entered.set()
        release.wait(10)
        return []

    thread = threading.Thread(target=gate.wrap(app), args=({}, lambda *a: None))
    thread.start()
    assert entered.wait(5)
    return thread, release
