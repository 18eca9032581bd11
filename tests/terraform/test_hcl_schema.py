"""terraform/ read statically: it parses, it uses only what the provider schemas define, and it keeps its promises.

The providers cannot be downloaded here, so `terraform validate` cannot run on the root module; these
checks stand in for it, against terraform-provider-schemas.json (CONTRACT.md §6).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    MODULES,
    SHARED_PROVIDER_SCHEMAS,
    TERRAFORM_DIR,
    VENDORED_PROVIDER_SCHEMAS,
    ProviderSchemas,
    is_block_list,
    is_literal,
    labelled,
    load_hcl,
    load_module,
    module_dirs,
    outputs,
    tf_files,
    unquote,
    variables,
)

RESOURCE_META = {"count", "for_each", "provider", "depends_on", "lifecycle", "provisioner", "connection"}
DATA_META = {"count", "for_each", "provider", "depends_on", "lifecycle"}
BLOCK_TYPES = ("block_set", "block_list")


def _rel(path: Path) -> str:
    return str(path.relative_to(TERRAFORM_DIR.parent))


# --- parsing and layout ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", tf_files(), ids=_rel)
def test_every_tf_file_parses(path: Path) -> None:
    assert isinstance(load_hcl(path), dict)


@pytest.mark.parametrize("directory", module_dirs(), ids=_rel)
def test_standard_module_structure(directory: Path) -> None:
    """HashiCorp's standard module structure: main.tf, variables.tf, outputs.tf and versions.tf in every module."""
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
        assert (directory / name).is_file(), f"{_rel(directory)} lacks {name}"
    assert (TERRAFORM_DIR / "README.md").is_file()


def test_vendored_provider_schemas_match_the_shared_contract() -> None:
    if not SHARED_PROVIDER_SCHEMAS.is_file():
        pytest.skip(f"{SHARED_PROVIDER_SCHEMAS} is not here; the vendored copy is used")
    shared = json.loads(SHARED_PROVIDER_SCHEMAS.read_text(encoding="utf-8"))
    vendored = json.loads(VENDORED_PROVIDER_SCHEMAS.read_text(encoding="utf-8"))
    assert vendored == shared, f"refresh {VENDORED_PROVIDER_SCHEMAS} from {SHARED_PROVIDER_SCHEMAS}"


# --- resources and arguments against the provider schemas -----------------------------------------


def _check_body(body: dict[str, Any], schema: dict[str, Any], where: str, meta: set[str]) -> list[str]:
    """Every argument and block exists and is settable, literals are allowed values, required ones are set."""
    problems: list[str] = []
    given: set[str] = set()
    for key, value in body.items():
        if key.startswith("__") or key in meta:
            continue
        if key == "dynamic":
            for labels, dyn in labelled(value, 1):
                name = labels[0]
                spec = schema.get(name)
                if spec is None or spec["type"] not in BLOCK_TYPES:
                    problems.append(f'{where}: dynamic "{name}" is not a block of this type')
                    continue
                if "for_each" not in dyn or "content" not in dyn:
                    problems.append(f'{where}: dynamic "{name}" needs for_each and content')
                    continue
                given.add(name)
                for content in dyn["content"]:
                    problems += _check_body(content, spec["block"], f"{where}.{name}", set())
            continue
        spec = schema.get(key)
        if spec is None:
            problems.append(f"{where}: unknown argument or block {key!r}")
            continue
        given.add(key)
        if spec["type"] in BLOCK_TYPES:
            if not is_block_list(value):
                problems.append(f"{where}: {key} is a block; write `{key} {{ ... }}`, not an attribute")
                continue
            if "max_items" in spec and len(value) > spec["max_items"]:
                problems.append(f"{where}: at most {spec['max_items']} {key} block(s)")
            for block in value:
                problems += _check_body(block, spec["block"], f"{where}.{key}", set())
            continue
        if is_block_list(value):
            problems.append(f"{where}: {key} is an argument, not a block")
        if not (spec["required"] or spec["optional"]):
            problems.append(f"{where}: {key} is computed by the provider and cannot be set")
        if spec.get("deprecated"):
            problems.append(f"{where}: {key} is deprecated: {spec['deprecated']}")
        allowed = spec.get("allowed_values")
        if allowed and is_literal(value) and unquote(value) not in allowed:
            problems.append(f"{where}: {key} = {value} is not one of {allowed}")
    for key, spec in schema.items():
        if spec.get("required") and key not in given:
            problems.append(
                f"{where}: required {'block' if spec['type'] in BLOCK_TYPES else 'argument'} {key!r} is not set"
            )
    return problems


def _blocks(kind: str, depth: int) -> list[tuple[tuple[str, ...], dict[str, Any], Path]]:
    found = []
    for directory in module_dirs():
        for labels, body in labelled(load_module(directory).get(kind, []), depth):
            found.append((labels, body, directory))
    return found


