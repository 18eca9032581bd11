"""Structured JSON audit logs: one object per line on stdout, request-scoped fields bound once.

Use `log.info("constant phrase", extra={...})` with the fixed vocabulary of DESIGN.md ("Audit log");
fields bound with `bound(...)` (e.g. event_id, request_id) are added to every line inside the block.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.config
import sys
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

# Never mutated in place: every bind makes a new mapping, so a shared empty default is safe.
_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "pipedial_log_context", default=MappingProxyType({})
)

#: Keys that must never reach a log line, whatever a caller passes in `extra`.
_FORBIDDEN = frozenset({"authorization", "token", "access_token", "secret", "client_secret", "signature", "password"})

FORMAT = "%(timestamp)s %(level)s %(name)s %(message)s"


class ContextFilter(logging.Filter):
    """Add the bound fields to every record (explicit `extra` wins) and redact forbidden keys."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get().items():
            record.__dict__.setdefault(key, value)
        for key in _FORBIDDEN:
            if key in record.__dict__:
                record.__dict__[key] = "[redacted]"
        return True


def json_formatter_config() -> dict[str, Any]:
    """Return the dictConfig formatter entry shared by the app and gunicorn."""
    return {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        "rename_fields": {"asctime": "timestamp", "levelname": "level", "name": "logger"},
        "static_fields": {"service": "pipedial"},
        "timestamp": False,
    }


def logging_config(level: str = "INFO", stream: str = "ext://sys.stdout") -> dict[str, Any]:
    """Return the dictConfig for the receiver (also used for gunicorn's own loggers)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"json": json_formatter_config()},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": stream,
                "formatter": "json",
                "filters": ["context"],
            }
        },
        "loggers": {
            "receiver": {"level": level, "handlers": ["stdout"], "propagate": False},
            "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
            # urllib3 logs request lines at DEBUG; keep it quiet so nothing sensitive can leak.
            "urllib3": {"level": "WARNING"},
        },
        "root": {"level": "WARNING", "handlers": ["stdout"]},
    }


def configure_logging(level: str = "INFO", *, stderr: bool = False) -> None:
    """Configure JSON logging to stdout (stderr for CLI commands whose stdout is a report); call once."""
    if level not in logging.getLevelNamesMapping():
        level = "INFO"
    logging.config.dictConfig(logging_config(level, "ext://sys.stderr" if stderr else "ext://sys.stdout"))
    logging.captureWarnings(True)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Bind fields to every log line emitted inside the block (this thread/context only)."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**fields: Any) -> None:
    """Bind fields for the rest of the current context (e.g. a request)."""
    _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})


def clear() -> None:
    """Forget every bound field (at the start of a request or job)."""
    _CONTEXT.set(MappingProxyType({}))
