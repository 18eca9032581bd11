# Offline: this module has no providers, so `terraform init -backend=false && terraform test` needs no network.
# Lists are compared with tolist() and structures through jsonencode(): a tuple literal never equals a list.

run "no_actions_still_grants_preflight_reads" {
  command = plan

  variables {
    actions = []
  }

  assert {
    condition     = output.permissions == tolist(["authorization:role:view", "outbound:campaign:view", "outbound:contactList:view"])
    error_message = "Preflight's read-only permissions must always be granted, and nothing else."
  }
}

run "add_contact_needs_contact_add" {
  command = plan

  variables {
    actions = ["add_contact"]
  }

  assert {
    condition = output.permissions == tolist([
      "authorization:role:view",
      "outbound:campaign:view",
      "outbound:contact:add",
      "outbound:contactList:view",
    ])
    error_message = "add_contact must add outbound:contact:add and nothing more."
  }

  assert {
    condition = jsonencode(output.permission_policies) == jsonencode([
      { domain = "authorization", entity_name = "role", action_set = ["view"] },
      { domain = "outbound", entity_name = "campaign", action_set = ["view"] },
      { domain = "outbound", entity_name = "contact", action_set = ["add"] },
      { domain = "outbound", entity_name = "contactList", action_set = ["view"] },
    ])
    error_message = "Policies must be one block per (domain, entity_name)."
  }
}

run "all_actions_merge_action_sets_per_entity" {
  command = plan

  variables {
    actions = ["trigger", "add_contact", "start_campaign"]
  }

  assert {
    condition = output.permissions == tolist([
      "authorization:role:view",
      "outbound:campaign:start",
      "outbound:campaign:view",
      "outbound:contact:add",
      "outbound:contactList:edit",
      "outbound:contactList:view",
    ])
    error_message = "Every action's permission plus preflight's, sorted."
  }

  assert {
    condition = jsonencode(output.permission_policies) == jsonencode([
      { domain = "authorization", entity_name = "role", action_set = ["view"] },
      { domain = "outbound", entity_name = "campaign", action_set = ["start", "view"] },
      { domain = "outbound", entity_name = "contact", action_set = ["add"] },
      { domain = "outbound", entity_name = "contactList", action_set = ["edit", "view"] },
    ])
    error_message = "campaign and contactList must each be one block with both actions."
  }
}

run "unknown_action_is_rejected" {
  command = plan

  variables {
    actions = ["add_contact", "call_everyone"]
  }

  expect_failures = [var.actions]
}
