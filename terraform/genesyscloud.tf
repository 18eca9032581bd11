# The receiver's identity on Genesys Cloud: a role with exactly the permissions its routes need,
# granted to a client-credentials OAuth client in every division the routes act in.

resource "genesyscloud_auth_role" "this" {
  name        = var.name
  description = "pipedial receiver: the permissions of its routes' actions (${join(", ", module.mapping.actions)}) and preflight's read-only checks. Managed by Terraform."

  dynamic "permission_policies" {
    for_each = module.permissions.permission_policies

    content {
      domain      = permission_policies.value.domain
      entity_name = permission_policies.value.entity_name
      action_set  = permission_policies.value.action_set
    }
  }
}

resource "genesyscloud_oauth_client" "this" {
  name                          = var.name
  description                   = "pipedial receiver: performs routed pipeline actions. Managed by Terraform."
  authorized_grant_type         = "CLIENT-CREDENTIALS"
  access_token_validity_seconds = var.access_token_validity_seconds

  # No `scopes`: a client-credentials client's authority is its roles per division. Scopes apply
  # only to the other grants; granting them here would not turn a missing role into a 200.
  dynamic "roles" {
    for_each = toset(module.mapping.division_ids)

    content {
      role_id     = genesyscloud_auth_role.this.id
      division_id = roles.value
    }
  }

  integration_credential_name = local.expose_secret ? null : var.integration_credential_name
  expose_client_secret        = local.expose_secret
}
