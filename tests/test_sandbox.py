"""The sandbox platform over real HTTP: endpoints, Genesys errors, divisions, limits, faults, scripts, admin."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from receiver.sandbox import DEFAULT_CONFIG_PATH, SandboxConfigError, SandboxServer, load_config, parse_config
from tests.helpers.sandbox import (  # noqa: F401
    CLIENT_ID,
    CLIENT_SECRET,
    EXAMPLE_CONFIG,
    get_token,
    make_sandbox,
    sandbox,
    sandbox_config,
)

MakeSandbox = Callable[[Mapping[str, Any]], SandboxServer]

CONTACTS = "/api/v2/outbound/contactlists/cl-oncall/contacts?priority=true"
TRIGGER = "/api/v2/outbound/contactlists/cl-oncall/trigger"
START = "/api/v2/outbound/campaigns/camp-oncall/start"
ERROR_KEYS = {"message", "code", "status", "messageWithParams", "messageParams", "contextId", "details", "errors"}

# DESIGN.md's "Sandbox platform" sample, verbatim.
DESIGN_SAMPLE = """\
token_ttl: 86400                # seconds
rate_limit_per_minute: 300      # per token; 429 + Retry-After beyond it
divisions:
  - {id: div-home, name: Home, home: true}
  - {id: div-ops, name: Ops}
roles:
  - id: role-pipedial
    name: pipedial
    permissions: [outbound:contactList:view, outbound:contactList:edit, outbound:contact:add,
                  outbound:campaign:view, outbound:campaign:start, authorization:role:view]
clients:
  - client_id: pipedial-dev
    client_secret: pipedial-dev-secret
    roles: [{role_id: role-pipedial, division_id: div-ops}]    # division_id "*" = every division
contact_lists:
  - {id: cl-oncall, name: On-call, division_id: div-ops, columns: [Phone, Workspace, Reason], phone_columns: [Phone]}
campaigns:
  - {id: camp-oncall, name: On-call, contact_list_id: cl-oncall, division_id: div-ops, status: "on"}
faults:                         # all optional, default off
  error_rate: 0.0               # share of API calls answered 503
  latency_ms: 0                 # added to every API call
  timeout_rate: 0.0             # share of calls that hang past the client's timeout, then succeed
"""


class Api:
    """A requests session against one sandbox, with a bearer token."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=kwargs.pop("timeout", 5), **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + path, timeout=kwargs.pop("timeout", 5), **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.patch(self.url + path, timeout=kwargs.pop("timeout", 5), **kwargs)

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[Api]:  # noqa: F811
    client = Api(sandbox.url, get_token(sandbox.url))
    yield client
    client.close()


@pytest.fixture
def admin(sandbox: SandboxServer) -> Iterator[Api]:  # noqa: F811
    client = Api(sandbox.url)
    yield client
    client.close()


def contact(contact_id: str | None = None, **data: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contactListId": "cl-oncall",
        "data": data or {"Phone": "+15550100", "Workspace": "prod-net", "Reason": "failed"},
        "callable": True,
        "phoneNumberStatus": {"Phone": {"callable": True}},
    }
    if contact_id is not None:
        body["id"] = contact_id
    return body


def assert_genesys_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["contextId"] == response.headers["ININ-Correlation-Id"]
    uuid.UUID(body["contextId"], version=4)
    return body


def with_grants(config: dict[str, Any], *grants: tuple[str, str]) -> dict[str, Any]:
    config["clients"][0]["roles"] = [{"role_id": r, "division_id": d} for r, d in grants]
    return config


# Seed files


def test_example_and_packaged_default_are_the_same_file() -> None:
    assert EXAMPLE_CONFIG.read_text() == DEFAULT_CONFIG_PATH.read_text()


def test_design_sample_loads_verbatim_like_the_example(tmp_path: Path) -> None:
    path = tmp_path / "design.yaml"
    path.write_text(DESIGN_SAMPLE)
    assert load_config(path) == load_config(EXAMPLE_CONFIG)


