"""The sandbox's seed: load and validate the YAML that describes the fake org, and build its World."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .world import (
    ALL_DIVISIONS,
    CAMPAIGN_STATUSES,
    Campaign,
    Client,
    ContactList,
    Division,
    Faults,
    Grant,
    Role,
    World,
)

#: The packaged seed (same content as examples/sandbox.yaml).
DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.yaml")

_DEFAULT_ORGANIZATION = {"id": "sandbox-org", "name": "Sandbox"}


class SandboxConfigError(ConfigError):
    """The sandbox seed is invalid; `problems` lists every "path: message" to fix."""

    code = "invalid_sandbox_config"

    def __init__(self, source: str, problems: list[str]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"sandbox config {source} is invalid:\n{lines}")
        self.source = source
        self.problems = problems


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a sandbox YAML file, validate it and return it normalized; raise SandboxConfigError."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SandboxConfigError(source, [f"cannot read the file ({exc.strerror or exc})"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SandboxConfigError(source, [f"not valid YAML: {exc}"]) from None
    return parse_config(raw, source).to_config()


def default_config() -> dict[str, Any]:
    """Return a fresh copy of the packaged default seed."""
    return load_config(DEFAULT_CONFIG_PATH)


def parse_config(raw: object, source: str = "<config>") -> World:
    """Validate a seed dict and build the World; raise SandboxConfigError listing every problem."""
    check = _Checker()
    if not isinstance(raw, Mapping):
        raise SandboxConfigError(source, [f"(top level): must be a mapping, got {_kind(raw)}"])
    world = _build(raw, check)
    if check.problems:
        raise SandboxConfigError(source, check.problems)
    return world


def _build(raw: Mapping[str, Any], check: _Checker) -> World:
    divisions: dict[str, Division] = {}
    for path, item in check.items(raw, "divisions"):
        division = Division(
            id=check.text(item, "id", path),
            name=check.text(item, "name", path),
            home=check.flag(item, "home", path),
        )
        check.unique(divisions, division.id, path, division)
    homes = [d.id for d in divisions.values() if d.home]
    if len(homes) > 1:
        check.fail("divisions", f"only one division may be home: true, found {', '.join(homes)}")
    home_id = homes[0] if homes else next(iter(divisions), None)

    roles: dict[str, Role] = {}
    for path, item in check.items(raw, "roles"):
        role = Role(
            id=check.text(item, "id", path),
            name=check.text(item, "name", path),
            permissions=check.strings(item, "permissions", path),
        )
        for i, permission in enumerate(role.permissions):
            if len(permission.split(":")) != 3 or not all(permission.split(":")):
                check.fail(f"{path}.permissions[{i}]", f"{permission!r} is not of the form domain:entity:action")
        check.unique(roles, role.id, path, role)

    clients: dict[str, Client] = {}
    for path, item in check.items(raw, "clients"):
        client_id = check.text(item, "client_id", path)
        grants: list[Grant] = []
        for gpath, grant in check.items(item, "roles", path):
            role_id = check.text(grant, "role_id", gpath)
            division_id = grant.get("division_id", home_id)
            if role_id and role_id not in roles:
                check.fail(f"{gpath}.role_id", f"unknown role {role_id!r}")
            if division_id is None:
                check.fail(f"{gpath}.division_id", "is required (no division is defined)")
            elif not isinstance(division_id, str) or (division_id != ALL_DIVISIONS and division_id not in divisions):
                check.fail(f"{gpath}.division_id", f"unknown division {division_id!r} (use a division id or '*')")
            grants.append(Grant(role_id=role_id, division_id=str(division_id)))
        client = Client(
            client_id=client_id,
            client_secret=check.text(item, "client_secret", path),
            name=check.text(item, "name", path, default=client_id or "client"),
            grants=tuple(grants),
        )
        check.unique(clients, client.client_id, path, client, key="client_id")

    contact_lists: dict[str, ContactList] = {}
    for path, item in check.items(raw, "contact_lists"):
        contact_list = ContactList(
            id=check.text(item, "id", path),
            name=check.text(item, "name", path),
            division_id=check.ref(item, "division_id", path, divisions, "division"),
            columns=check.strings(item, "columns", path),
            phone_columns=check.strings(item, "phone_columns", path, required=False),
        )
        if not contact_list.columns:
            check.fail(f"{path}.columns", "must name at least one column")
        for column in contact_list.phone_columns:
            if column not in contact_list.columns:
                check.fail(f"{path}.phone_columns", f"{column!r} is not one of the columns")
        check.unique(contact_lists, contact_list.id, path, contact_list)

    campaigns: dict[str, Campaign] = {}
    for path, item in check.items(raw, "campaigns"):
        campaign = Campaign(
            id=check.text(item, "id", path),
            name=check.text(item, "name", path),
            contact_list_id=check.ref(item, "contact_list_id", path, contact_lists, "contact list"),
            division_id=check.ref(item, "division_id", path, divisions, "division"),
            status=check.status(item, path),
        )
        check.unique(campaigns, campaign.id, path, campaign)

    return World(
        token_ttl=check.number(raw, "token_ttl", "", 86400, positive=True),
        rate_limit_per_minute=int(check.number(raw, "rate_limit_per_minute", "", 300, positive=True, whole=True)),
        rate_limit_window_seconds=check.number(raw, "rate_limit_window_seconds", "", 60, positive=True),
        organization=_organization(raw, check),
        divisions=divisions,
        roles=roles,
        clients=clients,
        contact_lists=contact_lists,
        campaigns=campaigns,
        faults=_faults(raw, check),
        seed=_seed(raw, check),
    )


def _faults(raw: Mapping[str, Any], check: _Checker) -> Faults:
    item = raw.get("faults")
    if item is None:
        return Faults()
    if not isinstance(item, Mapping):
        check.fail("faults", f"must be a mapping, got {_kind(item)}")
        return Faults()
    d = Faults()
    return Faults(
        error_rate=check.number(item, "error_rate", "faults", d.error_rate, at_most=1.0),
        latency_ms=check.number(item, "latency_ms", "faults", d.latency_ms),
        timeout_rate=check.number(item, "timeout_rate", "faults", d.timeout_rate, at_most=1.0),
        timeout_seconds=check.number(item, "timeout_seconds", "faults", d.timeout_seconds),
    )


def _organization(raw: Mapping[str, Any], check: _Checker) -> dict[str, str]:
    item = raw.get("organization")
    if item is None:
        return dict(_DEFAULT_ORGANIZATION)
    if not isinstance(item, Mapping):
        check.fail("organization", f"must be a mapping, got {_kind(item)}")
        return dict(_DEFAULT_ORGANIZATION)
    return {"id": check.text(item, "id", "organization"), "name": check.text(item, "name", "organization")}


def _seed(raw: Mapping[str, Any], check: _Checker) -> int | None:
    value = raw.get("seed")
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    check.fail("seed", f"must be a whole number, got {_kind(value)}")
    return None


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


class _Checker:
    """Typed reads of a raw seed that record a "path: message" problem instead of raising."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def items(self, raw: Mapping[str, Any], key: str, parent: str = "") -> list[tuple[str, Mapping[str, Any]]]:
        path = f"{parent}.{key}" if parent else key
        value = raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, f"must be a list, got {_kind(value)}")
            return []
        found: list[tuple[str, Mapping[str, Any]]] = []
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                found.append((f"{path}[{i}]", item))
            else:
                self.fail(f"{path}[{i}]", f"must be a mapping, got {_kind(item)}")
        return found

    def text(self, raw: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = raw.get(key, default)
        if isinstance(value, str) and value:
            return value
        if value is None:
            self.fail(f"{path}.{key}", "is required")
        else:
            self.fail(f"{path}.{key}", f"must be a non-empty string, got {_kind(value)} (quote it in YAML)")
        return ""

    def flag(self, raw: Mapping[str, Any], key: str, path: str) -> bool:
        value = raw.get(key, False)
        if isinstance(value, bool):
            return value
        self.fail(f"{path}.{key}", f"must be true or false, got {_kind(value)}")
        return False

    def strings(self, raw: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> tuple[str, ...]:
        value = raw.get(key)
        if value is None:
            if required:
                self.fail(f"{path}.{key}", "is required")
            return ()
        if not isinstance(value, list):
            self.fail(f"{path}.{key}", f"must be a list of strings, got {_kind(value)}")
            return ()
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.fail(f"{path}.{key}[{i}]", f"must be a non-empty string, got {_kind(item)}")
        if len(set(value)) != len(value):
            self.fail(f"{path}.{key}", "has duplicates")
        return tuple(str(v) for v in value)

    def ref(self, raw: Mapping[str, Any], key: str, path: str, known: Mapping[str, object], what: str) -> str:
        value = self.text(raw, key, path)
        if value and value not in known:
            self.fail(f"{path}.{key}", f"unknown {what} {value!r}")
        return value

    def status(self, raw: Mapping[str, Any], path: str) -> str:
        value = raw.get("status", "off")
        if isinstance(value, bool):  # YAML 1.1 reads a bare on/off as a boolean
            value = "on" if value else "off"
        if value in CAMPAIGN_STATUSES:
            return str(value)
        self.fail(f"{path}.status", f"must be one of {', '.join(CAMPAIGN_STATUSES)}, got {_kind(value)}")
        return "off"

    def number(
        self,
        raw: Mapping[str, Any],
        key: str,
        parent: str,
        default: float,
        *,
        positive: bool = False,
        whole: bool = False,
        at_most: float | None = None,
    ) -> float:
        path = f"{parent}.{key}" if parent else key
        value = raw.get(key, default)
        if value is None:
            value = default
        if isinstance(value, bool) or not isinstance(value, int | float) or (whole and not isinstance(value, int)):
            self.fail(path, f"must be a {'whole ' if whole else ''}number, got {_kind(value)}")
            return default
        if value < 0 or (positive and value == 0):
            self.fail(path, f"must be {'greater than 0' if positive else 'at least 0'}, got {value}")
            return default
        if at_most is not None and value > at_most:
            self.fail(path, f"must be at most {at_most}, got {value}")
            return default
        return value

    def unique(self, seen: dict[str, Any], ident: str, path: str, value: object, key: str = "id") -> None:
        if not ident:
            return
        if ident in seen:
            self.fail(f"{path}.{key}", f"duplicate {key} {ident!r}")
            return
        seen[ident] = value