def test_resources_and_arguments_exist_in_the_provider_schemas(schemas: ProviderSchemas) -> None:
    resources = _blocks("resource", 2)
    assert resources, "terraform/ declares no resources"
    problems: list[str] = []
    for (rtype, rname), body, _ in resources:
        schema = schemas.resources.get(rtype)
        if schema is None:
            problems.append(f"resource {rtype}: not in the provider schema files")
            continue
        problems += _check_body(body, schema, f"{rtype}.{rname}", RESOURCE_META)
    assert not problems, "\n".join(problems)


def test_data_sources_and_arguments_exist_in_the_provider_schemas(schemas: ProviderSchemas) -> None:
    problems: list[str] = []
    for (dtype, dname), body, _ in _blocks("data", 2):
        schema = schemas.data_sources.get(dtype)
        if schema is None:
            problems.append(f"data {dtype}: not in the provider schema files")
            continue
        problems += _check_body(body, schema, f"data.{dtype}.{dname}", DATA_META)
    assert not problems, "\n".join(problems)


def test_provider_blocks_use_known_arguments(schemas: ProviderSchemas) -> None:
    problems: list[str] = []
    for (name,), body, _ in _blocks("provider", 1):
        schema = schemas.provider.get(name)
        if schema is None:
            problems.append(f"provider {name}: not in the provider schema files")
            continue
        problems += _check_body(body, schema, f"provider.{name}", {"alias"})
        assert not any(k in body for k in ("oauthclient_secret", "access_token")), (
            "credentials come from the environment"
        )
    assert not problems, "\n".join(problems)


def test_the_schema_check_catches_mistakes(schemas: ProviderSchemas) -> None:
    """The checker itself: unknown, computed, deprecated, missing and disallowed arguments are all reported."""
    body = {
        "name": '"x"',
        "authorized_grant_type": '"CLIENT_CREDENTIALS"',
        "client_id": '"set-by-hand"',
        "role": [{"role_id": '"r"', "__is_block__": True}],
        "dynamic": [{'"roles"': {"for_each": "${x}", "content": [{"division_id": '"d"', "__is_block__": True}]}}],
    }
    problems = _check_body(body, schemas.resources["genesyscloud_oauth_client"], "oauth", RESOURCE_META)
    text = "\n".join(problems)
    assert "not one of" in text
    assert "computed by the provider" in text
    assert "unknown argument or block 'role'" in text
    assert "oauth.roles: required argument 'role_id'" in text
    problems = _check_body(
        {"length": "16", "number": "true"}, schemas.resources["random_password"], "pw", RESOURCE_META
    )
    assert any("deprecated" in p for p in problems)
    assert _check_body({}, schemas.resources["tfe_notification_configuration"], "n", RESOURCE_META)


# --- the promises of the issue --------------------------------------------------------------------


def _resource(rtype: str, rname: str) -> dict[str, Any]:
    for (t, n), body, _ in _blocks("resource", 2):
        if (t, n) == (rtype, rname):
            return body
    raise AssertionError(f"no resource {rtype}.{rname}")


def _dynamic(body: dict[str, Any], name: str) -> dict[str, Any]:
    for labels, dyn in labelled(body.get("dynamic", []), 1):
        if labels[0] == name:
            return dyn
    raise AssertionError(f"no dynamic {name!r} block")


def test_oauth_client_uses_client_credentials_and_roles_per_division_never_scopes() -> None:
    client = _resource("genesyscloud_oauth_client", "this")
    assert unquote(client["authorized_grant_type"]) == "CLIENT-CREDENTIALS"
    assert "scopes" not in client, "scopes do not give a client-credentials client any right; roles do"
    roles = _dynamic(client, "roles")
    assert roles["for_each"] == "${toset(module.mapping.division_ids)}", "one roles block per division the routes use"
    content = roles["content"][0]
    assert content["role_id"] == "${genesyscloud_auth_role.this.id}"
    assert content["division_id"] == "${roles.value}"
    assert client["access_token_validity_seconds"] == "${var.access_token_validity_seconds}"


def test_secret_goes_to_an_integration_credential_unless_output_is_chosen() -> None:
    client = _resource("genesyscloud_oauth_client", "this")
    assert client["integration_credential_name"] == "${local.expose_secret ? null : var.integration_credential_name}"
    assert client["expose_client_secret"] == "${local.expose_secret}"
    assert "directory_client_secret" not in client


def test_role_grants_exactly_the_permissions_module_policies() -> None:
    role = _resource("genesyscloud_auth_role", "this")
    assert "permissions" not in role, "no general permissions beyond the routes' policies"
    policies = _dynamic(role, "permission_policies")
    assert policies["for_each"] == "${module.permissions.permission_policies}"
    content = policies["content"][0]
    assert {k: v for k, v in content.items() if not k.startswith("__")} == {
        "domain": "${permission_policies.value.domain}",
        "entity_name": "${permission_policies.value.entity_name}",
        "action_set": "${permission_policies.value.action_set}",
    }
    assert "conditions" not in content


