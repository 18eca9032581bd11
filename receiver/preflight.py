"""Preflight: check the token, the client's roles per division, and every route's target, read-only.

`run_preflight(settings, mapping)` makes only the token request and GET calls (each distinct GET once
per run) and returns a Report of Checks; `format_report(report)` renders it for a terminal. Every
failing check names its route (or None for the token and the client), the cause and the fix.

Order: token → client (GET /api/v2/tokens/me) → roles (GET each role the client holds) → per route:
the contact list or campaign (division, the action's permission in that real division) → add_contact:
template columns and the campaign dialing the list → trigger: a warning that Genesys Cloud has no
such endpoint. The OAuth client's rights come from roles granted per division, never from scopes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from .actions import ACTIONS
from .config import REGIONS, Settings
from .diagnose import explain
from .errors import PlatformError, TokenError
from .model import Target
from .platform import PlatformClient, PlatformResponse, PlatformTimeoutError
from .route import Mapping

Status = Literal["ok", "fail", "warn"]

#: Said wherever a missing permission is reported (same words as receiver/diagnose.py).
SCOPES_NOTE = "OAuth scopes do not matter for a client-credentials client: only the roles granted to it per division do"

#: How the shipped Terraform (terraform/) fixes each cause: kept here, in one place, in step with it.
TF_ENV = "Terraform: `terraform output -raw receiver_env` writes them"
TF_GRANTS = (
    "Terraform grants the role in every division the routes name (target.division_id or division_name in "
    "var.routes, else var.default_division_id)"
)
TF_ROLE = "Terraform: the role's permission_policies follow the routes' actions (modules/permissions): terraform apply"

#: A grant's division id (and a permission segment) that means "all".
ALL = "*"

_VIEW_PERMISSION = {"contact_list": "outbound:contactList:view", "campaign": "outbound:campaign:view"}
_ROLE_VIEW = "authorization:role:view"
_SUBJECT_NAME = {"contact_list": "contact list", "campaign": "campaign"}
_ID_FIELD = {"contact_list": "contact_list_id", "campaign": "campaign_id"}
_PERMISSIONS_IN_MESSAGE = re.compile(r"\[([^\]]+)\]")


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked for which route, and, when not ok, cause and fix."""

    route: str | None
    check: str
    status: Status
    detail: str
    cause: str | None = None
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the check as JSON-ready data."""
        return asdict(self)


@dataclass(slots=True)
class Report:
    """Every check of one preflight run, in order."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return whether no check failed (warnings allowed)."""
        return not self.failures

    @property
    def failures(self) -> list[Check]:
        """Return the failed checks."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        """Return the checks that passed with a warning."""
        return [c for c in self.checks if c.status == "warn"]

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "ok": self.ok,
            "failures": len(self.failures),
            "warnings": len(self.warnings),
            "checks": [c.to_dict() for c in self.checks],
        }


def run_preflight(settings: Settings, mapping: Mapping, *, client: PlatformClient | None = None) -> Report:
    """Check the token, the client's rights and every route's target; only the token request and GETs."""
    own = client is None
    platform = client if client is not None else PlatformClient(settings)
    try:
        return _Preflight(settings, platform).run([r.target for r in mapping.routes])
    finally:
        if own:
            platform.close()


def format_report(report: Report) -> str:
    """Render the report as a ROUTE | CHECK | STATUS | DETAIL table, then one line per failure and warning."""
    rows = [("ROUTE", "CHECK", "STATUS", "DETAIL")]
    rows += [(c.route or "-", c.check, c.status.upper(), c.detail) for c in report.checks]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join([*(r[i].ljust(widths[i]) for i in range(3)), r[3]]).rstrip() for r in rows]
    lines.insert(1, "-+-".join([*("-" * w for w in widths), "-" * 6]))
    for title, checks in (("failures", report.failures), ("warnings", report.warnings)):
        if checks:
            lines += ["", f"{len(checks)} {title if len(checks) > 1 else title[:-1]}:"]
            lines += [f"  {_summary_line(c)}" for c in checks]
    f, w = len(report.failures), len(report.warnings)
    verdict = "ok" if report.ok else f"FAILED ({f} failure{'s' if f != 1 else ''})"
    lines += ["", f"preflight {verdict}: {len(report.checks)} checks, {w} warning{'s' if w != 1 else ''}"]
    return "\n".join(lines)


def _summary_line(c: Check) -> str:
    """Return "route X: cause — fix" for one failing or warning check."""
    cause = c.cause or c.detail
    prefix = f"route {c.route}" if c.route else c.check
    text = cause if cause.startswith((f"{prefix} ", f"{prefix}:")) else f"{prefix}: {cause}"
    return f"{text} — {c.fix}" if c.fix else text


@dataclass(frozen=True, slots=True)
class _Grant:
    """One role granted to the client in one division; patterns None when the role could not be read."""

    role_id: str
    role_name: str
    division_id: str
    patterns: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class _Fetched:
    """A cached GET: the response, or the error that kept it from being answered."""

    response: PlatformResponse | None
    error: PlatformError | None = None


def covers(pattern: str, permission: str) -> bool:
    """Return whether a granted permission pattern (segments may be "*") covers the needed permission."""
    have, want = pattern.split(":"), permission.split(":")
    return len(have) == len(want) and all(h in (ALL, w) for h, w in zip(have, want, strict=True))


def role_permissions(body: Any) -> tuple[str, ...]:
    """Return "domain:entity:action" patterns of a role body's permissionPolicies (and plain permissions)."""
    found: list[str] = []
    if not isinstance(body, dict):
        return ()
    for policy in body.get("permissionPolicies") or []:
        if not isinstance(policy, dict):
            continue
        domain, entity = policy.get("domain") or ALL, policy.get("entityName") or ALL
        for action in policy.get("actionSet") or []:
            found.append(f"{domain}:{entity}:{action}")
    for permission in body.get("permissions") or []:
        if isinstance(permission, str) and permission.count(":") == 2:
            found.append(permission)
    return tuple(dict.fromkeys(found))


