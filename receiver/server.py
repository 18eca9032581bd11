"""`receiver serve`: gunicorn with JSON logs, gthread workers and a graceful stop of delivery."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from .config import Settings
from .logs import logging_config

log = logging.getLogger("receiver.server")

#: Request threads per gunicorn worker.
REQUEST_THREADS = 4

# The access line's message (wrapped in the same JSON formatter): never headers, query strings or bodies.
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(B)sB %(M)sms from %(h)s"


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """Return gunicorn settings for the receiver."""
    return {
        "bind": f"{settings.host}:{settings.port}",
        "workers": max(1, settings.workers),
        "worker_class": "gthread",
        "threads": REQUEST_THREADS,
        # A stopping worker waits for its dispatcher (Runtime.close: up to lease_seconds, the most a
        # started delivery can take, pacing included); SIGKILL before that would strand its leases.
        "graceful_timeout": int(max(settings.request_timeout, settings.lease_seconds)) + 5,
        "timeout": 60,
        "keepalive": 5,
        "logconfig_dict": logging_config(settings.log_level),
        "control_socket_disable": True,  # several instances may run on one host
        "access_log_format": ACCESS_LOG_FORMAT,
        "accesslog": "-",
        "worker_exit": _worker_exit,
        "when_ready": _preflight_in_background if settings.preflight_on_start else _noop,
    }


def _noop(server: Any) -> None:
    return None


def _preflight_in_background(server: Any) -> None:
    """Run preflight once at start-up in a child process that logs each finding; intake starts regardless.

    Not a thread: a thread in the master can hold an import lock at the moment a worker is forked,
    and that worker then hangs forever.
    """
    import subprocess
    import sys

    settings: Settings = server.app._settings
    command = [sys.executable, "-m", "receiver", "preflight", "--log"]
    if settings.mapping_path is not None:
        command += ["--mapping", str(settings.mapping_path)]
    subprocess.Popen(command, stdin=subprocess.DEVNULL)  # noqa: S603 - our own CLI; gunicorn reaps it


def log_preflight(settings: Settings) -> bool:
    """Log every preflight check as one audit line; return whether all passed; never raise."""
    from .preflight import run_preflight
    from .route import load_mapping

    try:
        assert settings.mapping_path is not None
        report = run_preflight(settings, load_mapping(settings.mapping_path))
    except Exception as exc:  # noqa: BLE001 - whatever happens, intake keeps running
        log.warning("preflight could not run", extra={"outcome": "preflight_error", "error": repr(exc)})
        return False
    for check in report.checks:
        level = {"ok": logging.INFO, "warn": logging.WARNING}.get(check.status, logging.ERROR)
        log.log(level, "preflight check", extra={"route": check.route, "check": check.check,
                                                 "outcome": check.status, "detail": check.detail,
                                                 "cause": check.cause, "fix": check.fix})
    log.log(logging.INFO if report.ok else logging.ERROR, "preflight finished",
            extra={"outcome": "ok" if report.ok else "failed", "failures": len(report.failures),
                   "warnings": len(report.warnings)})
    return report.ok


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
        import sys

        from .app import create_app
        from .logs import configure_logging

        # Set when delivery threads shared the worker's GIL (docs/BENCHMARKS.md, section 3); kept since
        # delivery moved to its own process: 1 ms and the default 5 ms measured the same for intake.
        sys.setswitchinterval(0.001)
        configure_logging(self._settings.log_level)
        return create_app(self._settings, delivery="process")


def serve(settings: Settings) -> None:
    """Run gunicorn in the foreground until SIGTERM/SIGINT."""
    from .errors import ConfigError
    from .route import load_mapping

    # Fail fast, in the master, with every error of the mapping, before forking workers.
    if settings.mapping_path is None:
        raise ConfigError("RECEIVER_MAPPING is not set: point it at a mapping file (see examples/mapping.yaml)")
    load_mapping(settings.mapping_path)
    # Must be set before prometheus_client is first imported, so every worker writes shared files.
    created, master = None, os.getpid()
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        created = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pipedial-metrics-")
    from .metrics import clear_multiproc_dir

    clear_multiproc_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])  # a given directory may hold an earlier run's
    try:
        _Application(settings).run()
    finally:
        if created is not None and os.getpid() == master:  # workers leave through here too, and must not
            shutil.rmtree(created, ignore_errors=True)
