"""The root module's own expressions, evaluated offline with every provider object stood in for.

The root module cannot be initialised here (its providers cannot be downloaded), so this builds a
copy in which each resource and data source becomes a built-in `terraform_data` resource: same
count / for_each, its arguments (dynamic blocks as lists) and its preconditions kept, its computed
attributes filled with stub values from the provider schema file. variables.tf, locals.tf,
outputs.tf and the module calls are used as written, with references rewritten to the stand-ins.
Applying that copy with the example's variables evaluates every local, output, argument and
precondition of the real root module; only the providers' own behaviour is left out.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from .helpers import (
    EXAMPLE_TFVARS,
    MAPPING_SCHEMA,
    TERRAFORM_DIR,
    ProviderSchemas,
    Terraform,
    is_block_list,
    labelled,
    load_module,
)

META = {"count", "for_each", "provider", "depends_on", "lifecycle", "provisioner", "connection"}


def _expr(value: Any) -> str:
    """HCL source for a python-hcl2 value (attributes only; blocks are handled by _body)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}") and not value.startswith('"'):
            return value[2:-1]
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_expr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_expr(v)}" for k, v in value.items() if not k.startswith("__")) + " }"
    raise TypeError(value)


def _body(body: dict[str, Any]) -> dict[str, str]:
    """Attribute name -> HCL expression, with static blocks as lists of objects and dynamic ones as for expressions."""
    out: dict[str, str] = {}
    for key, value in body.items():
        if key.startswith("__") or key in META:
            continue
        if key == "dynamic":
            for (name,), dyn in labelled(value, 1):
                content = _object(_body(dyn["content"][0]))
                source = _expr(dyn["for_each"])
                out[name] = f"[for {name} in [for k, v in {source} : {{ key = k, value = v }}] : {content}]"
        elif is_block_list(value):
            out[key] = "[" + ", ".join(_object(_body(block)) for block in value) + "]"
        else:
            out[key] = _expr(value)
    return out


def _object(attrs: dict[str, str]) -> str:
    return "{\n" + "".join(f"      {k} = {v}\n" for k, v in attrs.items()) + "    }"


def _stub(kind: str, rtype: str, rname: str, schema: dict[str, Any], given: set[str]) -> dict[str, str]:
    """Stub values for the computed attributes a configuration does not set."""
    stubs: dict[str, str] = {}
    for attr, spec in schema.items():
        if attr in given or attr == "id" or not spec.get("computed") or spec["type"].startswith("block"):
            continue
        if spec["type"] == "string":
            text = json.dumps(f"{kind}-{rtype}-{rname}-{attr}".replace("_", "-"))
            stubs[attr] = f"sensitive({text})" if spec.get("sensitive") else text
        elif spec["type"] == "bool":
            stubs[attr] = "false"
        elif spec["type"] == "number":
            stubs[attr] = "0"
        else:
            stubs[attr] = "[]"
    return stubs


def _stand_in(kind: str, rtype: str, rname: str, body: dict[str, Any], schema: dict[str, Any]) -> str:
    attrs = _body(body)
    attrs.update(_stub(kind, rtype, rname, schema, set(attrs)))
    prefix = "data__" if kind == "data" else ""
    lines = [f'resource "terraform_data" "{prefix}{rtype}__{rname}" {{']
    for meta in ("count", "for_each"):
        if meta in body:
            lines.append(f"  {meta} = {_expr(body[meta])}")
    lines.append(f"  input = {_object(attrs)}")
    for lifecycle in body.get("lifecycle", []):
        for pre in lifecycle.get("precondition", []):
            lines.append("  lifecycle {\n    precondition {")
            lines.append(f"      condition     = {_expr(pre['condition'])}")
            lines.append(f"      error_message = {_expr(pre['error_message'])}\n    }}\n  }}")
    lines.append("}\n")
    return "\n".join(lines)