def test_bare_yaml_on_status_is_read_as_on(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(DESIGN_SAMPLE.replace('status: "on"', "status: on"))
    assert load_config(path)["campaigns"][0]["status"] == "on"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c["roles"][0]["permissions"].append("outbound:contact"), "roles[0].permissions[6]: "),
        (lambda c: c["clients"][0]["roles"].append({"role_id": "nope"}), "clients[0].roles[1].role_id: unknown role"),
        (lambda c: c["clients"][0]["roles"][0].update(division_id="div-x"), "unknown division 'div-x'"),
        (lambda c: c["contact_lists"][0]["phone_columns"].append("Fax"), "'Fax' is not one of the columns"),
        (lambda c: c["divisions"].append({"id": "div-ops", "name": "Again"}), "divisions[2].id: duplicate id"),
        (lambda c: c["campaigns"][0].update(contact_list_id="cl-x"), "unknown contact list 'cl-x'"),
        (lambda c: c["campaigns"][0].update(status="running"), "campaigns[0].status: must be one of"),
        (lambda c: c["faults"].update(error_rate=1.5), "faults.error_rate: must be at most 1.0"),
        (lambda c: c.update(token_ttl=0), "token_ttl: must be greater than 0"),
        (lambda c: c.update(rate_limit_per_minute="many"), "rate_limit_per_minute: must be a whole number"),
        (lambda c: c["divisions"][0].update(id=12), "divisions[0].id: must be a non-empty string"),
        (lambda c: c.update(roles={"id": "x"}), "roles: must be a list"),
    ],
)
def test_invalid_seed_names_the_path_and_the_problem(change: Callable[[dict[str, Any]], None], problem: str) -> None:
    config = sandbox_config()
    change(config)
    with pytest.raises(SandboxConfigError) as caught:
        parse_config(config, "test.yaml")
    assert any(problem in p for p in caught.value.problems), caught.value.problems
    assert "sandbox config test.yaml is invalid" in str(caught.value)


