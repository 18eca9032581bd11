output "action_permissions" {
  description = "The action-to-permission table itself, for documentation and for the test that compares it with receiver/actions.py."
  value       = local.action_permissions
}

output "permission_policies" {
  description = "The permissions as genesyscloud_auth_role permission_policies blocks: a list of {domain, entity_name, action_set}, sorted."
  value       = local.permission_policies
}

output "permissions" {
  description = "Every permission the actions and preflight need, as sorted \"domain:entity:action\" strings."
  value       = local.permissions
}
