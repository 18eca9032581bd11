"""The running receiver's parts, built once by create_app and shared by the views."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import Settings
from .errors import ReceiverError
from .metrics import Metrics
from .outbox import Outbox
from .route import Mapping

if TYPE_CHECKING:
    from .deliver import Dispatcher
    from .priority import IntakeFirst

log = logging.getLogger("receiver.runtime")


@dataclass
class Runtime:
    """Settings, mapping, outbox, metrics and the embedded dispatcher of one process."""

    settings: Settings
    mapping: Mapping
    outbox: Outbox
    metrics: Metrics
    dispatcher: Dispatcher | None = None
    intake: IntakeFirst | None = None  # counts requests in flight for the embedded dispatcher
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