def _terraform_policy(permission: str) -> str:
    """Return the Terraform permission_policies block that grants the permission."""
    domain, entity, action = permission.split(":")
    return f'permission_policies {{ domain = "{domain}", entity_name = "{entity}", action_set = ["{action}"] }}'


def _sub(body: dict[str, Any], key: str) -> dict[str, Any]:
    """Return body[key] when it is an object, else {}."""
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def _join(items: Iterable[str]) -> str:
    """Return items joined with commas, or "none"."""
    listed = list(items)
    return ", ".join(listed) if listed else "none"


class _Preflight:
    """One preflight run: its client, GET cache, what was learned about divisions and roles, and checks."""

    def __init__(self, settings: Settings, client: PlatformClient) -> None:
        self.settings = settings
        self.client = client
        self.report = Report()
        self.cache: dict[tuple[str, str], _Fetched] = {}
        self.division_names: dict[str, str] = {}
        self.grants: list[_Grant] = []
        self.client_name = settings.client_id or "?"

    def add(
        self,
        route: str | None,
        check: str,
        status: Status,
        detail: str,
        cause: str | None = None,
        fix: str | None = None,
    ) -> None:
        """Append one check to the report."""
        self.report.checks.append(Check(route, check, status, detail, cause, fix))

    def run(self, targets: Sequence[Target]) -> Report:
        """Run every check in order and return the report."""
        skipped = self.check_token_and_client()
        if skipped is not None:
            for t in targets:
                self.add(
                    t.route,
                    "route",
                    "fail",
                    f"skipped: {skipped}",
                    f"route {t.route} could not be checked: {skipped}",
                    f"fix the {'token' if skipped == 'no token' else 'client'} check above, then run preflight again",
                )
            return self.report
        for g in self.grants:  # fetch everything first, so division names seen anywhere label every line
            self.fetch("role", g.role_id)
        for t in targets:
            for subject, object_id in self.objects_of(t):
                self.fetch(subject, object_id)
        self.check_roles()
        for t in targets:
            self.check_route(t)
        return self.report

    # Token and client

    def check_token_and_client(self) -> str | None:
        """Check that a token can be had and read the client's role grants; return why routes are skipped."""
        s = self.settings
        missing = [n for n, v in (("ID", s.client_id), ("SECRET", s.client_secret)) if not v]
        if missing:
            names = " and ".join(f"GENESYSCLOUD_OAUTHCLIENT_{n}" for n in missing)
            self.add(
                None,
                "token",
                "fail",
                f"{names} not set",
                f"no OAuth client credentials: {names} {'is' if len(missing) == 1 else 'are'} not set",
                f"set {names} (or the _FILE variant) to the OAuth client's id and secret ({TF_ENV})",
            )
            return "no token"
        try:
            response = self.client.request("GET", "/api/v2/tokens/me")
        except TokenError as exc:
            self.add(None, "token", "fail", str(exc), *self.token_failure(exc))
            return "no token"
        except PlatformError as exc:
            self.add(None, "token", "ok", f"token issued by {self.host(s.login_base)}")
            self.add(None, "client", "fail", str(exc), *self.api_unreachable(exc))
            return "platform API unreachable"
        self.add(None, "token", "ok", f"token issued by {self.host(s.login_base)} for client {s.client_id}")
        return self.read_client(response)

    def token_failure(self, exc: TokenError) -> tuple[str, str]:
        """Return (cause, fix) for a token that could not be had."""
        s = self.settings
        if exc.error == "invalid_client" or exc.http_status == 401:
            return (
                f"{exc}; client id {s.client_id}",
                f"check GENESYSCLOUD_OAUTHCLIENT_ID/SECRET ({TF_ENV}): they must be the id and secret of an OAuth "
                f"client of the org in GENESYSCLOUD_REGION ({s.region})",
            )
        if exc.error in ("unreachable", "timeout"):
            return f"cannot get a token: {exc}", self.region_hint("login")
        if exc.error == "unauthorized_client":
            text = explain("token_unauthorized_client", error=str(exc))
            return text["cause"], text["fix"]
        if exc.error == "invalid_request" or exc.retryable:
            text = explain("token_throttled", error=str(exc))
            return text["cause"], text["fix"] + "; then run preflight again"
        text = explain("token_failed", error=str(exc))
        return text["cause"], text["fix"]

    def region_hint(self, host: Literal["login", "api"]) -> str:
        """Return the fix naming the region and the host it selects (and any URL override)."""
        s = self.settings
        domain = REGIONS.get(s.region, "?")
        hint = f"wrong GENESYSCLOUD_REGION ({s.region} → {host}.{domain})? set it to the org's region"
        override = s.login_url if host == "login" else s.api_url
        if override:
            name = "GENESYSCLOUD_LOGIN_URL" if host == "login" else "GENESYSCLOUD_API_URL"
            hint += f"; {name}={override} overrides the region's host: check or unset it"
        elif host == "login" and s.api_url:
            hint += f"; the login host is derived from GENESYSCLOUD_API_URL={s.api_url}: set GENESYSCLOUD_LOGIN_URL"
        return hint + "; and check this host can reach it (DNS, proxy, firewall)"

    def api_unreachable(self, exc: PlatformError) -> tuple[str, str]:
        """Return (cause, fix) when the API host does not answer although a token was issued."""
        kind = "did not answer in time" if isinstance(exc, PlatformTimeoutError) else "cannot be reached"
        return f"the API host {self.host(self.settings.api_base)} {kind}: {exc}", self.region_hint("api")

    @staticmethod
    def host(url: str) -> str:
        """Return the host[:port] of a URL."""
        return urlsplit(url).netloc or url

    def read_client(self, response: PlatformResponse) -> str | None:
        """Read OAuthClient.roleDivisions from GET /api/v2/tokens/me; return why routes are skipped."""
        body = response.body if isinstance(response.body, dict) else {}
        if not response.ok:
            if response.status == 401:
                cause = (
                    f"GET /api/v2/tokens/me answered 401 {response.error_code or ''} with a fresh token: the API host "
                    f"{self.host(self.settings.api_base)} does not accept tokens from the login host "
                    f"{self.host(self.settings.login_base)}"
                )
                fix = "GENESYSCLOUD_API_URL and GENESYSCLOUD_LOGIN_URL must be the hosts of one region; " + (
                    self.region_hint("api")
                )
            else:
                cause, fix = self.unexpected(response, "GET /api/v2/tokens/me")
            self.add(None, "client", "fail", f"GET /api/v2/tokens/me answered {response.status}", cause, fix)
            return "the client could not be read"
        oauth = body.get("OAuthClient")
        if not isinstance(oauth, dict):
            self.add(
                None,
                "client",
                "fail",
                "token has no OAuthClient",
                "GET /api/v2/tokens/me names no OAuthClient: the token was not issued to a client-credentials client",
                "use an OAuth client with authorized_grant_type = CLIENT-CREDENTIALS "
                "(GENESYSCLOUD_OAUTHCLIENT_ID/SECRET)",
            )
            return "the client could not be read"
        self.client_name = str(oauth.get("name") or oauth.get("id") or self.client_name)
        for rd in oauth.get("roleDivisions") or []:
            if isinstance(rd, dict) and rd.get("roleId"):
                role_id, division_id = str(rd["roleId"]), str(rd.get("divisionId") or "home")
                self.grants.append(_Grant(role_id=role_id, role_name=role_id, division_id=division_id, patterns=()))
        return None

    def check_roles(self) -> None:
        """GET each role the client holds; report the client's grants, then each role."""
        if not self.grants:
            self.add(
                None,
                "client",
                "fail",
                f"client {self.client_name} holds no role",
                f"OAuth client {self.client_name} holds no role in any division, so every action will answer 403 "
                f"({SCOPES_NOTE})",
                f"grant the client the pipedial role in the divisions of its contact lists ({TF_GRANTS}: "
                "terraform apply)",
            )
            return
        fetched = {role_id: self.fetch("role", role_id) for role_id in dict.fromkeys(g.role_id for g in self.grants)}
        readable: dict[str, tuple[str, tuple[str, ...] | None]] = {}
        for role_id, got in fetched.items():
            r = got.response
            if r is not None and r.ok:
                body = r.body if isinstance(r.body, dict) else {}
                readable[role_id] = (str(body.get("name") or role_id), role_permissions(body))
            else:
                readable[role_id] = (role_id, None)
        self.grants = [
            _Grant(g.role_id, readable[g.role_id][0], g.division_id, readable[g.role_id][1]) for g in self.grants
        ]
        held = _join(f"{g.role_name} in {self.division(g.division_id)}" for g in self.grants)
        self.add(None, "client", "ok", f"client {self.client_name} holds role {held}")
        for role_id, got in fetched.items():
            name, patterns = readable[role_id]
            if patterns is not None:
                where = _join(self.division(g.division_id) for g in self.grants if g.role_id == role_id)
                self.add(None, "role", "ok", f"role {name} ({role_id}): {len(patterns)} permissions, held in {where}")
                continue
            r = got.response
            if r is not None and r.status == 403:
                cause = (
                    f"client {self.client_name} cannot read its role {role_id} ({self.answer(got)}): it lacks "
                    f"{_ROLE_VIEW}, so preflight cannot tell which permissions the role grants"
                )
                fix = (
                    f"add {_ROLE_VIEW} to the client's role (the Terraform role always includes it: terraform apply; "
                    f"its block: {_terraform_policy(_ROLE_VIEW)})"
                )
            elif r is not None and r.status == 404:
                cause = f"client {self.client_name} holds role {role_id}, but GET role {role_id} answered 404"
                fix = "run terraform apply so the OAuth client holds the pipedial role, or remove the stale grant"
            else:
                cause, fix = self.unexpected_fetch(got, f"GET role {role_id}")
            self.add(None, "role", "fail", f"cannot read role {role_id}: {self.answer(got)}", cause, fix)

    # Fetching

    def fetch(self, subject: str, object_id: str) -> _Fetched:
        """GET a role, contact list or campaign once per run; remember division names it reveals."""
        key = (subject, object_id)
        if key in self.cache:
            return self.cache[key]
        getter = {
            "role": self.client.get_role,
            "contact_list": self.client.get_contact_list,
            "campaign": self.client.get_campaign,
        }[subject]
        try:
            got = _Fetched(getter(object_id))
        except PlatformError as exc:
            got = _Fetched(None, exc)
        self.cache[key] = got
        if got.response is not None and got.response.ok and isinstance(got.response.body, dict):
            div = got.response.body.get("division")
            if isinstance(div, dict) and div.get("id") and div.get("name"):
                self.division_names[str(div["id"])] = str(div["name"])
        return got

    @staticmethod
    def objects_of(t: Target) -> list[tuple[str, str]]:
        """Return the (subject, id) pairs a route's checks read."""
        found: list[tuple[str, str]] = []
        action = ACTIONS.get(t.action)
        if action is not None and action.subject == "contact_list" and t.contact_list_id:
            found.append(("contact_list", t.contact_list_id))
        if t.campaign_id and (t.action in ("start_campaign", "add_contact")):
            found.append(("campaign", t.campaign_id))
        return found

    def answer(self, got: _Fetched) -> str:
        """Return a short "status code: message" of a fetch."""
        if got.response is None:
            return str(got.error)
        r = got.response
        text = f"{r.status} {r.error_code or ''}".rstrip()
        return f"{text}: {r.error_message}" if r.error_message else text

    def unexpected(self, response: PlatformResponse, what: str) -> tuple[str, str]:
        """Return (cause, fix) for a status preflight has no specific explanation for."""
        facts = {
            "status": response.status,
            "code": response.error_code or "-",
            "message": response.error_message or "-",
            "correlation_id": response.correlation_id,
            "retry_after": response.retry_after,
        }
        name = "rate_limited" if response.status == 429 else "unavailable" if response.status >= 500 else "unexpected"
        text = explain(name, **facts)
        fix = "run preflight again in a minute" if response.status == 429 or response.status >= 500 else text["fix"]
        return f"{what}: {text['cause']}", fix

    def unexpected_fetch(self, got: _Fetched, what: str) -> tuple[str, str]:
        """Return (cause, fix) for a fetch that failed in an unexplained way."""
        if got.response is not None:
            return self.unexpected(got.response, what)
        return f"{what}: {got.error}", self.region_hint("api") + "; then run preflight again"

    # Divisions and permissions

    def division(self, division_id: str) -> str:
        """Return "Name (id)" when the name is known, else the id; "*" is every division."""
        if division_id == ALL:
            return "every division (*)"
        name = self.division_names.get(division_id)
        return f"{name} ({division_id})" if name and name != division_id else division_id

    def roles_with(self, permission: str) -> list[_Grant]:
        """Return the readable grants whose role has the permission."""
        return [g for g in self.grants if g.patterns and any(covers(p, permission) for p in g.patterns)]

    def held_in(self, permission: str, division_id: str) -> list[_Grant]:
        """Return the grants giving the permission in the division (or in every division)."""
        return [g for g in self.roles_with(permission) if g.division_id in (division_id, ALL)]

    def grant_fix(self, permission: str, t: Target, needed: str | None, noun: str = "contact list") -> str:
        """Return how to give the client the permission where route t needs it (None: real division unknown)."""
        having = list(dict.fromkeys(g.role_name for g in self.roles_with(permission)))
        declared = self.division(t.division_id)
        where = self.division(needed) if needed else f"the {noun}'s division ({declared} if the mapping is right)"
        if having:
            tf = self.tf_grant(t, needed)
            return f"grant the role {_join(having)} to client {self.client_name} in {where} ({tf})"
        roles = _join(dict.fromkeys(g.role_name for g in self.grants)) if self.grants else "the client's role"
        return (
            f"add {permission} to role {roles} ({TF_ROLE}; its block: {_terraform_policy(permission)}) and keep the "
            f"role granted in {where}"
        )

    def tf_grant(self, t: Target, needed: str | None) -> str:
        """Return the Terraform way to have the client's role granted in the division route t needs."""
        if needed is None:
            return f"{TF_GRANTS}: check route {t.route}'s division, then terraform apply"
        if needed == t.division_id:
            return f"{TF_GRANTS}, and route {t.route} already names {self.division(needed)}: run terraform apply"
        return f"{TF_GRANTS}: set route {t.route}'s division to {needed}, then terraform apply"

    def where_held(self, permission: str) -> str:
        """Return where the client holds the permission, e.g. "role pipedial only in Home (div-home)"."""
        having = self.roles_with(permission)
        if not having:
            roles = list(dict.fromkeys(g.role_name for g in self.grants if g.patterns is not None))
            if not roles:
                return f"holds {permission} nowhere that preflight can see (none of its roles could be read)"
            return f"holds {permission} nowhere: none of its roles ({_join(roles)}) has it"
        parts = [f"role {g.role_name} in {self.division(g.division_id)}" for g in having]
        return f"holds {permission} only via " + _join(parts)

    def unreadable_in(self, division_id: str) -> list[_Grant]:
        """Return grants in the division (or everywhere) whose role could not be read."""
        return [g for g in self.grants if g.patterns is None and g.division_id in (division_id, ALL)]

    # Routes

    def check_route(self, t: Target) -> None:
        """Run the checks of one route's target."""
        action = ACTIONS.get(t.action)
        if action is None:
            self.add(t.route, "action", "fail", f"unknown action {t.action!r}", f"route {t.route} names unknown "
                     f"action {t.action!r}", f"use one of {', '.join(ACTIONS)} (`receiver check-mapping`)")
            return
        subject = action.subject
        object_id = t.campaign_id if subject == "campaign" else t.contact_list_id
        if not object_id:
            field_name = _ID_FIELD[subject]
            self.add(t.route, subject, "fail", f"no {field_name}", f"route {t.route} ({t.action}) names no "
                     f"{field_name}", f"set target.{field_name} of route {t.route} in the mapping file")
            return
        division_id, known = self.check_object(t, subject, object_id)
        if division_id is None:
            return
        if known:
            self.check_division(t, subject, object_id, division_id)
        self.check_permission(t, action.permission, subject, object_id, division_id, known)
        if t.action == "add_contact":
            if known:
                self.check_columns(t, object_id)
            self.check_campaign(t, object_id)
        if t.action == "trigger":
            self.warn_trigger(t, object_id)

    def check_object(self, t: Target, subject: str, object_id: str) -> tuple[str | None, bool]:
        """GET the route's contact list or campaign; return (division to check rights in, division is real)."""
        got = self.fetch(subject, object_id)
        noun = _SUBJECT_NAME[subject]
        r = got.response
        if r is not None and r.ok and isinstance(r.body, dict):
            div = _sub(r.body, "division")
            division_id = str(div.get("id") or "")
            name = r.body.get("name")
            label = f"{name} ({object_id})" if name else object_id
            if not division_id:
                self.add(t.route, subject, "warn", f"{noun} {label} found; its division is not shown",
                         f"GET {noun} {object_id} names no division, so preflight checks rights in the route's "
                         f"division {self.division(t.division_id)}", None)
                return t.division_id, False
            self.add(t.route, subject, "ok", f"{noun} {label} in division {self.division(division_id)}")
            return division_id, True
        if r is not None and r.status == 404:
            text = explain(
                "not_found", subject=noun, object_id=object_id, status=404, code=r.error_code or "-",
                id_field=_ID_FIELD[subject], route=t.route,
            )
            self.add(
                t.route, subject, "fail", f"{noun} {object_id} not found",
                f"route {t.route}: {noun} {object_id} not found in this org/region "
                f"(GENESYSCLOUD_REGION={self.settings.region}, API {self.host(self.settings.api_base)}; "
                f"platform: 404 {r.error_code or '-'})",
                f"check the id and GENESYSCLOUD_REGION: {text['fix']}",
            )
            return None, False
        if r is not None and r.status == 403:
            view = self.missing_from(r) or _VIEW_PERMISSION[subject]
            self.add(
                t.route, subject, "fail", f"cannot read {noun} {object_id}: 403 {r.error_code or ''}, lacks {view}",
                f"route {t.route}: cannot read {noun} {object_id}: client {self.client_name} lacks {view} in the "
                f"{'list' if subject == 'contact_list' else 'campaign'}'s division (the mapping says "
                f"{self.division(t.division_id)}); client {self.client_name} {self.where_held(view)} ({SCOPES_NOTE})",
                self.grant_fix(view, t, None, noun),
            )
            return t.division_id, False
        cause, fix = self.unexpected_fetch(got, f"route {t.route}: GET {noun} {object_id}")
        self.add(t.route, subject, "fail", f"cannot read {noun} {object_id}: {self.answer(got)}", cause, fix)
        return None, False

    @staticmethod
    def missing_from(response: PlatformResponse) -> str | None:
        """Return the permission a 403 names ("... permission(s): [x]"), if it names one."""
        m = _PERMISSIONS_IN_MESSAGE.search(response.error_message or "")
        return m.group(1).split(",")[0].strip() if m else None

    def check_division(self, t: Target, subject: str, object_id: str, division_id: str) -> None:
        """Compare the object's real division with the route's division_id."""
        noun = _SUBJECT_NAME[subject]
        if division_id == t.division_id:
            self.add(t.route, "division", "ok", f"mapping division {self.division(t.division_id)} matches")
            return
        self.add(
            t.route, "division", "fail",
            f"mapping says {t.division_id}, {noun} is in {self.division(division_id)}",
            f"route {t.route} says division {self.division(t.division_id)} but {noun} {object_id} is in division "
            f"{self.division(division_id)}",
            f"fix the mapping's division_id of route {t.route} to {division_id} (Terraform: the route's "
            "target.division_id or division_name in var.routes, then terraform apply so the role is granted there)",
        )

    def check_permission(
        self, t: Target, permission: str, subject: str, object_id: str, division_id: str, known: bool
    ) -> None:
        """Check the client holds the action's permission in the object's division."""
        where = self.division(division_id)
        source = "" if known else " (division from the mapping: the object itself could not be read)"
        held = self.held_in(permission, division_id)
        if held and known:
            via = _join(f"role {g.role_name} in {self.division(g.division_id)}" for g in held)
            self.add(t.route, "permission", "ok", f"{permission} held in {where} via {via}")
            return
        if held:
            self.add(
                t.route, "permission", "warn", f"{permission} held in {where}; {_SUBJECT_NAME[subject]} unreadable",
                f"route {t.route}: client {self.client_name} holds {permission} in {where}, the mapping's division, "
                f"yet cannot read {_SUBJECT_NAME[subject]} {object_id}: it is most likely in another division",
                f"check division_id of route {t.route} against the {_SUBJECT_NAME[subject]}'s real division",
            )
            return
        unreadable = self.unreadable_in(division_id)
        if unreadable:
            roles = _join(dict.fromkeys(g.role_id for g in unreadable))
            self.add(
                t.route, "permission", "warn", f"{permission} in {where} unconfirmed: role {roles} unreadable",
                f"route {t.route} needs {permission} in division {where}{source}; the client's role {roles} held "
                f"there could not be read (see the role check)",
                f"add {_ROLE_VIEW} to the role so preflight can confirm it",
            )
            return
        self.add(
            t.route, "permission", "fail", f"{permission} not held in {where}",
            f"route {t.route} needs {permission} in division {where}{source}; client {self.client_name} "
            f"{self.where_held(permission)} ({SCOPES_NOTE})",
            self.grant_fix(permission, t, division_id),
        )

    def check_columns(self, t: Target, contact_list_id: str) -> None:
        """Check every template column is a column of the list, and a phone column is filled."""
        got = self.fetch("contact_list", contact_list_id)
        body = got.response.body if got.response is not None and isinstance(got.response.body, dict) else {}
        names = [str(c) for c in body.get("columnNames") or []]
        template = list(t.contact or {})
        if not names:
            self.add(t.route, "columns", "warn", "list columns unknown", f"route {t.route}: GET contact list "
                     f"{contact_list_id} shows no columnNames, so the template columns could not be checked", None)
            return
        unknown = [c for c in template if c not in names]
        if unknown:
            hints = [f"{c} → {n}" for c in unknown for n in names if c.lower() == n.lower()]
            self.add(
                t.route, "columns", "fail", f"unknown column(s) {_join(unknown)}",
                f"route {t.route}: the contact template names column(s) {_join(unknown)} that contact list "
                f"{contact_list_id} does not have (its columns: {_join(names)}); the platform answers 400 to such a "
                "contact",
                f"use the list's own column names in target.contact of route {t.route}"
                + (f" (case matters: {_join(hints)})" if hints else "") + ", or add the columns to the list",
            )
            return
        phones = [str(p.get("columnName")) for p in body.get("phoneColumns") or [] if isinstance(p, dict)]
        if phones and not any(c in phones for c in template):
            self.add(
                t.route, "columns", "fail", f"no phone column filled (phone columns: {_join(phones)})",
                f"route {t.route}: the contact template fills none of contact list {contact_list_id}'s phone "
                f"columns ({_join(phones)}), so the dialer has no number to call",
                f"add a phone column ({_join(phones)}) with the number to call to target.contact of route {t.route}",
            )
            return
        self.add(t.route, "columns", "ok", f"template columns {_join(template)} are columns of the list")

    def check_campaign(self, t: Target, contact_list_id: str) -> None:
        """For add_contact: check the named campaign exists, is on, and dials this list."""
        if not t.campaign_id:
            self.add(
                t.route, "campaign", "warn", "no campaign_id: no running campaign could be confirmed",
                f"route {t.route} adds priority contacts to {contact_list_id}, but only a running campaign dialing "
                "that list calls them; preflight could not confirm one",
                "name campaign_id in the target so preflight can check it is on",
            )
            return
        got = self.fetch("campaign", t.campaign_id)
        r = got.response
        view = (self.missing_from(r) if r is not None else None) or _VIEW_PERMISSION["campaign"]
        if r is None or not r.ok or not isinstance(r.body, dict):
            if r is not None and r.status == 404:
                cause = f"route {t.route}: campaign {t.campaign_id} not found in this org/region"
                fix = f"check campaign_id of route {t.route} and GENESYSCLOUD_REGION ({self.settings.region})"
            elif r is not None and r.status == 403:
                cause = (
                    f"route {t.route}: cannot read campaign {t.campaign_id}: client {self.client_name} lacks {view} in "
                    f"the campaign's division; client {self.client_name} {self.where_held(view)}"
                )
                fix = self.grant_fix(view, t, None, "campaign")
            else:
                cause, fix = self.unexpected_fetch(got, f"route {t.route}: GET campaign {t.campaign_id}")
            detail = f"campaign {t.campaign_id}: " + (
                f"403 {r.error_code or ''}, lacks {view}" if r is not None and r.status == 403 else self.answer(got)
            )
            self.add(t.route, "campaign", "fail", detail, cause, fix)
            return
        status = str(r.body.get("campaignStatus") or "?")
        dials = _sub(r.body, "contactList")
        dials_id = str(dials.get("id") or "?")
        label = f"{r.body.get('name') or t.campaign_id} ({t.campaign_id})"
        if dials_id != contact_list_id:
            self.add(
                t.route, "campaign", "fail", f"campaign {t.campaign_id} dials {dials_id}, not {contact_list_id}",
                f"route {t.route}: campaign {label} dials contact list {dials_id}, not {contact_list_id}, so contacts "
                "this route adds are never called by it",
                f"set contact_list_id of route {t.route} to {dials_id}, or campaign_id to the campaign dialing "
                f"{contact_list_id}",
            )
            return
        if status != "on":
            self.add(
                t.route, "campaign", "fail", f"campaign {t.campaign_id} is {status}",
                f"route {t.route}: campaign {label} is {status!r}, not 'on': contacts added to {contact_list_id} are "
                "not dialed until it runs",
                f"start campaign {t.campaign_id} (Genesys: Outbound > Campaigns, or a route with action "
                "start_campaign) and keep it on",
            )
            return
        self.add(t.route, "campaign", "ok", f"campaign {label} is on and dials {contact_list_id}")

    def warn_trigger(self, t: Target, contact_list_id: str) -> None:
        """Warn that the trigger endpoint is not part of Genesys Cloud's public API (it is not called)."""
        path = ACTIONS["trigger"].path.format(contact_list_id=contact_list_id)
        self.add(
            t.route, "trigger", "warn", "POST .../trigger is not in Genesys Cloud's public API (not called)",
            f"route {t.route} uses action trigger (POST {path}), which is not part of Genesys Cloud's public API: a "
            "real org will most likely answer 404 not.found (preflight does not call it: no side effects)",
            f"the platform-native way is action: add_contact on route {t.route}, with a contact template of the "
            "list's columns: it adds a priority contact (priority=true) to the list of a running campaign, which "
            "dials it next",
        )
