"""The running receiver's parts, built once by create_app and shared by the views."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .config import Settings
from .errors import ReceiverError
from .metrics import Metrics
from .outbox import Outbox
from .route import Mapping

if TYPE_CHECKING:
    from .priority import IntakeFirst

log = logging.getLogger("receiver.runtime")


class Delivery(Protocol):
    """The embedded delivery: a Dispatcher's threads in this process, or a DeliveryProcess (`serve`)."""

    def wake(self) -> None:
        """Look for due jobs now (called after an enqueue)."""

    def stop(self, timeout: float = 30.0) -> bool:
        """Finish the calls in flight, give back claimed jobs; return whether it stopped cleanly."""


@dataclass
class Runtime:
    """Settings, mapping, outbox, metrics and the embedded delivery of one process."""

    settings: Settings
    mapping: Mapping
    outbox: Outbox
    metrics: Metrics
    dispatcher: Delivery | None = None
    intake: IntakeFirst | None = None  # counts requests in flight; the embedded delivery yields to a flood
    _gauges_at: float = field(default=0.0, repr=False)

    def wake_dispatcher(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def refresh_outbox_gauges(self, max_age: float = 1.0) -> None:
        """Update the outbox gauges from the store, at most once per `max_age` seconds."""
        now = time.time()
        if now - self._gauges_at < max_age:
            return
        self._gauges_at = now
        try:
            counts = self.outbox.counts()
            oldest = self.outbox.oldest_pending_age(now=now)
        except ReceiverError as exc:
            log.warning("outbox gauges unavailable", extra={"error": exc.message})
            self.metrics.outbox.set_unknown()
            return
        self.metrics.outbox.set(counts, oldest)

    def close(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop(timeout=self.settings.lease_seconds)
            self.dispatcher = None
        self.outbox.close()
