"""The Genesys Cloud API endpoints pipedial uses (CONTRACT.md §2–§3), with division-aware permissions."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .errors import ApiError, invalid_value, missing_permission, not_found
from .gate import current_state, exchange
from .world import Campaign, Client, ContactList, World

bp = Blueprint("platform", __name__)


@bp.get("/api/v2/tokens/me")
def tokens_me() -> dict[str, Any]:
    """Describe the token's organization and OAuth client (no permission needed)."""
    world, client = _caller()
    return {
        "organization": dict(world.organization),
        "homeOrganization": dict(world.organization),
        "authorizedScope": [],
        "OAuthClient": {
            "id": client.client_id,
            "name": client.name,
            "authorizedGrantType": "CLIENT-CREDENTIALS",
            "roleDivisions": [{"roleId": g.role_id, "divisionId": g.division_id} for g in client.grants],
            "state": "active",
        },
    }


@bp.get("/api/v2/authorization/roles/<role_id>")
def get_role(role_id: str) -> dict[str, Any]:
    """Return a role with its permissions grouped into permissionPolicies."""
    world, client = _caller()
    _require(world, client, "authorization:role:view", None)
    role = world.roles.get(role_id)
    if role is None:
        raise not_found()
    policies: dict[tuple[str, str], list[str]] = {}
    for permission in role.permissions:
        domain, entity, action = permission.split(":")
        policies.setdefault((domain, entity), []).append(action)
    return {
        "id": role.id,
        "name": role.name,
        "permissionPolicies": [
            {"domain": domain, "entityName": entity, "actionSet": actions}
            for (domain, entity), actions in policies.items()
        ],
    }


@bp.get("/api/v2/outbound/contactlists/<contact_list_id>")
def get_contact_list(contact_list_id: str) -> dict[str, Any]:
    """Return a contact list with its division, columns and phone columns."""
    world, client = _caller()
    contact_list = _contact_list(world, contact_list_id)
    _require(world, client, "outbound:contactList:view", contact_list.division_id)
    return {
        "id": contact_list.id,
        "name": contact_list.name,
        "division": _division(world, contact_list.division_id),
        "columnNames": list(contact_list.columns),
        "phoneColumns": [{"columnName": c, "type": "cell"} for c in contact_list.phone_columns],
    }


@bp.get("/api/v2/outbound/campaigns/<campaign_id>")
def get_campaign(campaign_id: str) -> dict[str, Any]:
    """Return a campaign with its status, contact list and division."""
    world, client = _caller()
    campaign = _campaign(world, campaign_id)
    _require(world, client, "outbound:campaign:view", campaign.division_id)
    return _campaign_body(world, campaign)


@bp.post("/api/v2/outbound/contactlists/<contact_list_id>/trigger")
def trigger(contact_list_id: str) -> tuple[dict[str, Any], int]:
    """Accept a trigger of the contact list (any JSON body or none) and journal it."""
    world, client = _caller()
    contact_list = _contact_list(world, contact_list_id)
    _require(world, client, "outbound:contactList:edit", contact_list.division_id)
    body = _json_body()
    current_state().trigger(contact_list, body, exchange().received_at)
    return {"contactListId": contact_list.id, "status": "accepted", "correlationId": exchange().correlation_id}, 202


@bp.post("/api/v2/outbound/contactlists/<contact_list_id>/contacts")
def add_contacts(contact_list_id: str) -> Response:
    """Add (or, for a known id, update) contacts in the list; a new contact is journaled once."""
    world, client = _caller()
    contact_list = _contact_list(world, contact_list_id)
    _require(world, client, "outbound:contact:add", contact_list.division_id)
    body = _json_body()
    if not isinstance(body, list) or not body:
        raise ApiError(400, "bad.request", "The request body must be a non-empty JSON array of contacts.")
    for i, contact in enumerate(body):
        _check_contact(contact_list, contact, i)
    stored = current_state().add_contacts(contact_list, body, body, exchange().received_at)
    return jsonify(stored)


