"""The sandbox's live state behind one lock: the org, tokens, rate windows, contacts, journal, scripts."""

from __future__ import annotations

import logging
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .seed import parse_config
from .world import Campaign, ContactList, World

log = logging.getLogger(__name__)

#: Keys PATCH /sandbox/state may replace.
PATCHABLE: frozenset[str] = frozenset(
    {
        "roles",
        "clients",
        "contact_lists",
        "campaigns",
        "divisions",
        "faults",
        "rate_limit_per_minute",
        "rate_limit_window_seconds",
        "token_ttl",
        "organization",
        "seed",
    }
)

_REQUEST_LOG_MAX = 100_000

ClientCheck = Literal["ok", "unknown_client", "bad_secret"]


@dataclass(slots=True)
class Token:
    """An issued access token and its fixed rate-limit window."""

    value: str
    client_id: str
    expires_at: float  # time.monotonic()
    window_start: float = 0.0
    window_count: int = 0

    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at


@dataclass(frozen=True, slots=True)
class RateWindow:
    """Where one token stands in its current rate-limit window."""

    allowed: int
    count: int
    reset: int  # whole seconds until the window resets

    @property
    def exceeded(self) -> bool:
        return self.count > self.allowed

    def headers(self) -> dict[str, str]:
        """Return the inin-ratelimit-* headers."""
        return {
            "inin-ratelimit-allowed": str(self.allowed),
            "inin-ratelimit-count": str(self.count),
            "inin-ratelimit-reset": str(self.reset),
        }


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    """One canned answer for a matching API request."""

    status: int
    code: str | None = None
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    @property
    def success(self) -> bool:
        return 200 <= self.status < 300


@dataclass(slots=True)
class _Script:
    method: str | None
    pattern: re.Pattern[str]
    responses: deque[ScriptedResponse]


