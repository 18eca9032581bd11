"""The app factory: load mapping and outbox once, register the views, start the embedded delivery."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from flask import Flask

from .config import Settings
from .errors import ConfigError
from .metrics import create_metrics
from .outbox import Outbox, open_outbox
from .priority import IntakeFirst
from .route import load_mapping
from .runtime import Runtime

if TYPE_CHECKING:
    from .deliver import Dispatcher

log = logging.getLogger("receiver")


#: How the embedded delivery runs: threads in this process (any WSGI server), or a child process
#: (`receiver serve`: receiver.delivery_process), which keeps delivery off the request threads' GIL.
#: The child reads its settings from the environment, like `receiver worker`: use it only with settings
#: that came from there too (Settings.from_env(), as `serve` does).
EmbeddedDelivery = Literal["threads", "process"]


def create_app(
    settings: Settings | None = None, *, outbox: Outbox | None = None, delivery: EmbeddedDelivery = "threads"
) -> Flask:
    """Build the receiver: load the mapping and outbox once, register the views, start delivery."""
    if settings is None:
        from .logs import configure_logging

        settings = Settings.from_env()
        configure_logging(settings.log_level)
    if settings.mapping_path is None:
        raise ConfigError("RECEIVER_MAPPING is not set: point it at a mapping file (see examples/mapping.yaml)")
    mapping = load_mapping(settings.mapping_path)
    box = outbox if outbox is not None else open_outbox(settings.database_url)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    app.json.sort_keys = False  # type: ignore[attr-defined]
    rt = Runtime(settings=settings, mapping=mapping, outbox=box, metrics=create_metrics())
    app.extensions["pipedial"] = rt

    from . import views

    views.init_app(app)
    if settings.embedded_worker:  # delivery holds back while webhooks arrive back to back (receiver.priority)
        if delivery == "process":
            from .delivery_process import DeliveryProcess

            process = DeliveryProcess().start()
            rt.intake = IntakeFirst(on_saturated=process.hold)  # the child is told, and holds back
            rt.dispatcher = process
        else:
            rt.intake = IntakeFirst()
            rt.dispatcher = _start_dispatcher(rt, rt.intake)
        app.wsgi_app = rt.intake.wrap(app.wsgi_app)  # type: ignore[method-assign,assignment]
    log.info(
        "receiver ready",
        extra={"mapping_version": mapping.version, "routes": len(mapping.routes), "dry_run": settings.dry_run,
               "embedded_worker": settings.embedded_worker, "delivery": delivery if settings.embedded_worker else None,
               "outbox": settings.database_url.split(":", 1)[0]},
    )
    return app


def _start_dispatcher(rt: Runtime, intake: IntakeFirst) -> Dispatcher:
    from .deliver import Dispatcher, owner_id
    from .platform import PlatformClient

    dispatcher = Dispatcher(rt.outbox, PlatformClient(rt.settings), rt.settings, owner=owner_id(), metrics=rt.metrics,
                            intake=intake)
    dispatcher.start()
    return dispatcher
