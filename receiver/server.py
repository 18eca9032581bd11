"""`receiver serve`: gunicorn with JSON logs, gthread workers and a graceful stop of delivery."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from .config import Settings
from .logs import logging_config

log = logging.getLogger("receiver.server")

# The access line's message (wrapped in the same JSON formatter): never headers, query strings or bodies.
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(B)sB %(M)sms from %(h)s"


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """Return gunicorn settings for the receiver."""
    return {
        "bind": f"{settings.host}:{settings.port}",
        "workers": max(1, settings.workers),
        "worker_class": "gthread",
        "threads": 4,
        "graceful_timeout": max(5, int(settings.request_timeout) + 5),
        "timeout": 60,
        "keepalive": 5,
        "logconfig_dict": logging_config(settings.log_level),
        "control_socket_disable": True,  # several instances may run on one host
        "access_log_format": ACCESS_LOG_FORMAT,
        "accesslog": "-",
        "worker_exit": _worker_exit,
    }


def _worker_exit(server: Any, worker: Any) -> None:
    """Stop the worker's dispatcher: finish in-flight deliveries, release claimed leases."""
    app = getattr(worker, "wsgi", None)
    rt = getattr(app, "extensions", {}).get("pipedial") if app is not None else None
    if rt is not None:
        rt.close()
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class _Application(BaseApplication):  # type: ignore[misc]
    """gunicorn application loading the receiver's app factory in each worker."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self._settings).items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from . import create_app
        from .logs import configure_logging

        configure_logging(self._settings.log_level)
        return create_app(self._settings)


def serve(settings: Settings) -> None:
    """Run gunicorn in the foreground until SIGTERM/SIGINT."""
    from .errors import ConfigError
    from .route import load_mapping

    # Fail fast, in the master, with every error of the mapping, before forking workers.
    if settings.mapping_path is None:
        raise ConfigError("RECEIVER_MAPPING is not set: point it at a mapping file (see examples/mapping.yaml)")
    load_mapping(settings.mapping_path)
    # Must be set before prometheus_client is first imported, so every worker writes shared files.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pipedial-metrics-")
    _Application(settings).run()