def test_root_wires_the_mapping_into_the_permissions_module() -> None:
    modules = {labels[0]: body for labels, body in labelled(load_module(TERRAFORM_DIR)["module"], 1)}
    assert unquote(modules["permissions"]["source"]) == "./modules/permissions"
    assert modules["permissions"]["actions"] == "${module.mapping.actions}"
    assert unquote(modules["mapping"]["source"]) == "./modules/mapping"
    assert modules["mapping"]["routes"] == "${var.routes}"


def test_notifications_are_generic_signed_and_behind_a_switch() -> None:
    note = _resource("tfe_notification_configuration", "receiver")
    assert unquote(note["destination_type"]) == "generic"
    assert note["enabled"] == "${var.enable_notifications}"
    assert note["token"] == "${random_password.hcp_terraform_token.result}"
    assert note["triggers"] == "${module.mapping.hcp_terraform_triggers[each.key]}"
    assert note["url"] == "${local.hook_url}"
    locals_ = {k: v for block in load_module(TERRAFORM_DIR)["locals"] for k, v in block.items()}
    assert "/hooks/hcp-terraform" in locals_["hook_url"]
    assert variables(TERRAFORM_DIR)["enable_notifications"]["default"] is False


def test_mapping_state_triggers_are_values_tfe_accepts(schemas: ProviderSchemas) -> None:
    table = _state_triggers()
    used = {t for triggers in table.values() for t in triggers}
    assert used <= set(schemas.tfe_triggers), sorted(used - set(schemas.tfe_triggers))


def _state_triggers() -> dict[str, list[str]]:
    for block in load_module(MODULES["mapping"])["locals"]:
        if "state_triggers" in block:
            table: dict[str, list[str]] = {
                k: [unquote(t) for t in v] for k, v in block["state_triggers"].items() if not k.startswith("__")
            }
            return table
    raise AssertionError("modules/mapping has no local.state_triggers")


def test_providers_are_pinned() -> None:
    (versions,) = load_hcl(TERRAFORM_DIR / "versions.tf")["terraform"]
    (providers,) = versions["required_providers"]
    pins = {
        name: {k: unquote(v) for k, v in spec.items()} for name, spec in providers.items() if not name.startswith("__")
    }
    assert pins["genesyscloud"] == {"source": "mypurecloud/genesyscloud", "version": "1.84.1"}
    assert pins["tfe"] == {"source": "hashicorp/tfe", "version": "0.80.0"}
    for name, pin in pins.items():
        assert re.fullmatch(r"(~> )?\d+\.\d+(\.\d+)?", pin["version"]), f"{name}: pin a version, not a range"
    assert "required_version" in versions


@pytest.mark.parametrize("name", sorted(MODULES))
def test_submodules_need_no_provider(name: str) -> None:
    """Provider-free, so `terraform init` and `terraform test` work offline on them."""
    module = load_module(MODULES[name])
    assert not {"provider", "resource", "data", "module"} & set(module)
    for block in module.get("terraform", []):
        assert "required_providers" not in block


# --- variables and outputs ------------------------------------------------------------------------

VARIABLE_ORDER = ["type", "description", "default", "sensitive", "nullable", "validation"]
OUTPUT_ORDER = ["description", "value", "sensitive"]
SECRET_NAME = re.compile(r"(^|_)(secret|token|password|key)$")  # e.g. hmac_token, not access_token_validity_seconds


@pytest.mark.parametrize("directory", module_dirs(), ids=_rel)
def test_variables_are_typed_described_and_ordered(directory: Path) -> None:
    found = variables(directory)
    assert list(found) == sorted(found), "variables.tf in alphabetical order"
    for name, body in found.items():
        keys = [k for k in body if not k.startswith("__")]
        assert "type" in body, f"variable {name} has no type"
        assert unquote(body.get("description", "")).strip(), f"variable {name} has no description"
        assert keys == sorted(keys, key=VARIABLE_ORDER.index), f"variable {name}: order {VARIABLE_ORDER}"
        if SECRET_NAME.search(name):
            assert body.get("sensitive") is True, f"variable {name} looks secret but is not sensitive"


@pytest.mark.parametrize("directory", module_dirs(), ids=_rel)
def test_outputs_are_described_and_ordered(directory: Path) -> None:
    found = outputs(directory)
    assert list(found) == sorted(found), "outputs.tf in alphabetical order"
    for name, body in found.items():
        keys = [k for k in body if not k.startswith("__")]
        assert unquote(body.get("description", "")).strip(), f"output {name} has no description"
        assert keys == sorted(keys, key=OUTPUT_ORDER.index), f"output {name}: order {OUTPUT_ORDER}"


