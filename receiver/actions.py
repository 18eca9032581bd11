"""The one table of platform actions: the call each makes and the permission it needs.

The Terraform role (terraform/modules/permissions) is checked against this table by a test.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Action:
    """One platform action a route can ask for."""

    name: str
    method: str
    path: str  # formatted with contact_list_id= or campaign_id=
    permission: str
    subject: str  # "contact_list" or "campaign": what the path's id names
    query: str = ""


ACTIONS: dict[str, Action] = {
    "trigger": Action(
        name="trigger",
        method="POST",
        path="/api/v2/outbound/contactlists/{contact_list_id}/trigger",
        permission="outbound:contactList:edit",
        subject="contact_list",
    ),
    "add_contact": Action(
        name="add_contact",
        method="POST",
        path="/api/v2/outbound/contactlists/{contact_list_id}/contacts",
        query="priority=true",
        permission="outbound:contact:add",
        subject="contact_list",
    ),
    "start_campaign": Action(
        name="start_campaign",
        method="POST",
        path="/api/v2/outbound/campaigns/{campaign_id}/start",
        permission="outbound:campaign:start",
        subject="campaign",
    ),
}

#: Read-only permissions preflight uses (GET contact list, GET campaign, GET role).
PREFLIGHT_PERMISSIONS: tuple[str, ...] = (
    "outbound:contactList:view",
    "outbound:campaign:view",
    "authorization:role:view",
)


def permissions_for(actions: set[str] | frozenset[str]) -> list[str]:
    """Return the sorted permissions a client needs for these actions plus preflight."""
    needed = {ACTIONS[a].permission for a in actions} | set(PREFLIGHT_PERMISSIONS)
    return sorted(needed)
