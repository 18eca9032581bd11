"""create_sandbox_app: wire state, request gate, blueprints and error rendering into one Flask app."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from . import admin, api, oauth
from .errors import AdminError, ApiError, OAuthError
from .gate import TOKEN_PATH, begin_request, exchange, finish_request, is_admin
from .state import SandboxState

log = logging.getLogger(__name__)


def create_sandbox_app(config: Mapping[str, Any]) -> Flask:
    """Build the sandbox platform app seeded from a config dict; raise SandboxConfigError if invalid."""
    app = Flask("receiver.sandbox")
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False
    app.extensions["sandbox"] = SandboxState(config)
    app.before_request(begin_request)
    app.after_request(finish_request)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(OAuthError, _oauth_error)
    app.register_error_handler(AdminError, _admin_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _api_error(exc: ApiError) -> Response:
    response = jsonify(exc.body(exchange().correlation_id))
    response.status_code = exc.status
    response.headers.update(exc.headers)
    return response


def _oauth_error(exc: OAuthError) -> Response:
    response = jsonify(exc.body())
    response.status_code = exc.status
    response.headers.update(exc.headers)
    return response


def _admin_error(exc: AdminError) -> Response:
    response = jsonify(exc.body())
    response.status_code = 400
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if is_admin(request.path):
        response = jsonify({"error": exc.name.lower().replace(" ", "_"), "message": exc.description, "problems": []})
        response.status_code = status
        return response
    if request.path == TOKEN_PATH:
        return _oauth_error(OAuthError(status, "invalid_request", exc.description or exc.name))
    return _api_error(ApiError(status))


def _unexpected_error(exc: Exception) -> Response:
    log.exception("sandbox request failed", extra={"path": request.path})
    return _api_error(ApiError(500))
