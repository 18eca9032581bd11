"""modules/mapping's state -> trigger table is the inverse of the receiver's HCP Terraform normalization."""

from __future__ import annotations

import json

import pytest

from .helpers import MODULES, VENDORED_PROVIDER_SCHEMAS, load_module, unquote


def _module_table() -> dict[str, set[str]]:
    for block in load_module(MODULES["mapping"])["locals"]:
        if "state_triggers" in block:
            return {k: {unquote(t) for t in v} for k, v in block["state_triggers"].items() if not k.startswith("__")}
    raise AssertionError("modules/mapping has no local.state_triggers")


def _tfe_triggers() -> list[str]:
    schemas = json.loads(VENDORED_PROVIDER_SCHEMAS.read_text(encoding="utf-8"))
    triggers: list[str] = schemas["tfe"]["resources"]["tfe_notification_configuration"]["triggers"]["allowed_values"]
    return triggers


def test_state_triggers_invert_the_receivers_normalization() -> None:
    hcp = pytest.importorskip("receiver.sources.hcp_terraform")
    from receiver.model import STATES

    expected: dict[str, set[str]] = {s: set() for s in STATES if s != "verification"}
    for trigger in _tfe_triggers():
        states = {hcp.TRIGGERS[trigger]}
        if trigger == "run:errored":  # refined by run_status: failed or canceled
            states |= {"failed", "canceled"}
        if trigger == "workspace:auto_destroy_run_results":  # carries the destroy run's outcome
            states |= set(hcp.DESTROY_RESULTS.values()) | {"failed", "unknown"}
        for state in states:
            expected[state].add(trigger)
    assert _module_table() == expected


def test_every_routable_state_has_an_entry() -> None:
    from receiver.model import STATES

    assert set(_module_table()) == set(STATES) - {"verification"}