@bp.post("/api/v2/outbound/campaigns/<campaign_id>/start")
def start_campaign(campaign_id: str) -> dict[str, Any]:
    """Start the campaign (status "on") and journal it."""
    world, client = _caller()
    campaign = _campaign(world, campaign_id)
    _require(world, client, "outbound:campaign:start", campaign.division_id)
    started = current_state().start_campaign(campaign, _json_body(), exchange().received_at)
    return _campaign_body(current_state().world, started)


def _caller() -> tuple[World, Client]:
    """Return the current org and the client the (already verified) bearer token belongs to."""
    world = current_state().world
    token = exchange().token
    client = world.clients.get(token.client_id) if token is not None else None
    if client is None:
        raise ApiError(401, "bad.credentials", "Invalid login credentials.")
    return world, client


def _require(world: World, client: Client, permission: str, division_id: str | None) -> None:
    if not world.holds(client, permission, division_id):
        raise missing_permission(permission)


def _contact_list(world: World, contact_list_id: str) -> ContactList:
    contact_list = world.contact_lists.get(contact_list_id)
    if contact_list is None:
        raise not_found()
    return contact_list


def _campaign(world: World, campaign_id: str) -> Campaign:
    campaign = world.campaigns.get(campaign_id)
    if campaign is None:
        raise not_found()
    return campaign


def _division(world: World, division_id: str) -> dict[str, str]:
    division = world.divisions.get(division_id)
    return {"id": division_id, "name": division.name if division else division_id}


def _campaign_body(world: World, campaign: Campaign) -> dict[str, Any]:
    contact_list = world.contact_lists.get(campaign.contact_list_id)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "campaignStatus": campaign.status,
        "contactList": {"id": campaign.contact_list_id, "name": contact_list.name if contact_list else ""},
        "division": _division(world, campaign.division_id),
    }


def _json_body() -> Any:
    """Return the request's JSON body, None when empty; 400 bad.request when it is not JSON."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "bad.request", "The request body is not valid JSON.") from None


def _check_contact(contact_list: ContactList, contact: object, index: int) -> None:
    """Raise 400 invalid.value unless the contact is a WritableDialerContact for this list."""
    where = f"[{index}]"

    def bad(field: str, message: str) -> ApiError:
        return invalid_value(
            message, field=f"{where}.{field}", entity_id=contact_list.id, entity_name=contact_list.name
        )

    if not isinstance(contact, dict):
        raise ApiError(400, "bad.request", f"Contact {where} must be a JSON object.")
    contact_id = contact.get("id")
    if contact_id is not None and (not isinstance(contact_id, str) or not contact_id):
        raise bad("id", f"Contact {where}: id must be a non-empty string.")
    if contact.get("contactListId") != contact_list.id:
        raise bad(
            "contactListId",
            f"Contact {where}: contactListId {contact.get('contactListId')!r} does not match the contact list "
            f"{contact_list.id!r} of the path.",
        )
    data = contact.get("data")
    if not isinstance(data, dict) or not data:
        raise bad("data", f"Contact {where}: data must be a non-empty object of column values.")
    for column, value in data.items():
        if column not in contact_list.columns:
            raise bad(
                f"data.{column}",
                f"Contact {where}: {column!r} is not a column of contact list {contact_list.id!r} "
                f"(columns: {', '.join(contact_list.columns)}).",
            )
        if isinstance(value, dict | list):
            raise bad(f"data.{column}", f"Contact {where}: the value of {column!r} must be a string.")
    if "callable" in contact and not isinstance(contact["callable"], bool):
        raise bad("callable", f"Contact {where}: callable must be true or false.")
    statuses = contact.get("phoneNumberStatus")
    if statuses is not None:
        if not isinstance(statuses, dict):
            raise bad("phoneNumberStatus", f"Contact {where}: phoneNumberStatus must be an object.")
        for column in statuses:
            if column not in contact_list.phone_columns:
                raise bad(
                    f"phoneNumberStatus.{column}",
                    f"Contact {where}: {column!r} is not a phone column of contact list {contact_list.id!r}.",
                )
