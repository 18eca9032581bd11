"""Senders pipedial understands: one module per sender, each with verify() and parse().

A source module provides:
    NAME: str                       the URL segment: POST /hooks/<NAME>
    verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, now: float) -> None
        raise SignatureError unless the body is authentic under one of the secrets.
        `headers` has lower-case keys. `secrets` is never empty (views refuse unsigned sources).
    parse(payload: object, headers: Mapping[str, str]) -> Event
        validate the decoded JSON against the source's schema (compiled once, at import) and
        normalize it; raise PayloadError(message, json_path=...) on anything invalid.
        Verification pings and test deliveries return an Event with state "verification".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import import_module
from types import ModuleType
from typing import Protocol, cast

from ..errors import UnknownSourceError
from ..model import Event


class Source(Protocol):
    NAME: str

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, now: float) -> None: ...

    def parse(self, payload: object, headers: Mapping[str, str]) -> Event: ...


_MODULES: dict[str, str] = {
    "hcp-terraform": "hcp_terraform",
    "github": "github",
    "gitlab": "gitlab",
    "standard": "standard",
}


def _load() -> dict[str, Source]:
    loaded: dict[str, Source] = {}
    for name, module in _MODULES.items():
        try:
            mod: ModuleType = import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module}":
                raise
            continue  # not built yet
        loaded[name] = cast(Source, mod)
    return loaded


SOURCES: dict[str, Source] = _load()


def get_source(name: str) -> Source:
    """Return the source module for a URL segment, or raise UnknownSourceError."""
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(SOURCES))
        raise UnknownSourceError(f"unknown source {name!r}; known sources: {known}") from None