def _rewrite(text: str, resources: list[tuple[str, str]], data: list[tuple[str, str]]) -> str:
    for dtype, dname in data:
        text = re.sub(rf"(?<![\w.])data\.{dtype}\.{dname}\b", f"terraform_data.data__{dtype}__{dname}", text)
    for rtype, rname in resources:

        def attr(match: re.Match[str], rtype: str = rtype, rname: str = rname) -> str:
            name = match.group(1)
            return f"terraform_data.{rtype}__{rname}." + ("id" if name == "id" else f"output.{name}")

        text = re.sub(rf"(?<![\w.]){rtype}\.{rname}\.(\w+)", attr, text)
    return text


def build_stand_in_root(target: Path, schemas: ProviderSchemas) -> None:
    module = load_module(TERRAFORM_DIR)
    resources = [labels for labels, _ in labelled(module.get("resource", []), 2)]
    data = [labels for labels, _ in labelled(module.get("data", []), 2)]
    shutil.copytree(TERRAFORM_DIR / "modules", target / "modules")
    for name in ("variables.tf", "locals.tf", "outputs.tf"):
        text = (TERRAFORM_DIR / name).read_text(encoding="utf-8")
        (target / name).write_text(_rewrite(text, resources, data), encoding="utf-8")
    calls = re.findall(
        r'^module "\w+" \{\n.*?^\}\n', (TERRAFORM_DIR / "main.tf").read_text(encoding="utf-8"), re.M | re.S
    )
    assert len(calls) == len(module.get("module", [])), "every module call is copied"
    parts = [_rewrite(call, resources, data) for call in calls]
    for (rtype, rname), body in labelled(module.get("resource", []), 2):
        parts.append(_rewrite(_stand_in("resource", rtype, rname, body, schemas.resources[rtype]), resources, data))
    for (dtype, dname), body in labelled(module.get("data", []), 2):
        parts.append(_rewrite(_stand_in("data", dtype, dname, body, schemas.data_sources[dtype]), resources, data))
    (target / "main.tf").write_text("\n".join(parts), encoding="utf-8")


