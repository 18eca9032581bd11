"""HTTP endpoints: a short orchestration of the stages, and the one error renderer."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from . import logs
from .errors import (
    BodyTooLargeError,
    PayloadError,
    ReceiverError,
    UnsignedSourceError,
    UnsupportedMediaTypeError,
)
from .model import Enqueued, Event
from .route import route
from .runtime import Runtime
from .sources import SOURCES, Source, get_source

log = logging.getLogger("receiver.intake")
bp = Blueprint("hooks", __name__)

#: Headers that carry a signature or token: sent twice, they make the request ambiguous.
_SIGNATURE_HEADERS = frozenset(
    {"x-tfe-notification-signature", "x-hub-signature-256", "x-gitlab-token", "webhook-signature", "webhook-id",
     "webhook-timestamp"}
)

#: Deepest JSON nesting accepted (published payloads nest under 10 levels). json.loads accepts up to
#: the interpreter's recursion limit, but a value that deep later exhausts it in schema validation and
#: in the error message quoting the value: a RecursionError, answered 500 instead of 400.
MAX_JSON_DEPTH = 64


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["pipedial"]
    return rt


@bp.before_app_request
def _bind_request_id() -> None:
    logs.clear()
    rid = (request.headers.get("X-Request-Id") or "")[:128] or uuid.uuid4().hex
    request.environ["pipedial.request_id"] = rid
    request.environ["pipedial.started"] = time.perf_counter()
    logs.bind(request_id=rid)


@bp.post("/hooks/<source>")
def receive(source: str) -> tuple[Response, int]:
    """Verify, parse, route and durably enqueue one webhook."""
    rt = runtime()
    logs.bind(source=source)
    src = get_source(source)
    rt.metrics.received.labels(source).inc()
    body = _read_body(request, rt.settings.max_body)
    headers = _headers(request)
    _verify(src, body, headers, rt)
    event = src.parse(_decode(body, request, source), headers)
    logs.bind(kind=event.kind, state=event.state, delivery_id=event.delivery_id)
    if event.state == "verification":
        return _ignored(rt, source, "verification delivery: acknowledged, never routed")
    targets = route(event, rt.mapping)
    if not targets:
        return _ignored(rt, source, "no route matches this event")
    event_id = uuid.uuid4().hex
    stored = rt.outbox.enqueue(
        event,
        targets,
        event_id=event_id,
        request_id=request.environ["pipedial.request_id"],
        mapping_version=rt.mapping.version,
        now=time.time(),
    )
    rt.wake_dispatcher()
    return _accepted(rt, source, event, stored)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Answer while the process is alive."""
    return jsonify({"status": "ok"}), 200


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Answer 200 only when the outbox answers and the mapping is loaded."""
    rt = runtime()
    try:
        rt.outbox.ping()
    except ReceiverError as exc:
        return jsonify({"status": "unavailable", "outbox": exc.message}), 503
    return jsonify({"status": "ready", "mapping_version": rt.mapping.version, "routes": len(rt.mapping.routes)}), 200


@bp.get("/metrics")
def metrics() -> Response:
    """Expose Prometheus metrics."""
    rt = runtime()
    rt.refresh_outbox_gauges()
    data, content_type = rt.metrics.render()
    return Response(data, content_type=content_type)


def _read_body(req: Request, max_body: int) -> bytes:
    if req.content_length is not None and req.content_length > max_body:
        raise BodyTooLargeError(f"body of {req.content_length} bytes is over the limit of {max_body}")
    mimetype = req.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json") and not _is_form(req):
        raise UnsupportedMediaTypeError(f"Content-Type must be application/json, not {mimetype or 'none'!r}")
    try:
        return req.get_data(cache=True)
    except RequestEntityTooLarge:
        raise BodyTooLargeError(f"body is over the limit of {max_body} bytes") from None


def _is_form(req: Request) -> bool:
    # GitHub's "application/x-www-form-urlencoded" content type sends the JSON in a `payload` field.
    return req.mimetype == "application/x-www-form-urlencoded" and req.view_args == {"source": "github"}


def _headers(req: Request) -> dict[str, str]:
    """Lower-case the headers; a signature header sent twice is refused, not guessed at."""
    headers: dict[str, str] = {}
    for name, value in req.headers.items():
        key = name.lower()
        if key in headers and key in _SIGNATURE_HEADERS:
            from .errors import SignatureError

            raise SignatureError(f"header {name} is present more than once")
        headers.setdefault(key, value)
    return headers


def _verify(src: Source, body: bytes, headers: dict[str, str], rt: Runtime) -> None:
    secrets = rt.settings.secrets_for(src.NAME)
    if secrets:
        src.verify(body, headers, secrets, now=time.time())
    elif src.NAME not in rt.settings.allow_unsigned:
        env = "RECEIVER_SECRET_" + src.NAME.upper().replace("-", "_")
        raise UnsignedSourceError(
            f"no secret is configured for {src.NAME}: set {env}, or RECEIVER_ALLOW_UNSIGNED={src.NAME} to accept "
            "unsigned deliveries"
        )


def _decode(body: bytes, req: Request, source: str) -> Any:
    if _is_form(req):
        try:
            form = body.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise PayloadError("form-encoded GitHub delivery is not valid UTF-8", json_path="$") from None
        fields = parse_qs(form, keep_blank_values=True)
        if len(fields.get("payload", [])) != 1:
            raise PayloadError("form-encoded GitHub delivery without exactly one payload field", json_path="$")
        body = fields["payload"][0].encode("utf-8")
    try:
        payload = json.loads(body)
    # ValueError covers JSONDecodeError, UnicodeDecodeError and an integer of more than 4300 digits.
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}", json_path="$") from None
    _check_depth(payload)
    return payload


def _check_depth(payload: Any) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH, without recursing (the point is to avoid recursion)."""
    stack: list[tuple[Any, int]] = [(payload, 1)] if isinstance(payload, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise PayloadError(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels", json_path="$")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def _ignored(rt: Runtime, source: str, reason: str) -> tuple[Response, int]:
    rt.metrics.outcomes.labels(source, "ignored").inc()
    _observe_ack(rt, source)
    log.info("webhook ignored", extra={"outcome": "ignored", "reason": reason, "status_code": 200,
                                       "mapping_version": rt.mapping.version, **_duration()})
    return jsonify({"outcome": "ignored", "reason": reason}), 200


def _accepted(rt: Runtime, source: str, event: Event, stored: Enqueued) -> tuple[Response, int]:
    status = 200 if stored.duplicate else 202
    outcome = "duplicate" if stored.duplicate else "accepted"
    rt.metrics.outcomes.labels(source, outcome).inc()
    _observe_ack(rt, source)
    routes = [{"name": j.route, "job_id": j.id, "state": j.state, "duplicate": j.duplicate,
               **({"reason": j.reason} if j.reason else {})} for j in stored.jobs]
    with logs.bound(event_id=stored.event_id):
        log.info(
            "webhook accepted" if not stored.duplicate else "webhook duplicate",
            extra={"outcome": outcome, "status_code": status, "routes": [r["name"] for r in routes],
                   "jobs": [j.id for j in stored.jobs], "dedupe_key": event.dedupe_key,
                   "mapping_version": rt.mapping.version, **_duration()},
        )
    body = {"event_id": stored.event_id, "routes": routes, "duplicate": stored.duplicate}
    return jsonify(body), status


def _observe_ack(rt: Runtime, source: str) -> None:
    started = request.environ.get("pipedial.started")
    if started is not None:
        rt.metrics.ack_seconds.labels(source).observe(time.perf_counter() - started)


def _duration() -> dict[str, float]:
    started = request.environ.get("pipedial.started")
    return {"duration_ms": round((time.perf_counter() - started) * 1000, 3)} if started else {}


def render_error(exc: ReceiverError) -> tuple[Response, int]:
    """Render any ReceiverError as its JSON body and status; log it as a rejection."""
    source = (request.view_args or {}).get("source", "")
    try:
        rt = runtime()
        label = source if source in SOURCES else ("unknown" if source else "-")  # never a label per URL typed
        rt.metrics.rejected.labels(label, exc.code).inc()
    except KeyError:
        pass
    level = logging.ERROR if exc.status_code >= 500 else logging.WARNING
    log.log(level, "webhook rejected", extra={"outcome": "rejected", "status_code": exc.status_code,
                                              "error": exc.code, "reason": exc.message,
                                              "json_path": exc.json_path, **_duration()})
    return jsonify(exc.to_dict()), exc.status_code


def _render_http(exc: HTTPException) -> tuple[Response, int]:
    if isinstance(exc, RequestEntityTooLarge):
        return render_error(BodyTooLargeError("body is over the size limit"))
    code = (exc.name or "error").lower().replace(" ", "_")
    status = exc.code or 500
    return jsonify({"error": code, "message": exc.description, "json_path": None}), status


def _render_unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("unexpected error", extra={"outcome": "error", "status_code": 500, "error": type(exc).__name__})
    body = {"error": "internal_error", "message": "unexpected error; see the receiver's log", "json_path": None}
    return jsonify(body), 500


def init_app(app: Flask) -> None:
    """Register the blueprint and the error renderers."""
    app.register_blueprint(bp)
    app.register_error_handler(ReceiverError, render_error)
    app.register_error_handler(HTTPException, _render_http)
    app.register_error_handler(Exception, _render_unexpected)
