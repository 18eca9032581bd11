"""Run the sandbox over HTTP: SandboxServer (in a background thread, for tests) and serve (the CLI)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import create_sandbox_app
from .seed import DEFAULT_CONFIG_PATH, default_config, load_config
from .state import SandboxState

log = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """Log each request at DEBUG instead of werkzeug's INFO line on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("sandbox request", extra={"request_line": self.requestline, "status_code": str(code)})


class SandboxServer:
    """A sandbox platform on a threaded werkzeug server in a daemon thread; a context manager."""

    def __init__(self, config: Mapping[str, Any] | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app: Flask = create_sandbox_app(default_config() if config is None else config)
        self.host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> SandboxState:
        """Return the live state, for in-process inspection."""
        state: SandboxState = self.app.extensions["sandbox"]
        return state

    @property
    def port(self) -> int:
        """Return the bound port (the chosen one once started with port=0)."""
        return self._server.server_port if self._server is not None else self._port

    @property
    def url(self) -> str:
        """Return the base URL, e.g. http://127.0.0.1:PORT (both API and login host)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SandboxServer:
        """Bind and start serving in a daemon thread; return self."""
        if self._server is not None:
            return self
        self._server = make_server(self.host, self._port, self.app, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="sandbox-server", daemon=True
        )
        self._thread.start()
        log.debug("sandbox started", extra={"url": self.url})
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(host: str, port: int, config_path: str | None) -> None:
    """Serve the sandbox in the foreground until interrupted (the `receiver sandbox` command)."""
    path = Path(config_path) if config_path else DEFAULT_CONFIG_PATH
    app = create_sandbox_app(load_config(path))
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    log.info("sandbox listening", extra={"url": f"http://{host}:{server.server_port}", "config": str(path)})
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("sandbox stopped")
    finally:
        server.server_close()
