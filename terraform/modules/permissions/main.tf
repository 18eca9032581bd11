locals {
  # The permission each platform action needs. receiver/actions.py holds the same table;
  # tests/terraform/test_permissions_match_code.py fails if the two drift apart.
  action_permissions = {
    add_contact    = "outbound:contact:add"
    start_campaign = "outbound:campaign:start"
    trigger        = "outbound:contactList:edit"
  }

  # Read-only permissions `receiver preflight` uses: GET contact list, GET campaign, GET role.
  preflight_permissions = [
    "authorization:role:view",
    "outbound:campaign:view",
    "outbound:contactList:view",
  ]

  permissions = sort(distinct(concat(
    [for a in var.actions : local.action_permissions[a]],
    local.preflight_permissions,
  )))

  # "domain:entity" => the actions granted on it, e.g. "outbound:contact" => ["add"].
  entity_actions = {
    for p in local.permissions : join(":", slice(split(":", p), 0, 2)) => split(":", p)[2]...
  }

  # One genesyscloud_auth_role permission_policies block per (domain, entity_name).
  permission_policies = [
    for entity in sort(keys(local.entity_actions)) : {
      domain      = split(":", entity)[0]
      entity_name = split(":", entity)[1]
      action_set  = sort(distinct(local.entity_actions[entity]))
    }
  ]
}
