"""Preflight against a real sandbox platform over HTTP: one cause of 403 (or silence) per test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from receiver.config import Settings
from receiver.preflight import TF_ENV, TF_GRANTS, TF_ROLE, Check, Report, format_report, run_preflight
from receiver.route import compile_mapping
from receiver.sandbox.server import SandboxServer
from tests.helpers.sandbox import CLIENT_ID, CLIENT_SECRET, sandbox_config

REPO = Path(__file__).resolve().parents[1]

CONTACT = {"Phone": "+15550100", "Workspace": "{workspace}", "Reason": "{state}: {message}"}

#: One route per action, all on the default sandbox's objects in div-ops.
MAPPING: dict[str, Any] = {
    "version": 1,
    "defaults": {"division_id": "div-ops"},
    "routes": [
        {
            "name": "prod-apply-failed",
            "match": {"source": "hcp-terraform", "state": "failed"},
            "target": {
                "action": "add_contact",
                "contact_list_id": "cl-oncall",
                "campaign_id": "camp-oncall",
                "division_id": "div-ops",
                "contact": CONTACT,
            },
        },
        {
            "name": "drift-trigger",
            "match": {"source": "hcp-terraform", "state": "drifted"},
            "target": {"action": "trigger", "contact_list_id": "cl-oncall", "division_id": "div-ops"},
        },
        {
            "name": "start-oncall",
            "match": {"source": "github", "state": "failed"},
            "target": {"action": "start_campaign", "campaign_id": "camp-oncall", "division_id": "div-ops"},
        },
    ],
}

ALL_PERMISSIONS = [
    "outbound:contactList:view",
    "outbound:contactList:edit",
    "outbound:contact:add",
    "outbound:campaign:view",
    "outbound:campaign:start",
    "authorization:role:view",
]


@pytest.fixture(name="platform")
def _platform() -> Iterator[SandboxServer]:
    """Yield a sandbox seeded with examples/sandbox.yaml; each test changes it with PATCH /sandbox/state."""
    with SandboxServer(sandbox_config()) as server:
        yield server


def settings_for(platform: SandboxServer, **changes: Any) -> Settings:
    """Return Settings pointing at the sandbox with the example client's credentials."""
    base = Settings(
        api_url=platform.url,
        login_url=platform.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        region="us-east-1",
        request_timeout=5.0,
    )
    return base.replace(**changes) if changes else base


def patch(platform: SandboxServer, **changes: Any) -> None:
    """Replace top-level sandbox state keys live."""
    response = requests.patch(f"{platform.url}/sandbox/state", json=changes, timeout=5)
    assert response.status_code == 200, response.text


def sandbox_requests(platform: SandboxServer) -> list[dict[str, Any]]:
    """Return the sandbox's log of API and token requests."""
    log: list[dict[str, Any]] = requests.get(f"{platform.url}/sandbox/requests", timeout=5).json()
    return log


def preflight(platform: SandboxServer, mapping: dict[str, Any] | None = None, **changes: Any) -> Report:
    """Run preflight against the sandbox for the mapping (default MAPPING)."""
    return run_preflight(settings_for(platform, **changes), compile_mapping(mapping or MAPPING))


def the(report: Report, route: str | None, check: str) -> Check:
    """Return the one check of that route and name."""
    found = [c for c in report.checks if c.route == route and c.check == check]
    assert len(found) == 1, (route, check, report.checks)
    return found[0]


def text(c: Check) -> str:
    """Return everything a check says."""
    return " ".join(x for x in (c.detail, c.cause, c.fix) if x)


def closed_port() -> int:
    """Return a local TCP port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def mapping_with(**target_changes: Any) -> dict[str, Any]:
    """Return MAPPING with the first route's (prod-apply-failed, add_contact) target changed; None removes a key."""
    data: dict[str, Any] = json.loads(json.dumps(MAPPING))
    target = data["routes"][0]["target"]
    for key, value in target_changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return data


# All well


def test_default_sandbox_passes_with_only_the_trigger_warning(platform: SandboxServer) -> None:
    report = preflight(platform)
    assert report.ok, format_report(report)
    assert [c for c in report.checks if c.status == "warn"] == [the(report, "drift-trigger", "trigger")]
    assert the(report, None, "token").status == "ok"
    assert "pipedial in Ops (div-ops)" in the(report, None, "client").detail
    assert the(report, "prod-apply-failed", "permission").detail.startswith("outbound:contact:add held in Ops")
    assert the(report, "drift-trigger", "permission").detail.startswith("outbound:contactList:edit held in Ops")
    assert the(report, "start-oncall", "permission").detail.startswith("outbound:campaign:start held in Ops")
    assert the(report, "prod-apply-failed", "campaign").status == "ok"
    assert the(report, "prod-apply-failed", "columns").status == "ok"


