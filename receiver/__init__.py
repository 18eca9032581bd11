"""pipedial: infrastructure-pipeline webhooks in, contact-center dialer calls out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app"]


def create_app(settings: Any = None, *, outbox: Any = None, delivery: Any = "threads") -> Flask:
    """Build the receiver app (see receiver.app.create_app); imported lazily to keep the CLI light."""
    from .app import create_app as _create_app

    return _create_app(settings, outbox=outbox, delivery=delivery)
