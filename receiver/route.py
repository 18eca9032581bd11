"""The mapping file: load and check it once at start-up, then route events to targets."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import MappingError
from .model import Event, Target

_DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Route:
    """One route of the mapping: compiled matchers and the target they lead to."""

    name: str
    matchers: tuple[tuple[str, re.Pattern[str]], ...]
    target: Target
    continue_: bool = False

    def matches(self, event: Event) -> bool:
        for field, pattern in self.matchers:
            value = getattr(event, field)
            if value is None or pattern.fullmatch(value) is None:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Mapping:
    """A loaded, checked mapping file."""

    routes: tuple[Route, ...]
    version: str  # short hash of the file's bytes: logged as mapping_version
    path: str

    def targets(self) -> list[Target]:
        return [r.target for r in self.routes]


def route(event: Event, mapping: Mapping) -> list[Target]:
    """Return the targets of the routes the event matches, in order (first match wins unless continue)."""
    found: list[Target] = []
    for r in mapping.routes:
        if r.matches(event):
            found.append(r.target)
            if not r.continue_:
                break
    return found


@cache
def _validator() -> jsonschema.Draft202012Validator:
    text = resources.files("receiver.schemas").joinpath("mapping.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def load_mapping(path: str | Path) -> Mapping:
    """Read, validate and compile a YAML or JSON mapping file; raise MappingError listing every problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise MappingError(str(p), [("$", f"cannot read file: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(raw) if p.suffix.lower() != ".json" else json.loads(raw)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(str(p), [("$", f"not valid YAML/JSON: {exc}")]) from None
    return compile_mapping(data, path=str(p), version=hashlib.sha256(raw).hexdigest()[:12])


def compile_mapping(data: Any, *, path: str = "<mapping>", version: str | None = None) -> Mapping:
    """Validate decoded mapping data and compile its routes."""
    errors = sorted({_describe(err) for err in _validator().iter_errors(data)})
    if errors:
        raise MappingError(path, errors)
    errors.extend(_semantic_errors(data))
    if errors:
        raise MappingError(path, errors)
    defaults = data.get("defaults", {})
    routes = tuple(_compile_route(r, defaults) for r in data["routes"])
    if version is None:
        version = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    return Mapping(routes=routes, version=version, path=path)


def _describe(err: jsonschema.ValidationError) -> tuple[str, str]:
    """Return (json_path, message), preferring the most telling sub-error of oneOf/anyOf."""
    if err.context:
        best = jsonschema.exceptions.best_match(err.context)
        if best is not None:
            return best.json_path, best.message
    return err.json_path, err.message


def parse_duration(value: str | int) -> float:
    """Return seconds for a duration such as 30s, 10m, 1h30m, 0 or a bare integer."""
    if isinstance(value, int):
        return float(value)
    if value == "0":
        return 0.0
    total = 0.0
    pos = 0
    for m in _DURATION.finditer(value):
        if m.start() != pos:
            raise ValueError(f"bad duration {value!r}")
        total += int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(value) or pos == 0:
        raise ValueError(f"bad duration {value!r}")
    return total


def _semantic_errors(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Check what JSON Schema cannot: unique names, a division for every target, known placeholders."""
    from .contact import validate_template

    errors: list[tuple[str, str]] = []
    default_division = data.get("defaults", {}).get("division_id")
    seen: dict[str, int] = {}
    for i, r in enumerate(data["routes"]):
        where = f"$.routes[{i}]"
        if r["name"] in seen:
            errors.append((f"{where}.name", f"duplicate route name {r['name']!r} (also routes[{seen[r['name']]}])"))
        seen.setdefault(r["name"], i)
        target = r["target"]
        if "division_id" not in target and default_division is None:
            errors.append((f"{where}.target", "no division_id here and no defaults.division_id"))
        for message in validate_template(target.get("contact") or {}):
            errors.append((f"{where}.target.contact", message))
    return errors


def _compile_route(r: dict[str, Any], defaults: dict[str, Any]) -> Route:
    t = r["target"]
    cooldown = t.get("cooldown", defaults.get("cooldown", 0))
    target = Target(
        route=r["name"],
        action=t["action"],
        division_id=t.get("division_id", defaults.get("division_id")),
        contact_list_id=t.get("contact_list_id"),
        campaign_id=t.get("campaign_id"),
        contact=dict(t["contact"]) if t.get("contact") else None,
        cooldown_seconds=parse_duration(cooldown),
    )
    matchers = tuple((field, _compile_globs(value)) for field, value in r["match"].items())
    return Route(name=r["name"], matchers=matchers, target=target, continue_=bool(r.get("continue", False)))


def _compile_globs(value: str | Sequence[str]) -> re.Pattern[str]:
    globs = [value] if isinstance(value, str) else list(value)
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))