def test_unreadable_or_non_mapping_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(SandboxConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("roles: [\n")
    with pytest.raises(SandboxConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(SandboxConfigError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml")


# OAuth


def test_token_grant_returns_bearer_with_ttl_and_correlation_id(sandbox: SandboxServer) -> None:  # noqa: F811
    r = requests.post(
        f"{sandbox.url}/oauth/token",
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
        timeout=5,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 86400 and body["access_token"]
    uuid.UUID(r.headers["ININ-Correlation-Id"])


@pytest.mark.parametrize(
    ("auth", "grant", "status", "error"),
    [
        (("stranger", "x"), "client_credentials", 400, "invalid_client"),
        ((CLIENT_ID, "wrong"), "client_credentials", 401, "invalid_client"),
        (None, "client_credentials", 401, "invalid_client"),
        ((CLIENT_ID, CLIENT_SECRET), "password", 400, "unsupported_grant_type"),
    ],
)
def test_token_errors_use_the_oauth_body(
    sandbox: SandboxServer,  # noqa: F811
    auth: tuple[str, str] | None,
    grant: str,
    status: int,
    error: str,
) -> None:
    r = requests.post(f"{sandbox.url}/oauth/token", auth=auth, data={"grant_type": grant}, timeout=5)
    assert r.status_code == status
    body = r.json()
    assert set(body) == {"error", "description", "error_description"}
    assert body["error"] == error
    assert body["description"] == body["error_description"]


# API endpoints


def test_tokens_me_describes_the_client_and_its_role_divisions(api: Api) -> None:
    r = api.get("/api/v2/tokens/me")
    assert r.status_code == 200
    body = r.json()
    assert body["organization"]["id"] and body["homeOrganization"] == body["organization"]
    assert body["authorizedScope"] == []
    assert body["OAuthClient"] == {
        "id": CLIENT_ID,
        "name": CLIENT_ID,
        "authorizedGrantType": "CLIENT-CREDENTIALS",
        "roleDivisions": [{"roleId": "role-pipedial", "divisionId": "div-ops"}],
        "state": "active",
    }


def test_role_lists_permission_policies(api: Api) -> None:
    body = api.get("/api/v2/authorization/roles/role-pipedial").json()
    assert body["id"] == "role-pipedial" and body["name"] == "pipedial"
    assert body["permissionPolicies"] == [
        {"domain": "outbound", "entityName": "contactList", "actionSet": ["view", "edit"]},
        {"domain": "outbound", "entityName": "contact", "actionSet": ["add"]},
        {"domain": "outbound", "entityName": "campaign", "actionSet": ["view", "start"]},
        {"domain": "authorization", "entityName": "role", "actionSet": ["view"]},
    ]


def test_contact_list_and_campaign_describe_their_division(api: Api) -> None:
    cl = api.get("/api/v2/outbound/contactlists/cl-oncall").json()
    assert cl == {
        "id": "cl-oncall",
        "name": "On-call",
        "division": {"id": "div-ops", "name": "Ops"},
        "columnNames": ["Phone", "Workspace", "Reason"],
        "phoneColumns": [{"columnName": "Phone", "type": "cell"}],
    }
    camp = api.get("/api/v2/outbound/campaigns/camp-oncall").json()
    assert camp == {
        "id": "camp-oncall",
        "name": "On-call",
        "campaignStatus": "on",
        "contactList": {"id": "cl-oncall", "name": "On-call"},
        "division": {"id": "div-ops", "name": "Ops"},
    }


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/outbound/contactlists/cl-none",
        "/api/v2/outbound/campaigns/camp-none",
        "/api/v2/authorization/roles/role-none",
        "/api/v2/no/such/path",
    ],
)
def test_unknown_ids_and_paths_are_genesys_404(api: Api, path: str) -> None:
    body = assert_genesys_error(api.get(path), 404, "not.found")
    assert body["message"] == "The requested operation failed with status 404"


def test_paths_outside_the_api_are_404_without_auth(sandbox: SandboxServer) -> None:  # noqa: F811
    assert_genesys_error(requests.get(f"{sandbox.url}/", timeout=5), 404, "not.found")
    assert requests.get(f"{sandbox.url}/sandbox/nothing", timeout=5).status_code == 404


def test_trigger_is_accepted_and_journaled(api: Api, admin: Api) -> None:
    r = api.post(TRIGGER, json={"reason": "run failed"})
    assert r.status_code == 202
    assert r.json()["contactListId"] == "cl-oncall"
    [entry] = admin.get("/sandbox/journal").json()
    assert entry["action"] == "trigger"
    assert entry["contact_list_id"] == "cl-oncall" and entry["division_id"] == "div-ops"
    assert entry["campaign_id"] is None and entry["contact_id"] is None
    assert entry["body"] == {"reason": "run failed"}
    assert abs(entry["received_at"] - time.time()) < 5
    assert api.post(TRIGGER).status_code == 202  # no body at all
    assert admin.get("/sandbox/journal").json()[1]["body"] is None


def test_add_contact_assigns_ids_and_journals_each_new_contact(api: Api, admin: Api) -> None:
    r = api.post(CONTACTS, json=[contact(), contact("c-1")])
    assert r.status_code == 200
    created = r.json()
    assert created[1]["id"] == "c-1" and created[0]["id"]
    assert created[1]["contactListId"] == "cl-oncall" and created[1]["data"]["Phone"] == "+15550100"
    journal = admin.get("/sandbox/journal").json()
    assert [(e["action"], e["contact_id"]) for e in journal] == [
        ("add_contact", created[0]["id"]),
        ("add_contact", "c-1"),
    ]
    assert journal[0]["body"] == [contact(), contact("c-1")]


def test_same_contact_id_is_an_upsert_not_a_second_call(api: Api, admin: Api) -> None:
    assert api.post(CONTACTS, json=[contact("c-7")]).status_code == 200
    again = contact("c-7", Phone="+15550199", Workspace="prod-net", Reason="failed again")
    assert api.post(CONTACTS, json=[again]).status_code == 200
    assert len(admin.get("/sandbox/journal").json()) == 1
    [stored] = admin.get("/sandbox/contacts").json()
    assert stored["data"]["Phone"] == "+15550199"


def test_concurrent_adds_of_one_contact_id_journal_once(api: Api, admin: Api) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: api.post(CONTACTS, json=[contact("c-race")]).status_code, range(16)))
    assert statuses == [200] * 16
    assert len(admin.get("/sandbox/journal").json()) == 1


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ([contact(Phone="+1", Pager="x")], "invalid.value", "'Pager' is not a column"),
        ([{**contact(), "contactListId": "cl-other"}], "invalid.value", "does not match"),
        ([{"data": {"Phone": "+1"}}], "invalid.value", "contactListId"),
        ([{**contact(), "phoneNumberStatus": {"Reason": {"callable": True}}}], "invalid.value", "not a phone column"),
        (contact(), "bad.request", "array"),
        ([], "bad.request", "array"),
        (["not a contact"], "bad.request", "object"),
    ],
)
def test_bad_contacts_are_rejected_without_side_effects(api: Api, admin: Api, body: Any, code: str, words: str) -> None:
    error = assert_genesys_error(api.post(CONTACTS, json=body), 400, code)
    assert words in error["message"]
    assert admin.get("/sandbox/journal").json() == []


