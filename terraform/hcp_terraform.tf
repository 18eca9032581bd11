# HCP Terraform notifications: every watched workspace posts its run and assessment events to the
# receiver, signed with one HMAC token the receiver knows as RECEIVER_SECRET_HCP_TERRAFORM.

resource "random_password" "hcp_terraform_token" {
  length  = 48
  special = false # the token travels in an env file: keep it free of quoting trouble
}

resource "tfe_notification_configuration" "receiver" {
  for_each = var.hcp_terraform_workspaces

  name             = var.name
  destination_type = "generic"
  workspace_id     = each.value
  url              = local.hook_url
  token            = random_password.hcp_terraform_token.result
  triggers         = module.mapping.hcp_terraform_triggers[each.key]

  # Enabling makes HCP Terraform send a verification delivery at once; the apply fails unless the
  # receiver already answers it with a 2xx. See README.md, "Two-step apply".
  enabled = var.enable_notifications

  lifecycle {
    precondition {
      condition     = length(module.mapping.hcp_terraform_triggers[each.key]) > 0
      error_message = "Workspace ${each.key} is watched but no route can match its events: check the routes' match.source and match.workspace, or stop watching it."
    }
  }
}