def test_outputs_carrying_secrets_are_sensitive() -> None:
    secret_sources = ("client_secret", "random_password", "local.receiver_env")
    found = outputs(TERRAFORM_DIR)
    for name, body in found.items():
        if any(s in str(body["value"]) for s in secret_sources):
            assert body.get("sensitive") is True, f"output {name} carries a secret but is not sensitive"
    assert found["client_secret"]["sensitive"] is True
    assert found["receiver_env"]["sensitive"] is True
    assert "sensitive" not in found["client_id"]


def test_receiver_env_names_the_receivers_variables() -> None:
    locals_ = {k: v for block in load_module(TERRAFORM_DIR)["locals"] for k, v in block.items()}
    env = locals_["receiver_env"]
    for name in (
        "GENESYSCLOUD_REGION=",
        "GENESYSCLOUD_OAUTHCLIENT_ID=",
        "GENESYSCLOUD_OAUTHCLIENT_SECRET=",
        "RECEIVER_SECRET_HCP_TERRAFORM=",
        "RECEIVER_MAPPING=",
    ):
        assert name in env, name


def test_root_routes_type_is_the_mapping_modules() -> None:
    """The root passes routes straight through; the two declarations must not drift."""
    assert variables(TERRAFORM_DIR)["routes"]["type"] == variables(MODULES["mapping"])["routes"]["type"]


def test_readme_documents_every_variable_and_output() -> None:
    readme = (TERRAFORM_DIR / "README.md").read_text(encoding="utf-8")
    missing = [n for n in [*variables(TERRAFORM_DIR), *outputs(TERRAFORM_DIR)] if f"`{n}`" not in readme]
    assert not missing, f"README.md does not mention {missing}"
    for topic in ("enable_notifications = true", "scopes", "403", "state", "preflight"):
        assert topic in readme, topic


# --- references (what `terraform validate` would catch, without providers) ------------------------

REFERENCE = re.compile(
    r"(?<![\w.])(?:"
    r"var\.(?P<var>\w+)|local\.(?P<local>\w+)|module\.(?P<module>\w+)\.(?P<output>\w+)"
    r"|data\.(?P<dtype>\w+)\.(?P<dname>\w+)(?:\[[^\]]*\])?(?:\[\*\])?\.(?P<dattr>\w+)"
    r"|(?P<rtype>(?:genesyscloud|tfe|random|local)_\w+)\.(?P<rname>\w+)\.(?P<rattr>\w+)"
    r")"
)


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() if not k.startswith("__") for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


@pytest.mark.parametrize("directory", module_dirs(), ids=_rel)
def test_references_resolve(directory: Path, schemas: ProviderSchemas) -> None:
    """Every var., local., module., data. and resource reference names something that exists."""
    module = load_module(directory)
    declared_vars = set(variables(directory))
    declared_locals = {k for block in module.get("locals", []) for k in block if not k.startswith("__")}
    submodules = {labels[0]: body for labels, body in labelled(module.get("module", []), 1)}
    sub_outputs = {name: set(outputs(directory / unquote(body["source"]))) for name, body in submodules.items()}
    data = {labels for labels, _ in labelled(module.get("data", []), 2)}
    resources = {labels for labels, _ in labelled(module.get("resource", []), 2)}
    problems = []
    for text in _strings(module):
        for ref in REFERENCE.finditer(text):
            g = ref.groupdict()
            if g["var"] and g["var"] not in declared_vars:
                problems.append(f"var.{g['var']}")
            elif g["local"] and g["local"] not in declared_locals:
                problems.append(f"local.{g['local']}")
            elif g["module"] and g["output"] not in sub_outputs.get(g["module"], set()):
                problems.append(f"module.{g['module']}.{g['output']}")
            elif g["dtype"] and (
                (g["dtype"], g["dname"]) not in data or g["dattr"] not in schemas.data_sources[g["dtype"]]
            ):
                problems.append(f"data.{g['dtype']}.{g['dname']}.{g['dattr']}")
            elif g["rtype"] and (
                (g["rtype"], g["rname"]) not in resources or g["rattr"] not in schemas.resources[g["rtype"]]
            ):
                problems.append(f"{g['rtype']}.{g['rname']}.{g['rattr']}")
    assert not problems, f"unresolved references in {_rel(directory)}: {sorted(set(problems))}"


def test_region_validation_lists_the_providers_regions(schemas: ProviderSchemas) -> None:
    (validation,) = variables(TERRAFORM_DIR)["genesyscloud_region"]["validation"]
    listed = set(re.findall(r'"([a-z0-9-]+)"', validation["condition"]))
    assert listed == set(schemas.provider["genesyscloud"]["aws_region"]["allowed_values"])
