"""Plain data passed between the stages: Event, Target, Job, Attempt, Outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: The normalized lifecycle states every source maps to (DESIGN.md, "Event").
STATES: tuple[str, ...] = (
    "created",
    "running",
    "needs_approval",
    "applying",
    "succeeded",
    "failed",
    "canceled",
    "drifted",
    "check_failed",
    "destroy_scheduled",
    "verification",
    "unknown",
)

#: Event fields a mapping route may match on.
MATCH_FIELDS: tuple[str, ...] = (
    "source",
    "kind",
    "state",
    "organization",
    "workspace",
    "project",
    "repository",
    "branch",
    "environment",
)

#: Job states in the outbox.
JOB_STATES: tuple[str, ...] = (
    "pending",
    "in_flight",
    "delivered",
    "dead",
    "suppressed",
    "stale",
)


@dataclass(frozen=True, slots=True)
class Event:
    """One state change of one sender, normalized."""

    source: str
    kind: str
    state: str
    dedupe_key: str
    delivery_id: str | None = None
    organization: str | None = None
    workspace: str | None = None
    project: str | None = None
    repository: str | None = None
    branch: str | None = None
    environment: str | None = None
    run_id: str | None = None
    url: str | None = None
    actor: str | None = None
    message: str | None = None
    occurred_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # Every field is text or None: a plain copy, several times cheaper than asdict()'s deep copy.
        return {name: getattr(self, name) for name in _EVENT_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class Target:
    """Where a routed event goes: one platform action on one contact list or campaign."""

    route: str
    action: str  # a key of receiver.actions.ACTIONS
    division_id: str
    contact_list_id: str | None = None
    campaign_id: str | None = None
    contact: dict[str, str] | None = None  # add_contact: column -> template
    cooldown_seconds: float = 0.0

    @property
    def key(self) -> str:
        """Identify the platform object acted on, for dedupe and cooldown."""
        obj = self.campaign_id if self.action == "start_campaign" else self.contact_list_id
        return f"{self.action}:{obj}"

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _TARGET_FIELDS}
        if self.contact is not None:
            data["contact"] = dict(self.contact)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


_EVENT_FIELDS = tuple(f.name for f in fields(Event))
_TARGET_FIELDS = tuple(f.name for f in fields(Target))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one job against the platform."""

    number: int
    started_at: float  # unix seconds
    duration_ms: float
    outcome: str  # delivered | retry | dead
    status_code: int | None = None
    correlation_id: str | None = None
    error_code: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the platform said about one action, classified."""

    kind: str  # delivered | retry | dead
    status_code: int | None = None
    correlation_id: str | None = None
    error_code: str | None = None
    message: str | None = None
    retry_after: float | None = None  # seconds, from Retry-After
    diagnosis: dict[str, str] | None = None  # {"cause", "fix"} when dead
    contact_id: str | None = None


@dataclass(slots=True)
class Job:
    """One target of one event, as stored in the outbox."""

    id: int
    event_id: str
    route: str
    target: Target
    event: Event
    state: str
    attempts: int = 0
    next_attempt_at: float = 0.0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    request_id: str | None = None
    mapping_version: str | None = None
    diagnosis: dict[str, str] | None = None
    reason: str | None = None  # why suppressed or stale
    history: list[Attempt] = field(default_factory=list)
    replayed_attempts: int = 0  # attempts made before the last replay: the retry budget counts from here

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = self.target.to_dict()
        data["event"] = self.event.to_dict()
        return data


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A job created (or found already present) by one enqueue."""

    id: int
    route: str
    state: str
    duplicate: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The result of storing one event and its targets."""

    event_id: str
    duplicate: bool  # nothing new was stored: a redelivery or the same state change again
    jobs: list[StoredJob]


@dataclass
class Pruned:
    """What one prune deleted."""

    events: int = 0
    jobs: int = 0
    attempts: int = 0