def test_invalid_json_is_bad_request(api: Api) -> None:
    r = api.post(CONTACTS, data="[{", headers={"Content-Type": "application/json"})
    assert_genesys_error(r, 400, "bad.request")


def test_start_campaign_turns_it_on_and_journals(make_sandbox: MakeSandbox) -> None:  # noqa: F811
    config = sandbox_config()
    config["campaigns"][0]["status"] = "off"
    server = make_sandbox(config)
    api = Api(server.url, get_token(server.url))
    try:
        assert api.get("/api/v2/outbound/campaigns/camp-oncall").json()["campaignStatus"] == "off"
        r = api.post(START)
        assert r.status_code == 200 and r.json()["campaignStatus"] == "on"
        assert api.get("/api/v2/outbound/campaigns/camp-oncall").json()["campaignStatus"] == "on"
        [entry] = server.state.journal()
        assert entry["action"] == "start_campaign" and entry["campaign_id"] == "camp-oncall"
        assert entry["contact_list_id"] == "cl-oncall" and entry["division_id"] == "div-ops"
    finally:
        api.close()


# Authentication and permissions


def test_missing_and_unknown_bearer_are_401(sandbox: SandboxServer) -> None:  # noqa: F811
    r = requests.get(f"{sandbox.url}/api/v2/tokens/me", timeout=5)
    body = assert_genesys_error(r, 401, "authentication.required")
    assert body["message"] == "No authentication bearer token specified in authorization header."
    assert r.headers["inin-ratelimit-allowed"] == "300"
    r = requests.get(f"{sandbox.url}/api/v2/tokens/me", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert_genesys_error(r, 401, "bad.credentials")


def test_token_expires_after_its_ttl(make_sandbox: MakeSandbox) -> None:  # noqa: F811
    config = sandbox_config()
    config["token_ttl"] = 0.3
    server = make_sandbox(config)
    api = Api(server.url, get_token(server.url))
    try:
        assert api.get("/api/v2/tokens/me").status_code == 200
        time.sleep(0.4)
        body = assert_genesys_error(api.get("/api/v2/tokens/me"), 401, "credentials.expired")
        assert body["message"] == "The supplied credentials are expired and cannot be used."
    finally:
        api.close()


def test_expire_tokens_expires_every_issued_token(api: Api, admin: Api) -> None:
    assert admin.post("/sandbox/expire-tokens").json() == {"expired": 1}
    assert_genesys_error(api.get("/api/v2/tokens/me"), 401, "credentials.expired")


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [
        ("POST", CONTACTS, "outbound:contact:add"),
        ("POST", TRIGGER, "outbound:contactList:edit"),
        ("POST", START, "outbound:campaign:start"),
        ("GET", "/api/v2/outbound/contactlists/cl-oncall", "outbound:contactList:view"),
        ("GET", "/api/v2/outbound/campaigns/camp-oncall", "outbound:campaign:view"),
    ],
)
def test_role_in_another_division_is_403_naming_the_permission(
    make_sandbox: MakeSandbox,  # noqa: F811
    method: str,
    path: str,
    permission: str,
) -> None:
    server = make_sandbox(with_grants(sandbox_config(), ("role-pipedial", "div-home")))
    api = Api(server.url, get_token(server.url))
    try:
        r = api.session.request(method, server.url + path, json=[contact()], timeout=5)
        body = assert_genesys_error(r, 403, "missing.permissions")
        assert body["message"] == (
            f"Unable to perform the requested action. You are missing the following permission(s): [{permission}]"
        )
        assert body["messageParams"] == {"permissions": permission}
        assert server.state.journal() == []
        # authorization:role:view is division-agnostic: held in div-home is enough.
        assert api.get("/api/v2/authorization/roles/role-pipedial").status_code == 200
    finally:
        api.close()


