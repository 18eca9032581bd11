"""Helpers for the source tests: fixture loading, payload surgery and hypothesis strategies."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

DATA = Path(__file__).resolve().parent.parent / "data"

#: Any value json.loads can return (NaN and infinities included: Python's decoder accepts them).
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def load(source: str, name: str) -> Any:
    """Return the decoded JSON of tests/data/<source>/<name>."""
    return json.loads((DATA / source / name).read_text(encoding="utf-8"))


def signed_example(source: str) -> tuple[bytes, dict[str, str], str]:
    """Return (raw body, headers as the sender spelled them, secret) of a signed-example.json."""
    example = load(source, "signed-example.json")
    return example["body"].encode("utf-8"), dict(example["headers"]), example["secret"]


def lowered(headers: dict[str, str]) -> dict[str, str]:
    """Return headers with lower-case names, as the view hands them to verify() and parse()."""
    return {name.lower(): value for name, value in headers.items()}


def flip_byte(data: bytes, index: int = -2) -> bytes:
    """Return data with one byte changed."""
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def flip_char(value: str, index: int = 12) -> str:
    """Return value with one hex or base64 character changed to another valid one (away from base64 padding)."""
    replacement = "0" if value[index] != "0" else "1"
    return value[:index] + replacement + value[index + 1 :]


def with_values(payload: Any, **changes: Any) -> Any:
    """Return a deep copy of payload with the given paths set; a path is keys joined by "__" (a__b__0__c=value)."""
    result = copy.deepcopy(payload)
    for dotted, value in changes.items():
        keys: list[str | int] = [int(k) if k.isdigit() else k for k in dotted.split("__")]
        node = result
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return result


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def mutations(payload: Any) -> st.SearchStrategy[Any]:
    """Strategy: payload with one node replaced by any JSON value, or one object member deleted."""
    paths = _paths(payload)

    @st.composite
    def mutate(draw: st.DrawFn) -> Any:
        path = draw(st.sampled_from(paths))
        if not path:
            return draw(JSON_VALUES)
        result = copy.deepcopy(payload)
        parent = result
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
        return result

    return mutate()
