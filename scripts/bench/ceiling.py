"""The stack's ceiling: a minimal Flask app that answers 202 to any POST, under pipedial's gunicorn settings.

Run as `python scripts/bench/ceiling.py` with the same RECEIVER_* environment as `receiver serve`: the
gunicorn options come from receiver.server.gunicorn_options (workers, gthread worker class, threads,
bind, keep-alive, timeouts, JSON access log), so the only difference to pipedial is the app itself.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request
from gunicorn.app.base import BaseApplication

from receiver.config import Settings
from receiver.server import gunicorn_options


def create_app() -> Flask:
    """Return the minimal app: read the body (as any receiver must) and answer 202."""
    app = Flask("ceiling")

    @app.post("/", defaults={"path": ""})
    @app.post("/<path:path>")
    def accept(path: str) -> Response:
        request.get_data()
        return Response(b'{"accepted":true}', status=202, mimetype="application/json")

    return app


class _Ceiling(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        options = gunicorn_options(self._settings)
        options.pop("when_ready", None)  # pipedial's start-up preflight: nothing to check here
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app()


if __name__ == "__main__":
    _Ceiling(Settings.from_env()).run()
