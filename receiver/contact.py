"""Contact templates: render a route's `contact:` columns from an Event, and derive a stable contact id.

A template value is a string with `{field}` placeholders naming Event fields (`{workspace}`,
`{state}`, `{message}`, ...); a field that is None renders as "". Literal braces are written `{{`
and `}}`. Only plain field names are allowed: no attribute or index access, no conversions, no
format specs; templates are parsed with string.Formatter and never evaluated. Every rendered value
is capped at MAX_VALUE characters.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping
from dataclasses import fields

from .model import Event, Target

#: Longest rendered column value; longer values are cut (the platform limits field sizes).
MAX_VALUE = 1000

#: Event fields a template may name.
EVENT_FIELDS: frozenset[str] = frozenset(f.name for f in fields(Event))

_FORMATTER = string.Formatter()


def _parse(value: str) -> list[tuple[str, str | None]]:
    """Split one template value into (literal, field-or-None) pieces; raise ValueError if malformed."""
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in _FORMATTER.parse(value):
        if name is not None:
            if name == "" or not name.isidentifier():
                raise ValueError(f"placeholder {{{name}}} is not a plain field name")
            if spec or conversion:
                raise ValueError(f"placeholder {{{name}}} may not carry a conversion or format spec")
        pieces.append((literal, name))
    return pieces


def template_fields(template: Mapping[str, str]) -> set[str]:
    """Return every field name the template's placeholders use (malformed values are skipped)."""
    names: set[str] = set()
    for value in template.values():
        try:
            names.update(name for _, name in _parse(value) if name is not None)
        except ValueError:
            continue
    return names


def validate_template(template: Mapping[str, str]) -> list[str]:
    """Return one message per problem in the template (empty when it is valid)."""
    errors: list[str] = []
    for column, value in template.items():
        if not isinstance(column, str) or not column.strip():
            errors.append(f"column name {column!r} must be a non-empty string")
            continue
        if not isinstance(value, str):
            errors.append(f"{column}: value must be a string, not {type(value).__name__}")
            continue
        try:
            pieces = _parse(value)
        except ValueError as exc:
            errors.append(f"{column}: {exc} (write literal braces as {{{{ and }}}})")
            continue
        for _, name in pieces:
            if name is not None and name not in EVENT_FIELDS:
                errors.append(f"{column}: unknown placeholder {{{name}}}; use one of {', '.join(sorted(EVENT_FIELDS))}")
    return errors


def render_contact(template: Mapping[str, str], event: Event) -> dict[str, str]:
    """Render every column of the template from the event; raise ValueError on an invalid template."""
    errors = validate_template(template)
    if errors:
        raise ValueError("invalid contact template: " + "; ".join(errors))
    values = event.to_dict()
    data: dict[str, str] = {}
    for column, value in template.items():
        parts: list[str] = []
        for literal, name in _parse(value):
            parts.append(literal)
            if name is not None:
                field_value = values.get(name)
                parts.append("" if field_value is None else str(field_value))
        data[column] = "".join(parts)[:MAX_VALUE]
    return data


def contact_id(target: Target, event: Event) -> str:
    """Return the stable contact id of this target and state change: a retried add is an upsert."""
    key = "\x1f".join((target.route, target.key, event.dedupe_key))
    return "pd-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