def test_only_gets_and_the_token_request_each_get_once(platform: SandboxServer) -> None:
    report = preflight(platform)
    assert report.ok
    log = sandbox_requests(platform)
    calls = [(r["method"], r["path"]) for r in log]
    assert {m for m, _ in calls} == {"GET", "POST"}
    assert [p for m, p in calls if m == "POST"] == ["/oauth/token"]
    gets = [p for m, p in calls if m == "GET"]
    assert len(gets) == len(set(gets)), gets  # three routes share cl-oncall and camp-oncall: one GET each
    assert sorted(gets) == sorted(
        [
            "/api/v2/tokens/me",
            "/api/v2/authorization/roles/role-pipedial",
            "/api/v2/outbound/contactlists/cl-oncall",
            "/api/v2/outbound/campaigns/camp-oncall",
        ]
    )
    journal = requests.get(f"{platform.url}/sandbox/journal", timeout=5).json()
    assert journal == []  # no action was taken, the trigger endpoint included


def test_trigger_warns_plainly_and_points_to_add_contact(platform: SandboxServer) -> None:
    c = the(preflight(platform), "drift-trigger", "trigger")
    assert c.status == "warn"
    assert c.cause is not None and c.fix is not None
    assert "not part of Genesys Cloud's public API" in c.cause
    assert "404" in c.cause
    assert "add_contact" in c.fix and "running campaign" in c.fix


def test_add_contact_without_campaign_id_warns_that_no_running_campaign_was_confirmed(platform: SandboxServer) -> None:
    report = preflight(platform, mapping_with(campaign_id=None))
    assert report.ok
    c = the(report, "prod-apply-failed", "campaign")
    assert c.status == "warn"
    assert c.fix == "name campaign_id in the target so preflight can check it is on"


# Token


def test_bad_client_secret_fails_the_token_and_skips_every_route(platform: SandboxServer) -> None:
    report = preflight(platform, client_secret="not-the-secret")
    assert not report.ok
    token = the(report, None, "token")
    assert token.status == "fail"
    assert token.cause is not None and "bad client id or secret" in token.cause and "invalid_client" in token.cause
    assert token.fix is not None and f"check GENESYSCLOUD_OAUTHCLIENT_ID/SECRET ({TF_ENV})" in token.fix
    for name in ("prod-apply-failed", "drift-trigger", "start-oncall"):
        skipped = the(report, name, "route")
        assert (skipped.status, skipped.detail) == ("fail", "skipped: no token")
    assert [r["path"] for r in sandbox_requests(platform)] == ["/oauth/token"]


def test_unreachable_login_host_suggests_the_wrong_region(platform: SandboxServer) -> None:
    report = preflight(platform, login_url=f"http://127.0.0.1:{closed_port()}", region="eu-central-1")
    assert not report.ok
    token = the(report, None, "token")
    assert token.status == "fail"
    assert token.cause is not None and "cannot reach login host" in token.cause
    assert token.fix is not None and "wrong GENESYSCLOUD_REGION (eu-central-1 → login.mypurecloud.de)?" in token.fix
    assert "GENESYSCLOUD_LOGIN_URL" in token.fix
    assert the(report, "start-oncall", "route").detail == "skipped: no token"


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"client_secret": None}, "GENESYSCLOUD_OAUTHCLIENT_SECRET"),
        ({"client_id": None, "client_secret": None}, "GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET"),
    ],
)
def test_unset_credentials_name_the_variables(platform: SandboxServer, changes: dict[str, Any], names: str) -> None:
    report = preflight(platform, **changes)
    token = the(report, None, "token")
    assert token.status == "fail" and token.detail == f"{names} not set"
    assert sandbox_requests(platform) == []  # nothing was asked of the platform


def test_unreachable_api_host_after_a_token_is_a_client_failure(platform: SandboxServer) -> None:
    report = preflight(platform, api_url=f"http://127.0.0.1:{closed_port()}")
    assert not report.ok
    assert the(report, None, "token").status == "ok"
    client = the(report, None, "client")
    assert client.status == "fail"
    assert client.fix is not None and "wrong GENESYSCLOUD_REGION (us-east-1 → api.mypurecloud.com)?" in client.fix
    assert the(report, "prod-apply-failed", "route").detail == "skipped: platform API unreachable"


# Roles and divisions


