"""The mapping file: validation with JSON paths, ordered routing, globs, lists, defaults, continue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from receiver.errors import MappingError
from receiver.model import Event
from receiver.route import compile_mapping, load_mapping, parse_duration, route

REPO = Path(__file__).resolve().parent.parent


def _event(**fields: Any) -> Event:
    base: dict[str, Any] = {"source": "hcp-terraform", "kind": "run:errored", "state": "failed", "dedupe_key": "k"}
    base.update(fields)
    return Event(**base)


def _mapping(*routes: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"version": 1, "routes": list(routes)}
    if defaults is not None:
        data["defaults"] = defaults
    return data


def _route(name: str, match: dict[str, Any], **target: Any) -> dict[str, Any]:
    t = {"action": "trigger", "contact_list_id": f"cl-{name}", "division_id": "div-1", **target}
    return {"name": name, "match": match, "target": t}


def test_example_mapping_is_valid() -> None:
    mapping = load_mapping(REPO / "examples" / "mapping.yaml")
    assert [r.name for r in mapping.routes][0] == "hcp-run-problem"
    assert len(mapping.version) == 12


def test_first_match_wins() -> None:
    m = compile_mapping(_mapping(_route("a", {"state": "failed"}), _route("b", {"state": "failed"})))
    assert [t.route for t in route(_event(), m)] == ["a"]


def test_continue_fans_out_to_the_next_match() -> None:
    first = {**_route("a", {"state": "failed"}), "continue": True}
    m = compile_mapping(_mapping(first, _route("b", {"source": "nope"}), _route("c", {})))
    assert [t.route for t in route(_event(), m)] == ["a", "c"]


@pytest.mark.parametrize(
    ("match", "fields", "expected"),
    [
        ({"workspace": "prod-*"}, {"workspace": "prod-eu"}, True),
        ({"workspace": "prod-*"}, {"workspace": "staging"}, False),
        ({"workspace": "prod-*"}, {"workspace": None}, False),
        ({"workspace": ["a", "b?"]}, {"workspace": "bx"}, True),
        ({"state": ["failed", "drifted"]}, {"state": "drifted"}, True),
        ({"state": ["failed", "drifted"]}, {"state": "succeeded"}, False),
        ({"branch": "release/*"}, {"branch": "release/1.2"}, True),
        ({"source": "hcp-terraform", "organization": "acme*"}, {"organization": "acme-org"}, True),
        ({"source": "github", "organization": "acme*"}, {"organization": "acme-org"}, False),
        ({}, {}, True),
        ({"workspace": "PROD"}, {"workspace": "prod"}, False),
    ],
)
def test_globs_and_lists(match: dict[str, Any], fields: dict[str, Any], expected: bool) -> None:
    m = compile_mapping(_mapping(_route("r", match)))
    assert bool(route(_event(**fields), m)) is expected


def test_defaults_fill_division_and_cooldown() -> None:
    r = {"name": "r", "match": {}, "target": {"action": "trigger", "contact_list_id": "cl"}}
    m = compile_mapping(_mapping(r, defaults={"division_id": "div-home", "cooldown": "10m"}))
    (target,) = route(_event(), m)
    assert target.division_id == "div-home"
    assert target.cooldown_seconds == 600


def test_route_cooldown_overrides_default() -> None:
    r = _route("r", {}, cooldown="30s")
    m = compile_mapping(_mapping(r, defaults={"cooldown": "1h"}))
    assert m.routes[0].target.cooldown_seconds == 30


def test_every_error_is_listed_with_its_json_path() -> None:
    bad = _mapping(
        {"name": "a", "match": {"state": "exploded"}, "target": {"action": "ring"}},
        {"name": "b", "match": {"colour": "red"}, "target": {"action": "trigger", "division_id": "d"}},
    )
    with pytest.raises(MappingError) as info:
        compile_mapping(bad)
    paths = {p for p, _ in info.value.errors}
    assert "$.routes[0].match.state" in paths
    assert "$.routes[0].target.action" in paths
    assert "$.routes[1].match" in paths  # unknown key colour
    assert "$.routes[1].target" in paths  # trigger without contact_list_id
    messages = dict(info.value.errors)
    assert "'exploded' is not one of" in messages["$.routes[0].match.state"]


def test_missing_division_without_default_is_an_error() -> None:
    r = {"name": "r", "match": {}, "target": {"action": "trigger", "contact_list_id": "cl"}}
    with pytest.raises(MappingError) as info:
        compile_mapping(_mapping(r))
    assert info.value.errors == [("$.routes[0].target", "no division_id here and no defaults.division_id")]


def test_duplicate_route_names_are_refused() -> None:
    with pytest.raises(MappingError) as info:
        compile_mapping(_mapping(_route("a", {}), _route("a", {})))
    assert info.value.errors[0][0] == "$.routes[1].name"


def test_unknown_template_placeholder_is_refused() -> None:
    r = _route("a", {}, action="add_contact", contact={"Phone": "+1555", "Reason": "{nonsense}"})
    with pytest.raises(MappingError) as info:
        compile_mapping(_mapping(r))
    assert info.value.errors[0][0] == "$.routes[0].target.contact"
    assert "nonsense" in info.value.errors[0][1]


def test_add_contact_needs_a_contact_template() -> None:
    r = _route("a", {}, action="add_contact")
    with pytest.raises(MappingError) as info:
        compile_mapping(_mapping(r))
    assert info.value.errors[0][0] == "$.routes[0].target"


def test_start_campaign_needs_a_campaign() -> None:
    r = {"name": "a", "match": {}, "target": {"action": "start_campaign", "division_id": "d"}}
    with pytest.raises(MappingError):
        compile_mapping(_mapping(r))


def test_json_mapping_files_load(tmp_path: Path) -> None:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(_mapping(_route("a", {"state": "failed"}))))
    assert load_mapping(path).routes[0].name == "a"


def test_unreadable_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: [unclosed")
    with pytest.raises(MappingError, match="not valid YAML"):
        load_mapping(bad)


def test_version_changes_with_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_mapping(_route("a", {}))))
    b.write_text(json.dumps(_mapping(_route("b", {}))))
    assert load_mapping(a).version != load_mapping(b).version


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("30s", 30), ("10m", 600), ("1h30m", 5400), (45, 45),
                                               ("1d", 86400), ("500ms", 0.5)])
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "10x", "1h 30m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
