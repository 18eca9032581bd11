"""Sandbox platform helpers: `sandbox_config()`, the `sandbox` and `make_sandbox` fixtures, `get_token()`.

Use them with `from tests.helpers.sandbox import sandbox, sandbox_config  # noqa: F401`; `journal()`
returns what a sandbox accepted.
`sandbox_config()` is a plain function (call it, change the dict, pass it to `make_sandbox` or
`SandboxServer`); `sandbox` and `make_sandbox` are pytest fixtures.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests

from receiver.sandbox import SandboxServer, load_config

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "sandbox.yaml"
CLIENT_ID = "pipedial-dev"
CLIENT_SECRET = "pipedial-dev-secret"

_example: dict[str, Any] | None = None


def sandbox_config() -> dict[str, Any]:
    """Return a fresh deep copy of examples/sandbox.yaml (normalized; parsed once per session)."""
    global _example
    if _example is None:
        _example = load_config(EXAMPLE_CONFIG)
    return copy.deepcopy(_example)


def journal(platform: SandboxServer | str) -> list[dict[str, Any]]:
    """Return the sandbox's journal: every platform action it accepted, oldest first."""
    url = platform if isinstance(platform, str) else platform.url
    entries: list[dict[str, Any]] = requests.get(f"{url}/sandbox/journal", timeout=5).json()
    return entries


def get_token(url: str, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> str:
    """Return a bearer token from the sandbox at url."""
    response = requests.post(
        f"{url}/oauth/token", auth=(client_id, client_secret), data={"grant_type": "client_credentials"}, timeout=5
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """Yield a started SandboxServer seeded with examples/sandbox.yaml."""
    with SandboxServer(sandbox_config()) as server:
        yield server


@pytest.fixture
def make_sandbox() -> Iterator[Callable[[Mapping[str, Any]], SandboxServer]]:
    """Yield a factory that starts a SandboxServer for a given config; all are stopped afterwards."""
    servers: list[SandboxServer] = []

    def start(config: Mapping[str, Any]) -> SandboxServer:
        server = SandboxServer(config).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