def test_role_lacking_the_action_permission_names_route_permission_and_division(platform: SandboxServer) -> None:
    patch(
        platform,
        roles=[{"id": "role-pipedial", "name": "pipedial", "permissions": [p for p in ALL_PERMISSIONS
                                                                          if p != "outbound:contact:add"]}],
    )
    report = preflight(platform)
    assert not report.ok
    assert [(c.route, c.check) for c in report.failures] == [("prod-apply-failed", "permission")]
    c = report.failures[0]
    assert c.cause is not None and c.fix is not None
    assert c.cause.startswith("route prod-apply-failed needs outbound:contact:add in division Ops (div-ops)")
    assert "holds outbound:contact:add nowhere: none of its roles (pipedial) has it" in c.cause
    assert "OAuth scopes do not matter for a client-credentials client" in c.cause
    assert "add outbound:contact:add to role pipedial" in c.fix and TF_ROLE in c.fix
    assert 'permission_policies { domain = "outbound", entity_name = "contact", action_set = ["add"] }' in c.fix


def test_role_granted_in_the_wrong_division_the_classic_403(platform: SandboxServer) -> None:
    """The client can see everything (a view role in every division) but holds the action role only in Home."""
    view = [p for p in ALL_PERMISSIONS if p.endswith(":view")]
    patch(
        platform,
        roles=[
            {"id": "role-view", "name": "pipedial-view", "permissions": view},
            {"id": "role-act", "name": "pipedial", "permissions": ALL_PERMISSIONS},
        ],
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "name": "pipedial",
                "roles": [
                    {"role_id": "role-view", "division_id": "*"},
                    {"role_id": "role-act", "division_id": "div-home"},
                ],
            }
        ],
        campaigns=[{"id": "camp-oncall", "name": "On-call", "contact_list_id": "cl-oncall", "division_id": "div-home",
                    "status": "on"}],
    )
    report = preflight(platform, mapping_with(division_id="div-ops"))
    assert not report.ok
    failing = {(c.route, c.check) for c in report.failures}
    assert ("prod-apply-failed", "permission") in failing
    assert ("drift-trigger", "permission") in failing
    c = the(report, "prod-apply-failed", "permission")
    assert c.cause is not None and c.fix is not None
    # Names the permission, the needed division by name and id, and where the client does hold it.
    assert c.cause.startswith("route prod-apply-failed needs outbound:contact:add in division Ops (div-ops);")
    assert "client pipedial holds outbound:contact:add only via role pipedial in Home (div-home)" in c.cause
    assert "OAuth scopes do not matter" in c.cause
    assert c.fix == (
        f"grant the role pipedial to client pipedial in Ops (div-ops) ({TF_GRANTS}, and route prod-apply-failed "
        "already names Ops (div-ops): run terraform apply)"
    )
    # The campaign lives in Home, where the role is held: starting it is fine, the mapping's division is not.
    assert the(report, "start-oncall", "permission").status == "ok"
    assert the(report, "start-oncall", "division").status == "fail"


def test_role_only_in_home_so_even_the_list_is_unreadable(platform: SandboxServer) -> None:
    """The usual shape of the classic 403: the one role is granted in the home division, the list is in Ops."""
    patch(
        platform,
        clients=[{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "name": "pipedial",
                  "roles": [{"role_id": "role-pipedial", "division_id": "div-home"}]}],
    )
    report = preflight(platform)
    assert not report.ok
    read = the(report, "prod-apply-failed", "contact_list")
    assert read.status == "fail" and read.cause is not None and read.fix is not None
    assert "lacks outbound:contactList:view in the list's division (the mapping says div-ops)" in read.cause
    # Nothing in Home was readable, so its name is unknown: divisions are named only by objects preflight read.
    assert "only via role pipedial in div-home" in read.cause
    assert "grant the role pipedial to client pipedial in the contact list's division (div-ops" in read.fix
    act = the(report, "prod-apply-failed", "permission")
    assert act.status == "fail" and act.cause is not None and act.fix is not None
    assert act.cause.startswith("route prod-apply-failed needs outbound:contact:add in division div-ops")
    assert "only via role pipedial in div-home" in act.cause
    assert act.fix.startswith("grant the role pipedial to client pipedial in div-ops")
    assert TF_GRANTS in act.fix
    campaign = the(report, "start-oncall", "campaign")
    assert campaign.status == "fail" and "outbound:campaign:view" in text(campaign)


