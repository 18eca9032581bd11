"""modules/permissions computes, for every set of actions, exactly what receiver.actions.permissions_for says."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from receiver.actions import ACTIONS, PREFLIGHT_PERMISSIONS, permissions_for

from .helpers import MODULES, Terraform

#: A provider-free root that runs the permissions module once per action set (for_each), so one
#: apply covers every subset.
PERMISSIONS_ROOT = """
variable "action_sets" {{
  type = map(set(string))
}}

module "permissions" {{
  source   = "{source}"
  for_each = var.action_sets

  actions = each.value
}}

output "permissions" {{
  value = {{ for key, m in module.permissions : key => m.permissions }}
}}

output "permission_policies" {{
  value = {{ for key, m in module.permissions : key => m.permission_policies }}
}}

output "action_permissions" {{
  value = module.permissions["all"].action_permissions
}}
"""


def _action_sets() -> dict[str, list[str]]:
    """Every subset of the code's actions, keyed by its sorted names ("none" for the empty set)."""
    names = sorted(ACTIONS)
    subsets = {}
    for size in range(len(names) + 1):
        for combo in itertools.combinations(names, size):
            subsets["+".join(combo) or "none"] = list(combo)
    subsets["all"] = names
    return subsets


@pytest.fixture(scope="module")
def computed(terraform: Terraform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root: Path = tmp_path_factory.mktemp("permissions")
    (root / "main.tf").write_text(PERMISSIONS_ROOT.format(source=MODULES["permissions"].as_posix()), encoding="utf-8")
    (root / "terraform.tfvars.json").write_text(json.dumps({"action_sets": _action_sets()}), encoding="utf-8")
    return terraform.apply_outputs(root)


def test_action_table_is_the_codes(computed: dict[str, Any]) -> None:
    assert computed["action_permissions"] == {name: action.permission for name, action in ACTIONS.items()}


@pytest.mark.parametrize("key", sorted(_action_sets()))
def test_permissions_equal_permissions_for(computed: dict[str, Any], key: str) -> None:
    actions = frozenset(_action_sets()[key])
    assert computed["permissions"][key] == permissions_for(actions)


@pytest.mark.parametrize("key", sorted(_action_sets()))
def test_policies_grant_the_same_permissions_and_nothing_more(computed: dict[str, Any], key: str) -> None:
    policies = computed["permission_policies"][key]
    granted = sorted(f"{p['domain']}:{p['entity_name']}:{a}" for p in policies for a in p["action_set"])
    assert granted == permissions_for(frozenset(_action_sets()[key]))
    entities = [(p["domain"], p["entity_name"]) for p in policies]
    assert len(entities) == len(set(entities)), "one permission_policies block per (domain, entity_name)"
    assert all("conditions" not in p for p in policies)


def test_preflight_permissions_are_always_granted(computed: dict[str, Any]) -> None:
    assert computed["permissions"]["none"] == sorted(PREFLIGHT_PERMISSIONS)