@pytest.fixture(scope="module")
def applied(
    terraform: Terraform, schemas: ProviderSchemas, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The stand-in root applied with the example, once per way of delivering the client secret."""
    results = {}
    for delivery in ("integration_credential", "output"):
        root = tmp_path_factory.mktemp(f"root-{delivery}")
        build_stand_in_root(root, schemas)
        terraform.run("init", "-input=false", "-no-color", cwd=root)
        terraform.run(
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            f"-var-file={EXAMPLE_TFVARS}",
            f"-var=client_secret_delivery={delivery}",
            f"-var=mapping_file={root / 'out' / 'mapping.json'}",
            cwd=root,
        )
        raw = json.loads(terraform.run("output", "-json", "-no-color", cwd=root).stdout)
        state = json.loads(terraform.run("show", "-json", "-no-color", cwd=root).stdout)
        results[delivery] = {"outputs": raw, "state": state}
    return results


def _instances(state: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found = [r for r in state["values"]["root_module"]["resources"] if r["name"] == name]
    assert found, name
    return found


def test_root_outputs_evaluate_and_secrets_stay_sensitive(applied: dict[str, dict[str, Any]]) -> None:
    for delivery, result in applied.items():
        outputs = result["outputs"]
        sensitive = {n for n, o in outputs.items() if o["sensitive"]}
        # a null output (client_secret without "output" delivery) is left out of `terraform output -json`
        assert sensitive == ({"client_secret", "receiver_env"} if delivery == "output" else {"receiver_env"})
        assert outputs["client_id"]["value"] == "resource-genesyscloud-oauth-client-this-client-id"


def test_receiver_env_carries_the_secret_only_when_delivered_as_output(applied: dict[str, dict[str, Any]]) -> None:
    exposed = applied["output"]["outputs"]
    kept = applied["integration_credential"]["outputs"]
    secret = "resource-genesyscloud-oauth-client-this-client-secret"
    assert exposed["client_secret"]["value"] == secret
    assert f"GENESYSCLOUD_OAUTHCLIENT_SECRET={secret}\n" in exposed["receiver_env"]["value"]
    assert "client_secret" not in kept, "null outputs are left out of `terraform output -json`"
    assert (
        kept["integration_credential_id"]["value"]
        == "resource-genesyscloud-oauth-client-this-integration-credential-id"
    )
    assert "integration_credential_id" not in exposed
    assert secret not in kept["receiver_env"]["value"]
    assert (
        '# GENESYSCLOUD_OAUTHCLIENT_SECRET: in integration credential "pipedial-receiver"'
        in kept["receiver_env"]["value"]
    )
    for result in (exposed, kept):
        env = dict(
            line.split("=", 1) for line in result["receiver_env"]["value"].splitlines() if line and line[0] != "#"
        )
        assert env["GENESYSCLOUD_REGION"] == "eu-west-1"
        assert env["RECEIVER_SECRET_HCP_TERRAFORM"] == "resource-random-password-hcp-terraform-token-result"
        assert env["RECEIVER_MAPPING"] == result["mapping_path"]["value"]


def test_oauth_client_gets_the_role_in_each_division_and_the_secret_setting(applied: dict[str, dict[str, Any]]) -> None:
    for delivery, result in applied.items():
        (client,) = _instances(result["state"], "genesyscloud_oauth_client__this")
        args = client["values"]["input"]
        (role,) = _instances(result["state"], "genesyscloud_auth_role__this")
        assert args["authorized_grant_type"] == "CLIENT-CREDENTIALS"
        assert args["access_token_validity_seconds"] == 14400
        assert args["expose_client_secret"] is (delivery == "output")
        assert args["integration_credential_name"] == (None if delivery == "output" else "pipedial-receiver")
        divisions = [i["values"]["id"] for i in _instances(result["state"], "data__genesyscloud_auth_division__named")]
        assert sorted(r["division_id"] for r in args["roles"]) == sorted(divisions)
        assert {r["role_id"] for r in args["roles"]} == {role["values"]["id"]}


def test_role_policies_cover_the_example_actions(applied: dict[str, dict[str, Any]]) -> None:
    (role,) = _instances(applied["output"]["state"], "genesyscloud_auth_role__this")
    granted = sorted(
        f"{p['domain']}:{p['entity_name']}:{a}"
        for p in role["values"]["input"]["permission_policies"]
        for a in p["action_set"]
    )
    assert granted == applied["output"]["outputs"]["permissions"]["value"]
    assert "outbound:contact:add" in granted and "outbound:campaign:start" in granted
    assert "outbound:contactList:edit" not in granted, "no route of the example triggers"


def test_one_disabled_notification_per_watched_workspace(applied: dict[str, dict[str, Any]]) -> None:
    result = applied["integration_credential"]
    notes = {
        i["index"]: i["values"]["input"]
        for i in _instances(result["state"], "tfe_notification_configuration__receiver")
    }
    assert set(notes) == {"platform-prod-network", "platform-prod-k8s", "payments-prod-api"}
    triggers = result["outputs"]["hcp_terraform_triggers"]["value"]
    for workspace, note in notes.items():
        assert note["destination_type"] == "generic"
        assert note["url"] == "https://pipedial.example.com/hooks/hcp-terraform"
        assert note["enabled"] is False
        assert note["token"] == "resource-random-password-hcp-terraform-token-result"
        assert note["triggers"] == triggers[workspace]


def test_root_writes_a_mapping_the_receiver_accepts(applied: dict[str, dict[str, Any]]) -> None:
    if not MAPPING_SCHEMA.is_file():
        pytest.skip(f"{MAPPING_SCHEMA} does not exist yet")
    document = json.loads(applied["output"]["outputs"]["mapping"]["value"])
    schema = json.loads(MAPPING_SCHEMA.read_text(encoding="utf-8"))
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(document))
    (mapping_file,) = _instances(applied["output"]["state"], "local_file__mapping")
    assert mapping_file["values"]["input"]["file_permission"] == "0640"
    assert json.loads(mapping_file["values"]["input"]["content"]) == document
