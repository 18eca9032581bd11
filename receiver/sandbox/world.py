"""The fake org the sandbox serves: divisions, roles, clients, contact lists, campaigns, faults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: A grant's division_id that means "every division".
ALL_DIVISIONS = "*"

#: Genesys campaignStatus values.
CAMPAIGN_STATUSES: tuple[str, ...] = ("on", "off", "stopping", "complete", "invalid", "forced_off", "forced_stopping")


@dataclass(frozen=True, slots=True)
class Division:
    """A division: contact lists and campaigns live in one, roles are granted in one."""

    id: str
    name: str
    home: bool = False


@dataclass(frozen=True, slots=True)
class Role:
    """A role: a set of "domain:entity:action" permissions."""

    id: str
    name: str
    permissions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Grant:
    """One role granted to a client in one division (or "*")."""

    role_id: str
    division_id: str


@dataclass(frozen=True, slots=True)
class Client:
    """A client-credentials OAuth client and its role grants."""

    client_id: str
    client_secret: str
    name: str
    grants: tuple[Grant, ...]


@dataclass(frozen=True, slots=True)
class ContactList:
    """An outbound contact list."""

    id: str
    name: str
    division_id: str
    columns: tuple[str, ...]
    phone_columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Campaign:
    """An outbound campaign dialing one contact list."""

    id: str
    name: str
    contact_list_id: str
    division_id: str
    status: str


@dataclass(frozen=True, slots=True)
class Faults:
    """Injected trouble on API calls; everything off by default."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class World:
    """The whole fake org after validation; immutable, replaced as a whole on change."""

    token_ttl: float
    rate_limit_per_minute: int
    rate_limit_window_seconds: float
    organization: dict[str, str]
    divisions: dict[str, Division]
    roles: dict[str, Role]
    clients: dict[str, Client]
    contact_lists: dict[str, ContactList]
    campaigns: dict[str, Campaign]
    faults: Faults
    seed: int | None

    def holds(self, client: Client, permission: str, division_id: str | None) -> bool:
        """Say whether the client holds the permission in the division (None: in any division)."""
        for grant in client.grants:
            if division_id is not None and grant.division_id not in (division_id, ALL_DIVISIONS):
                continue
            role = self.roles.get(grant.role_id)
            if role is not None and any(_grants(p, permission) for p in role.permissions):
                return True
        return False

    def with_campaign_status(self, campaign_id: str, status: str) -> World:
        """Return a copy with one campaign's status changed."""
        campaigns = dict(self.campaigns)
        campaigns[campaign_id] = dataclasses.replace(campaigns[campaign_id], status=status)
        return dataclasses.replace(self, campaigns=campaigns)

    def to_config(self) -> dict[str, Any]:
        """Return the seed dict (DESIGN.md shape, defaults explicit) that parses back to this world."""
        return {
            "token_ttl": self.token_ttl,
            "rate_limit_per_minute": self.rate_limit_per_minute,
            "rate_limit_window_seconds": self.rate_limit_window_seconds,
            "organization": dict(self.organization),
            "divisions": [{"id": d.id, "name": d.name, "home": d.home} for d in self.divisions.values()],
            "roles": [{"id": r.id, "name": r.name, "permissions": list(r.permissions)} for r in self.roles.values()],
            "clients": [
                {
                    "client_id": c.client_id,
                    "client_secret": c.client_secret,
                    "name": c.name,
                    "roles": [{"role_id": g.role_id, "division_id": g.division_id} for g in c.grants],
                }
                for c in self.clients.values()
            ],
            "contact_lists": [
                {
                    "id": cl.id,
                    "name": cl.name,
                    "division_id": cl.division_id,
                    "columns": list(cl.columns),
                    "phone_columns": list(cl.phone_columns),
                }
                for cl in self.contact_lists.values()
            ],
            "campaigns": [
                {
                    "id": c.id,
                    "name": c.name,
                    "contact_list_id": c.contact_list_id,
                    "division_id": c.division_id,
                    "status": c.status,
                }
                for c in self.campaigns.values()
            ],
            "faults": dataclasses.asdict(self.faults),
            "seed": self.seed,
        }


def _grants(granted: str, needed: str) -> bool:
    """Say whether a granted permission (segments may be "*") covers the needed one."""
    have, want = granted.split(":"), needed.split(":")
    return len(have) == len(want) and all(h in ("*", w) for h, w in zip(have, want, strict=True))
