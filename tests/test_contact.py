"""Contact templates: rendering from Event fields, validation at mapping load, stable contact ids."""

from __future__ import annotations

import pytest

from receiver.contact import MAX_VALUE, contact_id, render_contact, template_fields, validate_template
from receiver.model import Event, Target

EVENT = Event(
    source="hcp-terraform",
    kind="run:errored",
    state="failed",
    dedupe_key="nc-1:run-1:run:errored:2026-01-01",
    workspace="prod-network",
    message="apply failed",
)
TARGET = Target(route="prod", action="add_contact", division_id="div-ops", contact_list_id="cl-oncall")


def test_placeholders_take_event_fields_and_none_renders_empty() -> None:
    template = {
        "Phone": "+15550100",
        "Workspace": "{workspace}",
        "Reason": "{state}: {message}",
        "Repo": "{repository}",
    }
    assert render_contact(template, EVENT) == {
        "Phone": "+15550100",
        "Workspace": "prod-network",
        "Reason": "failed: apply failed",
        "Repo": "",
    }


def test_literal_braces_are_written_doubled() -> None:
    assert render_contact({"Note": "{{literal}} {state}"}, EVENT) == {"Note": "{literal} failed"}


def test_values_are_capped() -> None:
    event = Event(source="s", kind="k", state="failed", dedupe_key="d", message="x" * 5000)
    assert len(render_contact({"Reason": "{message}"}, event)["Reason"]) == MAX_VALUE


def test_template_fields_lists_placeholders() -> None:
    assert template_fields({"A": "{state}: {message}", "B": "plain", "C": "{{no}}"}) == {"state", "message"}


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("{nope}", "unknown placeholder {nope}"),
        ("{state.__class__}", "not a plain field name"),
        ("{0}", "not a plain field name"),
        ("{}", "not a plain field name"),
        ("{state!r}", "conversion or format spec"),
        ("{state:>99999}", "conversion or format spec"),
        ("{state", "literal braces"),
        ("state}", "literal braces"),
    ],
)
def test_invalid_templates_are_reported(value: str, needle: str) -> None:
    errors = validate_template({"Reason": value})
    assert len(errors) == 1 and needle in errors[0] and errors[0].startswith("Reason:")


def test_valid_template_has_no_errors() -> None:
    assert validate_template({"Phone": "+1555", "Reason": "{state} in {workspace} ({url})"}) == []


def test_render_refuses_an_invalid_template() -> None:
    with pytest.raises(ValueError, match="unknown placeholder"):
        render_contact({"Reason": "{secret_sauce}"}, EVENT)


def test_contact_id_is_stable_and_distinct() -> None:
    first = contact_id(TARGET, EVENT)
    assert first == contact_id(TARGET, EVENT)
    assert first.startswith("pd-") and len(first) == 35
    other_event = Event(source="hcp-terraform", kind="run:errored", state="failed", dedupe_key="other")
    other_route = Target(route="other", action="add_contact", division_id="div-ops", contact_list_id="cl-oncall")
    assert contact_id(TARGET, other_event) != first
    assert contact_id(other_route, EVENT) != first
