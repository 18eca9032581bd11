"""Shared pieces of the terraform/ checks: paths, parsed HCL, provider schemas and an offline terraform runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import hcl2
import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "terraform"
MODULES = {"mapping": TERRAFORM_DIR / "modules" / "mapping", "permissions": TERRAFORM_DIR / "modules" / "permissions"}
EXAMPLE_TFVARS = REPO / "examples" / "terraform.tfvars.example"
MAPPING_SCHEMA = REPO / "receiver" / "schemas" / "mapping.schema.json"
DATA = Path(__file__).resolve().parent / "data"

#: The provider schema file of the shared platform contract (CONTRACT.md §6), and the copy kept here
#: so that a fresh clone can run the checks; test_hcl_schema.py fails if the two differ.
SHARED_PROVIDER_SCHEMAS = REPO.parent / "shared" / "platform" / "terraform-provider-schemas.json"
VENDORED_PROVIDER_SCHEMAS = DATA / "terraform-provider-schemas.json"
UTILITY_PROVIDER_SCHEMAS = DATA / "utility-provider-schemas.json"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip locally; fail in CI (CI=true), where every check must really run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this check may not be skipped)")
    pytest.skip(reason)


# --- HCL ------------------------------------------------------------------------------------------


def tf_files() -> list[Path]:
    """Every .tf file under terraform/, modules included."""
    return sorted(p for p in TERRAFORM_DIR.rglob("*.tf") if ".terraform" not in p.parts)


def module_dirs() -> list[Path]:
    """The root module and each submodule."""
    return [TERRAFORM_DIR, *MODULES.values()]


@cache
def load_hcl(path: Path) -> dict[str, Any]:
    """Parse one HCL file (cached: python-hcl2 is slow, and the parsed trees are only read)."""
    with path.open(encoding="utf-8") as fh:
        data: dict[str, Any] = hcl2.load(fh)
    return data


def load_module(directory: Path) -> dict[str, list[Any]]:
    """All top-level block lists of one module's .tf files, merged by block type."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for key, value in load_hcl(path).items():
            if not key.startswith("__"):
                merged.setdefault(key, []).extend(value)
    return merged


def unquote(text: str) -> str:
    """python-hcl2 keeps a string literal's quotes (and labels'); drop them."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def is_literal(value: object) -> bool:
    """True for a plain quoted string without interpolation."""
    return isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' and "${" not in value


def is_block_list(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def labelled(blocks: list[Any], depth: int) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Yield (labels, body) for blocks with `depth` labels, e.g. resource "type" "name" has depth 2."""
    for block in blocks:
        yield from _labelled(block, depth, ())


def _labelled(
    node: dict[str, Any], depth: int, labels: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    if depth == 0:
        yield labels, node
        return
    for key, value in node.items():
        if not key.startswith("__"):
            yield from _labelled(value, depth - 1, (*labels, unquote(key)))


def variables(directory: Path) -> dict[str, dict[str, Any]]:
    return {labels[0]: body for labels, body in labelled(load_module(directory).get("variable", []), 1)}


def outputs(directory: Path) -> dict[str, dict[str, Any]]:
    return {labels[0]: body for labels, body in labelled(load_module(directory).get("output", []), 1)}


# --- provider schemas -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSchemas:
    """Argument schemas by resource / data source type, in terraform-provider-schemas.json's format."""

    provider: dict[str, dict[str, Any]]
    resources: dict[str, dict[str, Any]]
    data_sources: dict[str, dict[str, Any]]
    tfe_triggers: tuple[str, ...]


def provider_schemas_path() -> Path:
    return SHARED_PROVIDER_SCHEMAS if SHARED_PROVIDER_SCHEMAS.is_file() else VENDORED_PROVIDER_SCHEMAS


@pytest.fixture(scope="session")
def schemas() -> ProviderSchemas:
    main = json.loads(provider_schemas_path().read_text(encoding="utf-8"))
    utility = json.loads(UTILITY_PROVIDER_SCHEMAS.read_text(encoding="utf-8"))
    tfe_resources = main["tfe"]["resources"]
    return ProviderSchemas(
        provider=main["provider"],
        resources={**main["resources"], **tfe_resources, **utility["resources"]},
        data_sources={**main["data_sources"], **utility["data_sources"]},
        tfe_triggers=tuple(tfe_resources["tfe_notification_configuration"]["triggers"]["allowed_values"]),
    )


# --- terraform ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terraform:
    """Runs the terraform CLI offline: no checkpoint calls, no prompts, data dirs in a temp dir."""

    binary: str
    env: dict[str, str]

    def run(
        self, *args: str, cwd: Path, data_dir: Path | None = None, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one command; data_dir keeps .terraform out of a directory of the source tree."""
        env = self.env if data_dir is None else {**self.env, "TF_DATA_DIR": str(data_dir)}
        proc = subprocess.run(
            [self.binary, *args],
            cwd=cwd,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"terraform {' '.join(args)} in {cwd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def apply_outputs(self, directory: Path, *var_files: Path) -> dict[str, Any]:
        """init + apply a provider-free configuration on local state; return its outputs' values."""
        self.run("init", "-input=false", "-no-color", cwd=directory)
        args = [f"-var-file={f}" for f in var_files]
        self.run("apply", "-auto-approve", "-input=false", "-no-color", *args, cwd=directory)
        raw = json.loads(self.run("output", "-json", "-no-color", cwd=directory).stdout)
        return {name: out["value"] for name, out in raw.items()}


@pytest.fixture(scope="session")
def terraform() -> Terraform:
    binary = shutil.which("terraform")
    if binary is None:
        skip_or_fail("terraform is not on PATH")
    env = dict(os.environ)
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")
    cli_config = env.get("TF_CLI_CONFIG_FILE")
    if cli_config and not Path(cli_config).is_file():
        env["TF_CLI_CONFIG_FILE"] = os.devnull  # a dangling setting only adds a warning to every run
    for name in [n for n in env if n.startswith(("TF_VAR_", "TF_CLI_ARGS")) or n in ("TF_DATA_DIR", "TF_WORKSPACE")]:
        del env[name]
    return Terraform(binary=binary, env=env)