class SandboxState:
    """Everything the sandbox remembers; every method is safe to call from many threads."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._lock = threading.Lock()
        self._seeded = parse_config(config)
        self._world = self._seeded
        self._tokens: dict[str, Token] = {}
        self._contacts: dict[str, dict[str, dict[str, Any]]] = {}
        self._journal: list[dict[str, Any]] = []
        self._requests: deque[dict[str, Any]] = deque(maxlen=_REQUEST_LOG_MAX)
        self._scripts: list[_Script] = []
        self._rng = random.Random(self._world.seed)

    @property
    def world(self) -> World:
        """Return the current org (an immutable snapshot)."""
        with self._lock:
            return self._world

    def reset(self) -> None:
        """Restore the seeded org; clear journal, request log, scripts, contacts and rate windows."""
        with self._lock:
            self._world = self._seeded
            self._contacts.clear()
            self._journal.clear()
            self._requests.clear()
            self._scripts.clear()
            self._rng = random.Random(self._world.seed)
            for token in self._tokens.values():
                token.window_start, token.window_count = 0.0, 0

    def patch(self, changes: Mapping[str, Any]) -> World:
        """Replace top-level seed keys live; raise SandboxConfigError if the result is invalid."""
        with self._lock:
            config = self._world.to_config()
            config.update(changes)
            self._world = parse_config(config, "PATCH /sandbox/state")
            if "seed" in changes:
                self._rng = random.Random(self._world.seed)
            return self._world

    # Tokens and rate limits

    def check_client(self, client_id: str, client_secret: str) -> ClientCheck:
        """Say whether these client credentials are good."""
        client = self.world.clients.get(client_id)
        if client is None:
            return "unknown_client"
        return "ok" if secrets.compare_digest(client.client_secret, client_secret) else "bad_secret"

    def issue_token(self, client_id: str) -> tuple[str, float]:
        """Issue a token for the client; return it and its lifetime in seconds."""
        with self._lock:
            ttl = self._world.token_ttl
            value = secrets.token_urlsafe(32)
            self._tokens[value] = Token(value=value, client_id=client_id, expires_at=time.monotonic() + ttl)
            return value, ttl

    def find_token(self, value: str) -> Token | None:
        """Return the issued token with this value, expired or not."""
        with self._lock:
            return self._tokens.get(value)

    def expire_tokens(self) -> int:
        """Make every issued token expired; return how many there are."""
        with self._lock:
            now = time.monotonic()
            for token in self._tokens.values():
                token.expires_at = min(token.expires_at, now)
            return len(self._tokens)

    def count_request(self, token: Token) -> RateWindow:
        """Count one request against the token's fixed window and return where it stands."""
        with self._lock:
            window = self._world.rate_limit_window_seconds
            now = time.monotonic()
            if token.window_count == 0 or now >= token.window_start + window:
                token.window_start, token.window_count = now, 0
            token.window_count += 1
            reset = max(1, math.ceil(token.window_start + window - now))
            return RateWindow(allowed=self._world.rate_limit_per_minute, count=token.window_count, reset=reset)

    def idle_window(self) -> RateWindow:
        """Return the window an unauthenticated request reports (nothing counted)."""
        world = self.world
        return RateWindow(world.rate_limit_per_minute, 0, max(1, math.ceil(world.rate_limit_window_seconds)))

    # Faults and scripts

    def roll(self, rate: float) -> bool:
        """Return True with probability `rate`, from the seeded fault RNG."""
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def add_script(self, method: str | None, pattern: re.Pattern[str], responses: list[ScriptedResponse]) -> int:
        """Queue canned responses for requests matching method and path regex; return pending count."""
        with self._lock:
            self._scripts.append(_Script(method and method.upper(), pattern, deque(responses)))
            return sum(len(s.responses) for s in self._scripts)

    def take_scripted(self, method: str, path: str) -> ScriptedResponse | None:
        """Pop the next canned response for this request, if a script matches it."""
        with self._lock:
            for script in self._scripts:
                if (script.method in (None, method.upper())) and script.pattern.search(path):
                    response = script.responses.popleft()
                    if not script.responses:
                        self._scripts.remove(script)
                    return response
            return None

    # Actions and what they leave behind

    def trigger(self, contact_list: ContactList, body: Any, received_at: float) -> None:
        """Journal a trigger of the contact list."""
        with self._lock:
            self._record(
                "trigger", received_at, body, contact_list_id=contact_list.id, division_id=contact_list.division_id
            )

    def add_contacts(
        self, contact_list: ContactList, contacts: list[dict[str, Any]], body: Any, received_at: float
    ) -> list[dict[str, Any]]:
        """Upsert contacts by id; journal only the ones new to the list; return them as stored."""
        stored: list[dict[str, Any]] = []
        with self._lock:
            existing = self._contacts.setdefault(contact_list.id, {})
            for contact in contacts:
                contact_id = contact.get("id") or str(uuid.uuid4())
                row = {
                    "id": contact_id,
                    "contactListId": contact_list.id,
                    "data": dict(contact["data"]),
                    "callable": contact.get("callable", True),
                    "phoneNumberStatus": dict(contact.get("phoneNumberStatus") or {}),
                }
                if contact_id not in existing:
                    self._record(
                        "add_contact",
                        received_at,
                        body,
                        contact_list_id=contact_list.id,
                        division_id=contact_list.division_id,
                        contact_id=contact_id,
                    )
                existing[contact_id] = row
                stored.append(dict(row))
        return stored

    def start_campaign(self, campaign: Campaign, body: Any, received_at: float) -> Campaign:
        """Set the campaign on and journal it; return the campaign as it now is."""
        with self._lock:
            self._world = self._world.with_campaign_status(campaign.id, "on")
            self._record(
                "start_campaign",
                received_at,
                body,
                contact_list_id=campaign.contact_list_id,
                campaign_id=campaign.id,
                division_id=campaign.division_id,
            )
            return self._world.campaigns[campaign.id]

    def journal(self) -> list[dict[str, Any]]:
        """Return every accepted action, oldest first."""
        with self._lock:
            return [dict(entry) for entry in self._journal]

    def contacts(self) -> list[dict[str, Any]]:
        """Return every stored contact of every list."""
        with self._lock:
            return [dict(row) for rows in self._contacts.values() for row in rows.values()]

    def log_request(self, method: str, path: str, status: int, received_at: float, client_id: str | None) -> None:
        """Remember one API or token request for timing assertions."""
        entry = {"method": method, "path": path, "status": status, "received_at": received_at, "client_id": client_id}
        with self._lock:
            self._requests.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        """Return the request log, oldest first."""
        with self._lock:
            return [dict(entry) for entry in self._requests]

    def _record(
        self,
        action: str,
        received_at: float,
        body: Any,
        *,
        division_id: str,
        contact_list_id: str | None = None,
        campaign_id: str | None = None,
        contact_id: str | None = None,
    ) -> None:
        entry = {
            "action": action,
            "contact_list_id": contact_list_id,
            "campaign_id": campaign_id,
            "division_id": division_id,
            "contact_id": contact_id,
            "body": body,
            "received_at": received_at,
        }
        self._journal.append(entry)
        log.info(
            "sandbox action accepted",
            extra={k: v for k, v in entry.items() if k not in ("body", "received_at")},
        )
