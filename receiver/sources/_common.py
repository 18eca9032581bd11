"""Helpers the source modules share: schema loading, validation, safe field access, Event building."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from ..errors import PayloadError
from ..model import Event

#: Longest value kept per Event field; longer sender text is cut, so a payload cannot bloat storage.
LIMITS: dict[str, int] = {"kind": 128, "message": 1000, "url": 2048, "occurred_at": 64}
TEXT_LIMIT = 256
_ERROR_HEAD, _ERROR_TAIL = 100, 250


def load_schema(name: str) -> dict[str, Any]:
    """Read receiver/schemas/<name>.schema.json."""
    package = __name__.split(".", 1)[0]
    path = resources.files(package).joinpath("schemas", f"{name}.schema.json")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def compile_schema(schema: Mapping[str, Any], entry: str | None = None) -> Validator:
    """Check and compile a schema, or the entry of its $defs named `entry`, into a validator."""
    root = dict(schema)
    if entry is not None:
        root["$ref"] = f"#/$defs/{entry}"
    Draft202012Validator.check_schema(root)
    return Draft202012Validator(_inline_refs(root))


_DEFS_REF = "#/$defs/"
#: Keywords that change how references below them resolve: such a definition is never inlined.
_SCOPE_KEYWORDS = frozenset({"$id", "$anchor", "$dynamicAnchor", "$dynamicRef"})


def _inline_refs(root: dict[str, Any]) -> dict[str, Any]:
    """Replace each bare {"$ref": "#/$defs/name"} by a copy of that definition (same validation).

    The validator resolves a $ref on every use, and that lookup was half the cost of validating a
    payload. Recursive definitions, definitions with their own scope and $refs with sibling keywords
    stay references; $defs itself is kept, so anything left still resolves.
    """
    defs = root.get("$defs")
    if not isinstance(defs, dict):
        return root

    def scoped(node: Any) -> bool:
        if isinstance(node, dict):
            return bool(_SCOPE_KEYWORDS & node.keys()) or any(scoped(v) for v in node.values())
        if isinstance(node, list):
            return any(scoped(v) for v in node)
        return False

    def walk(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if len(node) == 1 and isinstance(ref, str) and ref.startswith(_DEFS_REF):
            name = ref[len(_DEFS_REF) :]
            target = defs.get(name)
            if "/" not in name and "~" not in name and name not in seen and isinstance(target, dict) \
                    and not scoped(target):
                return walk(target, seen | {name})
        return {k: (v if k == "$defs" else walk(v, seen)) for k, v in node.items()}

    return dict(walk(root, frozenset()))


def validate(validator: Validator, payload: object, what: str) -> dict[str, Any]:
    """Return payload as a dict if it satisfies the validator, else raise PayloadError with its JSON path."""
    error = best_match(validator.iter_errors(cast(Any, payload)))
    if error is not None:
        detail = error.message
        if len(detail) > _ERROR_HEAD + _ERROR_TAIL:  # it quotes the offending value first, the reason last
            detail = f"{detail[:_ERROR_HEAD]} ... {detail[-_ERROR_TAIL:]}"
        raise PayloadError(f"not a {what} payload: {detail}", json_path=error.json_path)
    if not isinstance(payload, dict):  # every schema here requires an object; this narrows the type
        raise PayloadError(f"not a {what} payload: expected a JSON object", json_path="$")
    return payload


def dig(value: object, *keys: str) -> object:
    """Return value[k1][k2]..., or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def first(*values: object) -> object:
    """Return the first value that is a non-empty string or a number, else None."""
    for value in values:
        if text(value) is not None:
            return value
    return None


def text(value: object, limit: int = TEXT_LIMIT) -> str | None:
    """Return value as bounded, storable text (ids become strings), or None for absent or empty."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float) and value.is_integer():
        value = str(int(value))
    if not isinstance(value, str):
        return None
    # NUL is refused by PostgreSQL text and a lone surrogate by every UTF-8 encoder: neither may reach storage.
    value = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8").strip()
    return value[:limit] or None


def digest(*parts: object) -> str:
    """Return a stable key for parts: sha256 hex of their canonical JSON encoding."""
    encoded = json.dumps(parts, ensure_ascii=True, separators=(",", ":"), sort_keys=True, default=str)
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()


def event(
    source: str,
    *,
    kind: object,
    state: str,
    dedupe_key: str,
    delivery_id: object = None,
    organization: object = None,
    workspace: object = None,
    project: object = None,
    repository: object = None,
    branch: object = None,
    environment: object = None,
    run_id: object = None,
    url: object = None,
    actor: object = None,
    message: object = None,
    occurred_at: object = None,
) -> Event:
    """Build an Event whose fields are all bounded text or None."""
    return Event(
        source=source,
        kind=text(kind, LIMITS["kind"]) or source,
        state=state,
        dedupe_key=dedupe_key,
        delivery_id=text(delivery_id),
        organization=text(organization),
        workspace=text(workspace),
        project=text(project),
        repository=text(repository),
        branch=text(branch),
        environment=text(environment),
        run_id=text(run_id),
        url=text(url, LIMITS["url"]),
        actor=text(actor),
        message=text(message, LIMITS["message"]),
        occurred_at=text(occurred_at, LIMITS["occurred_at"]),
    )