def test_role_view_needs_the_permission_somewhere(make_sandbox: MakeSandbox) -> None:  # noqa: F811
    config = sandbox_config()
    config["roles"].append({"id": "role-add", "name": "add", "permissions": ["outbound:contact:add"]})
    server = make_sandbox(with_grants(config, ("role-add", "div-ops")))
    api = Api(server.url, get_token(server.url))
    try:
        body = assert_genesys_error(api.get("/api/v2/authorization/roles/role-add"), 403, "missing.permissions")
        assert "[authorization:role:view]" in body["message"]
        assert api.post(CONTACTS, json=[contact()]).status_code == 200
    finally:
        api.close()


def test_star_division_grants_every_division(make_sandbox: MakeSandbox) -> None:  # noqa: F811
    config = with_grants(sandbox_config(), ("role-pipedial", "*"))
    config["contact_lists"].append(
        {"id": "cl-home", "name": "Home list", "division_id": "div-home", "columns": ["Phone"], "phone_columns": []}
    )
    server = make_sandbox(config)
    api = Api(server.url, get_token(server.url))
    try:
        assert api.post(TRIGGER).status_code == 202
        assert api.post("/api/v2/outbound/contactlists/cl-home/trigger").status_code == 202
        assert [e["division_id"] for e in server.state.journal()] == ["div-ops", "div-home"]
        me = api.get("/api/v2/tokens/me").json()
        assert me["OAuthClient"]["roleDivisions"] == [{"roleId": "role-pipedial", "divisionId": "*"}]
    finally:
        api.close()


# Rate limit


def test_rate_limit_headers_and_429_with_retry_after(make_sandbox: MakeSandbox) -> None:  # noqa: F811
    config = sandbox_config()
    config["rate_limit_per_minute"] = 3
    config["rate_limit_window_seconds"] = 10
    server = make_sandbox(config)
    api = Api(server.url, get_token(server.url))
    try:
        counts = []
        for _ in range(3):
            r = api.get("/api/v2/tokens/me")
            assert r.status_code == 200
            assert r.headers["inin-ratelimit-allowed"] == "3"
            assert 1 <= int(r.headers["inin-ratelimit-reset"]) <= 10
            counts.append(r.headers["inin-ratelimit-count"])
        assert counts == ["1", "2", "3"]
        r = api.post(TRIGGER)
        body = assert_genesys_error(r, 429, "too.many.requests.retry.after")
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 10
        assert body["message"] == f"Rate limit exceeded the maximum. Retry the request in [{retry}] seconds"
        assert server.state.journal() == []
        fresh = Api(server.url, get_token(server.url))  # the limit is per token
        try:
            assert fresh.get("/api/v2/tokens/me").headers["inin-ratelimit-count"] == "1"
        finally:
            fresh.close()
    finally:
        api.close()


def test_rate_window_resets(make_sandbox: MakeSandbox) -> None:  # noqa: F811
    config = sandbox_config()
    config["rate_limit_per_minute"] = 1
    config["rate_limit_window_seconds"] = 0.3
    server = make_sandbox(config)
    api = Api(server.url, get_token(server.url))
    try:
        assert api.get("/api/v2/tokens/me").status_code == 200
        assert api.get("/api/v2/tokens/me").status_code == 429
        time.sleep(0.35)
        assert api.get("/api/v2/tokens/me").status_code == 200
    finally:
        api.close()


# Faults


def test_error_rate_answers_503_on_api_calls_only(make_sandbox: MakeSandbox) -> None:  # noqa: F811
    config = sandbox_config()
    config["faults"]["error_rate"] = 1.0
    server = make_sandbox(config)
    api = Api(server.url, get_token(server.url))  # the token endpoint is not faulted
    try:
        assert_genesys_error(api.post(TRIGGER), 503, "service.unavailable")
        assert requests.get(f"{server.url}/sandbox/journal", timeout=5).json() == []
    finally:
        api.close()