def test_unreadable_role_says_authorization_role_view_is_missing(platform: SandboxServer) -> None:
    patch(
        platform,
        roles=[{"id": "role-pipedial", "name": "pipedial",
                "permissions": [p for p in ALL_PERMISSIONS if p != "authorization:role:view"]}],
    )
    report = preflight(platform)
    assert not report.ok
    assert [(c.route, c.check) for c in report.failures] == [(None, "role")]
    c = report.failures[0]
    assert c.cause is not None and c.fix is not None
    assert "cannot read its role role-pipedial" in c.cause and "authorization:role:view" in c.cause
    assert "add authorization:role:view to the client's role" in c.fix
    assert 'domain = "authorization", entity_name = "role", action_set = ["view"]' in c.fix
    permission = the(report, "prod-apply-failed", "permission")
    assert permission.status == "warn" and "unconfirmed" in permission.detail


def test_wildcard_role_in_every_division_is_enough(platform: SandboxServer) -> None:
    patch(
        platform,
        roles=[{"id": "role-admin", "name": "admin", "permissions": ["outbound:*:*", "authorization:role:view"]}],
        clients=[{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "name": "pipedial",
                  "roles": [{"role_id": "role-admin", "division_id": "*"}]}],
    )
    report = preflight(platform)
    assert report.ok, format_report(report)
    assert "via role admin in every division (*)" in the(report, "prod-apply-failed", "permission").detail


# Contact lists, divisions, columns, campaigns


def test_unknown_contact_list_is_not_found_in_this_org_or_region(platform: SandboxServer) -> None:
    report = preflight(platform, mapping_with(contact_list_id="cl-missing", campaign_id=None))
    assert not report.ok
    c = the(report, "prod-apply-failed", "contact_list")
    assert c.status == "fail"
    assert c.cause is not None and c.fix is not None
    assert "contact list cl-missing not found in this org/region" in c.cause
    assert c.fix.startswith("check the id and GENESYSCLOUD_REGION")
    assert [x.check for x in report.checks if x.route == "prod-apply-failed"] == ["contact_list"]  # nothing more


def test_route_division_mismatch_names_both_and_checks_rights_in_the_real_one(platform: SandboxServer) -> None:
    report = preflight(platform, mapping_with(division_id="div-home"))
    assert not report.ok
    assert [(c.route, c.check) for c in report.failures] == [("prod-apply-failed", "division")]
    c = report.failures[0]
    assert c.cause == (
        "route prod-apply-failed says division div-home but contact list cl-oncall is in division Ops (div-ops)"
    )
    assert c.fix is not None
    assert c.fix.startswith("fix the mapping's division_id of route prod-apply-failed to div-ops (Terraform: ")
    assert the(report, "prod-apply-failed", "permission").detail.startswith("outbound:contact:add held in Ops")


def test_unknown_template_column_names_it_and_the_lists_columns(platform: SandboxServer) -> None:
    contact = {"Phone": "+15550100", "workspace": "{workspace}", "Why": "{state}"}
    report = preflight(platform, mapping_with(contact=contact))
    assert not report.ok
    assert [(c.route, c.check) for c in report.failures] == [("prod-apply-failed", "columns")]
    c = report.failures[0]
    assert c.cause is not None and c.fix is not None
    assert "column(s) workspace, Why" in c.cause
    assert "(its columns: Phone, Workspace, Reason)" in c.cause
    assert "workspace → Workspace" in c.fix


def test_template_without_a_phone_column_cannot_be_called(platform: SandboxServer) -> None:
    report = preflight(platform, mapping_with(contact={"Workspace": "{workspace}"}))
    c = the(report, "prod-apply-failed", "columns")
    assert c.status == "fail"
    assert c.cause is not None and "no number to call" in c.cause and "Phone" in c.cause


def test_campaign_off_fails_add_contact(platform: SandboxServer) -> None:
    patch(
        platform,
        campaigns=[{"id": "camp-oncall", "name": "On-call", "contact_list_id": "cl-oncall", "division_id": "div-ops",
                    "status": "off"}],
    )
    report = preflight(platform)
    assert not report.ok
    assert [(c.route, c.check) for c in report.failures] == [("prod-apply-failed", "campaign")]
    c = report.failures[0]
    assert c.detail == "campaign camp-oncall is off"
    assert c.cause is not None and "not dialed until it runs" in c.cause
    assert c.fix is not None and "start campaign camp-oncall" in c.fix


