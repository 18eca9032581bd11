"""The `receiver` command line: serve, worker, check-mapping, explain, preflight, outbox, sandbox."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import ConfigError, MappingError, PayloadError, ReceiverError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
        return code
    except MappingError as exc:
        _err(str(exc))
        return 1
    except ConfigError as exc:
        _err(f"configuration error: {exc.message}")
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="receiver", description=__doc__)
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the HTTP receiver under gunicorn, with embedded delivery")
    s.add_argument("--host", help="bind address (default RECEIVER_HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default RECEIVER_PORT or 8080)")
    s.add_argument("--workers", type=int, help="gunicorn worker processes (default RECEIVER_WORKERS or 2)")
    s.set_defaults(func=_serve)

    w = sub.add_parser("worker", help="run a standalone delivery worker (no HTTP)")
    w.set_defaults(func=_worker)

    c = sub.add_parser("check-mapping", help="validate a mapping file; exit 1 listing every error")
    c.add_argument("path", nargs="?", help="mapping file (default RECEIVER_MAPPING)")
    c.set_defaults(func=_check_mapping)

    e = sub.add_parser("explain", help="show how a payload normalizes and routes (no signature check, no side effects)")
    e.add_argument("--source", required=True, help="hcp-terraform, github, gitlab or standard")
    e.add_argument("--header", action="append", default=[], metavar="'Name: value'", help="a request header")
    e.add_argument("--mapping", help="mapping file (default RECEIVER_MAPPING)")
    e.add_argument("payload", help="payload file (JSON), or - for standard input")
    e.set_defaults(func=_explain)

    f = sub.add_parser("preflight", help="check token, rights, contact lists, divisions behind every route")
    f.add_argument("--mapping", help="mapping file (default RECEIVER_MAPPING)")
    f.add_argument("--json", action="store_true", help="print the report as JSON")
    f.add_argument("--log", action="store_true", help="log each check as a JSON audit line (what serve does)")
    f.set_defaults(func=_preflight)

    o = sub.add_parser("outbox", help="inspect, replay and prune outbox jobs")
    osub = o.add_subparsers(title="outbox commands", metavar="ACTION")
    ol = osub.add_parser("list", help="list jobs, newest first")
    ol.add_argument("--state", help="pending, in_flight, delivered, dead, suppressed or stale")
    ol.add_argument("--limit", type=int, default=50)
    ol.add_argument("--json", action="store_true")
    ol.set_defaults(func=_outbox_list)
    os_ = osub.add_parser("show", help="one job with its attempts and diagnosis (JSON)")
    os_.add_argument("id", type=int)
    os_.set_defaults(func=_outbox_show)
    orp = osub.add_parser("replay", help="make a job (or every dead job) pending again, keeping its history")
    grp = orp.add_mutually_exclusive_group(required=True)
    grp.add_argument("id", type=int, nargs="?")
    grp.add_argument("--dead", action="store_true", help="replay every dead job")
    orp.set_defaults(func=_outbox_replay)
    opr = osub.add_parser("prune", help="delete delivered, suppressed and stale jobs, their events and attempts, "
                                        "once old enough")
    opr.add_argument("--older-than", type=float, default=PRUNE_DEFAULT_DAYS, metavar="DAYS",
                     help=f"received at least this many days ago (default {PRUNE_DEFAULT_DAYS:g}, "
                          f"at least {PRUNE_MIN_DAYS:g})")
    opr.set_defaults(func=_outbox_prune)

    sb = sub.add_parser("sandbox", help="run the local platform stand-in")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=int, default=8081)
    sb.add_argument("--config", help="sandbox YAML (default: the packaged example)")
    sb.set_defaults(func=_sandbox)
    return p


#: `outbox prune`: how old a finished event must be by default, and at least. Dedupe needs a webhook's
#: event for as long as it may be sent again: GitHub lets people redeliver for 3 days, and senders retry
#: for up to about as long.
PRUNE_DEFAULT_DAYS = 30.0
PRUNE_MIN_DAYS = 7.0
_DAY = 86400.0


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _settings() -> Settings:
    return Settings.from_env()


def _mapping_path(arg: str | None, settings: Settings | None = None) -> Path | None:
    if arg:
        return Path(arg)
    s = settings or _settings()
    return s.mapping_path


def _serve(args: argparse.Namespace) -> int:
    from .server import serve

    settings = _settings()
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.workers is not None:
        overrides["workers"] = args.workers
    serve(settings.replace(**overrides) if overrides else settings)
    return 0


def _worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .deliver import run_worker
    from .logs import configure_logging
    from .outbox import open_outbox
    from .platform import PlatformClient

    settings = _settings()
    configure_logging(settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    outbox = open_outbox(settings.database_url)
    try:
        run_worker(settings, outbox, PlatformClient(settings), stop)
    finally:
        outbox.close()
    return 0


def _check_mapping(args: argparse.Namespace) -> int:
    from .route import load_mapping

    path = _mapping_path(args.path)
    if path is None:
        _err("no mapping file: give a PATH or set RECEIVER_MAPPING")
        return 1
    try:
        mapping = load_mapping(path)
    except MappingError as exc:
        _err(f"{exc.path}: invalid")
        for json_path, message in exc.errors:
            _err(f"  {json_path}: {message}")
        return 1
    print(f"{path}: ok, {len(mapping.routes)} route(s), version {mapping.version}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from .route import load_mapping, route
    from .sources import get_source

    try:
        src = get_source(args.source)
    except ReceiverError as exc:
        _err(exc.message)
        return 2
    headers: dict[str, str] = {}
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            _err(f"--header {h!r}: use 'Name: value'")
            return 2
        headers[name.strip().lower()] = value.strip()
    try:
        raw = sys.stdin.buffer.read() if args.payload == "-" else Path(args.payload).read_bytes()
    except OSError as exc:
        _err(f"cannot read {args.payload}: {exc.strerror}")
        return 2
    try:
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise PayloadError(f"not valid JSON: {exc}", json_path="$") from None
        event = src.parse(payload, headers)
    except PayloadError as exc:
        _err(f"invalid payload at {exc.json_path}: {exc.message}")
        return 2
    routes: list[dict[str, Any]] = []
    path = _mapping_path(args.mapping)
    if path is None:
        _err("note: no mapping given (--mapping or RECEIVER_MAPPING); showing the event only")
    elif event.state != "verification":
        mapping = load_mapping(path)
        routes = [
            {"name": t.route, "action": t.action, "contact_list_id": t.contact_list_id,
             "campaign_id": t.campaign_id, "division_id": t.division_id}
            for t in route(event, mapping)
        ]
    print(json.dumps({"event": event.to_dict(), "routes": routes}, indent=2))
    return 0


def _preflight(args: argparse.Namespace) -> int:
    from .logs import configure_logging
    from .preflight import format_report, run_preflight
    from .route import load_mapping

    settings = _settings()
    path = _mapping_path(args.mapping, settings)
    if args.log:
        from .server import log_preflight

        configure_logging(settings.log_level)
        return 0 if log_preflight(settings.replace(mapping_path=path)) else 1
    configure_logging("WARNING", stderr=True)
    if path is None:
        _err("no mapping file: give --mapping or set RECEIVER_MAPPING")
        return 1
    report = run_preflight(settings, load_mapping(path))
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.ok else 1


def _open_outbox() -> Any:
    from .outbox import open_outbox

    return open_outbox(_settings().database_url)


def _iso(ts: float | None) -> str:
    return "" if not ts else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _outbox_list(args: argparse.Namespace) -> int:
    from .model import JOB_STATES

    if args.state and args.state not in JOB_STATES:
        _err(f"unknown state {args.state!r}; use one of {', '.join(JOB_STATES)}")
        return 2
    box = _open_outbox()
    try:
        jobs = box.list_jobs(state=args.state, limit=args.limit)
    finally:
        box.close()
    if args.json:
        print(json.dumps([j.to_dict() for j in jobs], indent=2))
        return 0
    print(f"{'ID':>6}  {'STATE':<10} {'ATT':>3}  {'CREATED':<20} {'ROUTE':<24} {'ACTION':<14} TARGET / CAUSE")
    for j in jobs:
        obj = j.target.campaign_id if j.target.action == "start_campaign" else j.target.contact_list_id
        cause = (j.diagnosis or {}).get("cause") or j.reason or ""
        print(f"{j.id:>6}  {j.state:<10} {j.attempts:>3}  {_iso(j.created_at):<20} {j.route:<24} "
              f"{j.target.action:<14} {obj}  {cause}")
    return 0


def _outbox_show(args: argparse.Namespace) -> int:
    box = _open_outbox()
    try:
        job = box.get(args.id)
    finally:
        box.close()
    if job is None:
        _err(f"no job {args.id}")
        return 1
    print(json.dumps(job.to_dict(), indent=2))
    return 0


def _outbox_replay(args: argparse.Namespace) -> int:
    box = _open_outbox()
    try:
        if args.dead:
            n = box.replay_dead(now=time.time())
            print(f"{n} dead job(s) made pending again")
            return 0
        try:
            job = box.replay(args.id, now=time.time())
        except KeyError:
            _err(f"no job {args.id}")
            return 1
        except ValueError as exc:
            _err(str(exc))
            return 1
        print(f"job {job.id} is pending again (attempts so far: {job.attempts})")
        return 0
    finally:
        box.close()


def _outbox_prune(args: argparse.Namespace) -> int:
    days: float = args.older_than
    if not days >= PRUNE_MIN_DAYS:
        _err(f"--older-than {days:g}: at least {PRUNE_MIN_DAYS:g} days, or a sender's redelivery of a pruned "
             "webhook would be taken for a new one and call again")
        return 2
    settings = _settings()
    if settings.mapping_path is not None:
        from .route import load_mapping

        longest = max((t.cooldown_seconds for t in load_mapping(settings.mapping_path).targets()), default=0.0)
        if days * _DAY < longest:
            _err(f"--older-than {days:g}: the mapping has a cooldown of {longest / _DAY:g} days, which counts the "
                 "jobs of that long ago; prune older ones only")
            return 2
    before = time.time() - days * _DAY
    box = _open_outbox()
    try:
        pruned = box.prune(before=before)
    finally:
        box.close()
    print(f"pruned {pruned.events} event(s) received before {_iso(before)}, with {pruned.jobs} job(s) and "
          f"{pruned.attempts} attempt(s); pending, in-flight and dead jobs are kept")
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from .logs import configure_logging
    from .sandbox.server import serve

    configure_logging("INFO")
    serve(args.host, args.port, args.config)
    return 0