def test_seeded_error_rate_is_reproducible(make_sandbox: MakeSandbox) -> None:  # noqa: F811
    config = sandbox_config()
    config["faults"]["error_rate"] = 0.5
    config["seed"] = 7
    outcomes = []
    for _ in range(2):
        server = make_sandbox(config)
        api = Api(server.url, get_token(server.url))
        outcomes.append([api.get("/api/v2/tokens/me").status_code for _ in range(12)])
        api.close()
    assert outcomes[0] == outcomes[1]
    assert {200, 503} == set(outcomes[0])


def test_latency_is_added_to_api_calls(make_sandbox: MakeSandbox) -> None:  # noqa: F811
    config = sandbox_config()
    config["faults"]["latency_ms"] = 150
    server = make_sandbox(config)
    api = Api(server.url, get_token(server.url))
    try:
        started = time.monotonic()
        assert api.get("/api/v2/tokens/me").status_code == 200
        assert time.monotonic() - started >= 0.15
    finally:
        api.close()


def test_timeout_fault_hangs_then_performs_the_action_once(make_sandbox: MakeSandbox) -> None:  # noqa: F811
    config = sandbox_config()
    config["faults"].update(timeout_rate=1.0, timeout_seconds=0.5)
    server = make_sandbox(config)
    api = Api(server.url, get_token(server.url))
    try:
        assert api.get("/api/v2/tokens/me").status_code == 200  # reads never hang
        with pytest.raises(requests.ReadTimeout):
            api.post(CONTACTS, json=[contact("c-slow")], timeout=0.1)
        assert server.state.journal() == []
        deadline = time.monotonic() + 3
        while not server.state.journal() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)
        [entry] = server.state.journal()
        assert entry["action"] == "add_contact" and entry["contact_id"] == "c-slow"
    finally:
        api.close()


# Scripts, state changes, journal and reset


def test_scripted_responses_come_in_order_then_normal_behaviour(api: Api, admin: Api) -> None:
    script = {
        "method": "POST",
        "path": r"/contactlists/[^/]+/contacts$",
        "responses": [
            {"status": 503},
            {"status": 429, "headers": {"Retry-After": "2"}},
            {"status": 403, "code": "missing.permissions", "message": "scripted no"},
        ],
    }
    assert admin.post("/sandbox/script", json=script).json() == {"scripted": 3, "pending": 3}
    assert api.post(TRIGGER).status_code == 202  # another path: not consumed
    assert api.get("/api/v2/outbound/contactlists/cl-oncall").status_code == 200
    assert_genesys_error(api.post(CONTACTS, json=[contact()]), 503, "service.unavailable")
    r = api.post(CONTACTS, json=[contact()])
    body = assert_genesys_error(r, 429, "too.many.requests.retry.after")
    assert r.headers["Retry-After"] == "2" and "[2]" in body["message"]
    assert assert_genesys_error(api.post(CONTACTS, json=[contact()]), 403, "missing.permissions")["message"] == (
        "scripted no"
    )
    assert api.post(CONTACTS, json=[contact()]).status_code == 200
    assert [e["action"] for e in admin.get("/sandbox/journal").json()] == ["trigger", "add_contact"]


def test_scripted_success_performs_the_real_action(api: Api, admin: Api) -> None:
    admin.post("/sandbox/script", json={"path": "/trigger$", "responses": [{"status": 200}]})
    r = api.post(TRIGGER)
    assert r.status_code == 200
    assert len(admin.get("/sandbox/journal").json()) == 1


def test_scripted_token_endpoint_answers_oauth_errors(sandbox: SandboxServer, admin: Api) -> None:  # noqa: F811
    admin.post("/sandbox/script", json={"path": "^/oauth/token$", "responses": [{"status": 400}]})
    r = requests.post(
        f"{sandbox.url}/oauth/token",
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
        timeout=5,
    )
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_request",
        "description": "rate limit exceeded",
        "error_description": "rate limit exceeded",
    }
    assert get_token(sandbox.url)


