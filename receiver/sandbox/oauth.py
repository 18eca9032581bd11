"""POST /oauth/token: the client-credentials grant (CONTRACT.md §2)."""

from __future__ import annotations

from flask import Blueprint, request

from .errors import OAuthError
from .gate import current_state

bp = Blueprint("oauth", __name__)


@bp.post("/oauth/token")
def issue_token() -> dict[str, object]:
    """Exchange HTTP Basic client_id:client_secret for a bearer token."""
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        client_id, secret = auth.username or "", auth.password or ""
    else:
        client_id, secret = request.form.get("client_id", ""), request.form.get("client_secret", "")
    if not client_id:
        raise OAuthError(
            401, "invalid_client", "client authentication is required (HTTP Basic client_id:client_secret)"
        )
    state = current_state()
    check = state.check_client(client_id, secret)
    if check == "unknown_client":
        raise OAuthError(400, "invalid_client", "client not found")
    if check == "bad_secret":
        raise OAuthError(401, "invalid_client", "authentication failed")
    grant = request.form.get("grant_type", "")
    if grant != "client_credentials":
        raise OAuthError(
            400, "unsupported_grant_type", f"grant type {grant!r} is not supported; use client_credentials"
        )
    token, ttl = state.issue_token(client_id)
    return {"access_token": token, "token_type": "bearer", "expires_in": int(ttl) if ttl >= 1 else ttl}