def test_campaign_dialing_another_list_fails_add_contact(platform: SandboxServer) -> None:
    patch(
        platform,
        contact_lists=[
            {"id": "cl-oncall", "name": "On-call", "division_id": "div-ops",
             "columns": ["Phone", "Workspace", "Reason"], "phone_columns": ["Phone"]},
            {"id": "cl-other", "name": "Other", "division_id": "div-ops",
             "columns": ["Phone"], "phone_columns": ["Phone"]},
        ],
        campaigns=[{"id": "camp-oncall", "name": "On-call", "contact_list_id": "cl-other", "division_id": "div-ops",
                    "status": "on"}],
    )
    c = the(preflight(platform), "prod-apply-failed", "campaign")
    assert c.status == "fail"
    assert c.detail == "campaign camp-oncall dials cl-other, not cl-oncall"


def test_platform_error_on_a_get_is_reported_not_raised(platform: SandboxServer) -> None:
    scripted = {"method": "GET", "path": "/contactlists/cl-oncall$", "responses": [{"status": 503}]}
    assert requests.post(f"{platform.url}/sandbox/script", json=scripted, timeout=5).status_code == 200
    report = preflight(platform)
    assert not report.ok
    c = the(report, "prod-apply-failed", "contact_list")
    assert c.status == "fail" and "503" in c.detail
    assert c.fix == "run preflight again in a minute"
    assert the(report, "drift-trigger", "contact_list").status == "fail"  # the one cached answer, not a second GET


# Rendering


def test_format_report_is_a_table_then_one_line_per_failure(platform: SandboxServer) -> None:
    report = preflight(platform, mapping_with(division_id="div-home"))
    out = format_report(report)
    lines = out.splitlines()
    assert [p.strip() for p in lines[0].split("|")] == ["ROUTE", "CHECK", "STATUS", "DETAIL"]
    assert any(line.startswith("prod-apply-failed") and "| FAIL" in line for line in lines)
    assert (
        "  route prod-apply-failed says division div-home but contact list cl-oncall is in division Ops (div-ops) — "
        "fix the mapping's division_id" in out
    )
    assert lines[-1].startswith("preflight FAILED (1 failure)")


def test_to_dict_is_json_ready(platform: SandboxServer) -> None:
    report = preflight(platform, client_secret="wrong")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False
    assert data["failures"] == 4
    assert set(data["checks"][0]) == {"route", "check", "status", "detail", "cause", "fix"}
    assert data["checks"][1] == {
        "route": "prod-apply-failed", "check": "route", "status": "fail", "detail": "skipped: no token",
        "cause": "route prod-apply-failed could not be checked: no token",
        "fix": "fix the token check above, then run preflight again",
    }


# The command line


def run_cli(
    platform: SandboxServer, mapping: Path, *args: str, secret: str = CLIENT_SECRET
) -> subprocess.CompletedProcess[str]:
    """Run `python -m receiver preflight --mapping FILE ARGS` against the sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENESYSCLOUD_", "RECEIVER_"))}
    env.update(
        GENESYSCLOUD_API_URL=platform.url,
        GENESYSCLOUD_LOGIN_URL=platform.url,
        GENESYSCLOUD_OAUTHCLIENT_ID=CLIENT_ID,
        GENESYSCLOUD_OAUTHCLIENT_SECRET=secret,
    )
    return subprocess.run(
        [sys.executable, "-m", "receiver", "preflight", "--mapping", str(mapping), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.fixture(name="mapping_file")
def _mapping_file(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(MAPPING))
    return path


def test_cli_exits_0_when_everything_is_ready(platform: SandboxServer, mapping_file: Path) -> None:
    done = run_cli(platform, mapping_file)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "preflight ok" in done.stdout
    assert "drift-trigger" in done.stdout and "not part of Genesys Cloud's public API" in done.stdout


def test_cli_exits_1_and_says_why(platform: SandboxServer, mapping_file: Path) -> None:
    patch(
        platform,
        clients=[{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "name": "pipedial",
                  "roles": [{"role_id": "role-pipedial", "division_id": "div-home"}]}],
    )
    done = run_cli(platform, mapping_file)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "route prod-apply-failed needs outbound:contact:add in division div-ops" in done.stdout
    assert TF_GRANTS in done.stdout


def test_cli_json_is_the_report(platform: SandboxServer, mapping_file: Path) -> None:
    done = run_cli(platform, mapping_file, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True and data["failures"] == 0
    assert {c["route"] for c in data["checks"]} == {None, "prod-apply-failed", "drift-trigger", "start-oncall"}


def test_cli_json_on_a_bad_secret(platform: SandboxServer, mapping_file: Path) -> None:
    done = run_cli(platform, mapping_file, "--json", secret="wrong")
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(done.stdout)
    token = data["checks"][0]
    assert (token["check"], token["status"]) == ("token", "fail")
    assert TF_ENV in token["fix"]
