"""The /sandbox/ endpoints (no auth): journal, request log, reset, scripted responses, live state changes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .errors import AdminError
from .gate import current_state
from .seed import SandboxConfigError
from .state import PATCHABLE, ScriptedResponse

bp = Blueprint("admin", __name__, url_prefix="/sandbox")


@bp.get("/journal")
def journal() -> Response:
    """Return every accepted action, oldest first."""
    return jsonify(current_state().journal())


@bp.get("/requests")
def requests_log() -> Response:
    """Return every API and token request, oldest first."""
    return jsonify(current_state().requests())


@bp.get("/contacts")
def contacts() -> Response:
    """Return every contact stored in any list."""
    return jsonify(current_state().contacts())


@bp.post("/reset")
def reset() -> dict[str, bool]:
    """Restore the seeded state; clear journal, request log, scripts and contacts."""
    current_state().reset()
    return {"reset": True}


@bp.post("/expire-tokens")
def expire_tokens() -> dict[str, int]:
    """Make every issued token expired."""
    return {"expired": current_state().expire_tokens()}


@bp.get("/state")
def get_state() -> dict[str, Any]:
    """Return the current seed (with live campaign statuses)."""
    return current_state().world.to_config()


@bp.patch("/state")
def patch_state() -> dict[str, Any]:
    """Replace the given top-level seed keys live."""
    changes = _json_object()
    unknown = sorted(set(changes) - PATCHABLE)
    if unknown:
        raise AdminError(f"cannot patch {', '.join(unknown)}; patchable keys: {', '.join(sorted(PATCHABLE))}")
    try:
        world = current_state().patch(changes)
    except SandboxConfigError as exc:
        raise AdminError("the patched state is invalid", exc.problems) from None
    return world.to_config()


@bp.post("/script")
def script() -> dict[str, int]:
    """Answer the next API requests matching method and path regex with these responses, in order."""
    spec = _json_object()
    method = spec.get("method")
    if method is not None and (not isinstance(method, str) or not method):
        raise AdminError("method must be an HTTP method such as POST")
    path = spec.get("path")
    if not isinstance(path, str) or not path:
        raise AdminError("path must be a regular expression matched against the request path")
    try:
        pattern = re.compile(path)
    except re.error as exc:
        raise AdminError(f"path is not a valid regular expression: {exc}") from None
    items = spec.get("responses")
    if not isinstance(items, list) or not items:
        raise AdminError("responses must be a non-empty list of {status, code?, message?, headers?, body?}")
    responses = [_scripted(item, i) for i, item in enumerate(items)]
    pending = current_state().add_script(method, pattern, responses)
    return {"scripted": len(responses), "pending": pending}


def _scripted(item: object, index: int) -> ScriptedResponse:
    where = f"responses[{index}]"
    if not isinstance(item, Mapping):
        raise AdminError(f"{where} must be an object")
    status = item.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
        raise AdminError(f"{where}.status must be an HTTP status from 200 to 599")
    for key in ("code", "message"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise AdminError(f"{where}.{key} must be a string")
    headers = item.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise AdminError(f"{where}.headers must be an object")
    body = item.get("body")
    if body is not None and not isinstance(body, dict):
        raise AdminError(f"{where}.body must be an object")
    return ScriptedResponse(
        status=status,
        code=item.get("code"),
        message=item.get("message"),
        headers={str(k): str(v) for k, v in headers.items()},
        body=body,
    )


def _json_object() -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise AdminError("the body must be a JSON object")
    return data