@pytest.mark.parametrize(
    "script",
    [
        {"path": "(", "responses": [{"status": 503}]},
        {"path": "x", "responses": []},
        {"path": "x", "responses": [{"status": 99}]},
        {"responses": [{"status": 503}]},
    ],
)
def test_bad_scripts_are_400(admin: Api, script: dict[str, Any]) -> None:
    r = admin.post("/sandbox/script", json=script)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


def test_patch_state_grants_a_role_live(make_sandbox: MakeSandbox) -> None:  # noqa: F811
    server = make_sandbox(with_grants(sandbox_config(), ("role-pipedial", "div-home")))
    api = Api(server.url, get_token(server.url))
    admin = Api(server.url)
    try:
        assert api.post(TRIGGER).status_code == 403
        clients = admin.get("/sandbox/state").json()["clients"]
        clients[0]["roles"].append({"role_id": "role-pipedial", "division_id": "div-ops"})
        r = admin.patch("/sandbox/state", json={"clients": clients})
        assert r.status_code == 200
        assert api.post(TRIGGER).status_code == 202  # same token, new rights
        r = admin.patch("/sandbox/state", json={"faults": {"error_rate": 1.0}, "rate_limit_per_minute": 1000})
        assert r.json()["rate_limit_per_minute"] == 1000
        assert api.post(TRIGGER).status_code == 503
    finally:
        api.close()
        admin.close()


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"clients": [{"client_id": "c", "client_secret": "s", "roles": [{"role_id": "ghost"}]}]}, "unknown role"),
        ({"journal": []}, "cannot patch journal"),
        ({"faults": {"timeout_rate": -1}}, "faults.timeout_rate"),
    ],
)
def test_bad_patch_is_400_and_changes_nothing(admin: Api, patch: dict[str, Any], words: str) -> None:
    before = admin.get("/sandbox/state").json()
    r = admin.patch("/sandbox/state", json=patch)
    assert r.status_code == 400
    assert words in r.text
    assert admin.get("/sandbox/state").json() == before


def test_requests_log_records_every_api_and_token_request(sandbox: SandboxServer, api: Api, admin: Api) -> None:  # noqa: F811
    api.get("/api/v2/tokens/me")
    api.get("/api/v2/outbound/campaigns/nope")
    log = admin.get("/sandbox/requests").json()
    assert [(e["method"], e["path"], e["status"], e["client_id"]) for e in log] == [
        ("POST", "/oauth/token", 200, CLIENT_ID),
        ("GET", "/api/v2/tokens/me", 200, CLIENT_ID),
        ("GET", "/api/v2/outbound/campaigns/nope", 404, CLIENT_ID),
    ]
    assert log[0]["received_at"] <= log[1]["received_at"] <= log[2]["received_at"]


def test_reset_restores_the_seeded_state(api: Api, admin: Api) -> None:
    api.post(CONTACTS, json=[contact("c-1")])
    admin.post("/sandbox/script", json={"path": "/trigger$", "responses": [{"status": 503}]})
    admin.patch("/sandbox/state", json={"faults": {"latency_ms": 1}, "token_ttl": 5})
    assert admin.post("/sandbox/reset").status_code == 200
    assert admin.get("/sandbox/journal").json() == []
    assert admin.get("/sandbox/requests").json() == []
    assert admin.get("/sandbox/contacts").json() == []
    assert admin.get("/sandbox/state").json() == sandbox_config()
    assert api.post(TRIGGER).status_code == 202  # the script is gone and the token still works
    api.post(CONTACTS, json=[contact("c-1")])
    assert len(admin.get("/sandbox/journal").json()) == 2  # c-1 is new again after the reset


def test_every_response_carries_a_correlation_id(api: Api, admin: Api) -> None:
    ids = {
        api.get("/api/v2/tokens/me").headers["ININ-Correlation-Id"],
        api.post(TRIGGER).headers["ININ-Correlation-Id"],
        admin.get("/sandbox/journal").headers["ININ-Correlation-Id"],
    }
    assert len(ids) == 3


def test_server_defaults_to_the_packaged_config_and_stops_cleanly() -> None:
    with SandboxServer() as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.state.world.contact_lists["cl-oncall"].division_id == "div-ops"
        assert get_token(server.url)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/sandbox/journal", timeout=1)
