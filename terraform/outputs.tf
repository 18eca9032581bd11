output "client_id" {
  description = "The receiver's OAuth client id (GENESYSCLOUD_OAUTHCLIENT_ID)."
  value       = genesyscloud_oauth_client.this.client_id
}

output "client_secret" {
  description = "The receiver's OAuth client secret when client_secret_delivery is \"output\" (it is then stored in state); null otherwise."
  value       = local.expose_secret ? genesyscloud_oauth_client.this.client_secret : null
  sensitive   = true
}

output "hcp_terraform_triggers" {
  description = "The notification triggers each watched workspace subscribes to, derived from the routes' states."
  value       = module.mapping.hcp_terraform_triggers
}

output "integration_credential_id" {
  description = "Id of the integration credential holding the client id and secret when client_secret_delivery is \"integration_credential\"; null otherwise."
  value       = local.expose_secret ? null : genesyscloud_oauth_client.this.integration_credential_id
}

output "mapping" {
  description = "The rendered mapping file (JSON), for receivers that do not run where Terraform does."
  value       = module.mapping.json
}

output "mapping_path" {
  description = "Where the rendered mapping file was written (RECEIVER_MAPPING)."
  value       = abspath(local_file.mapping.filename)
}

output "permissions" {
  description = "The permissions the role grants: the routes' actions plus preflight's read-only ones."
  value       = module.permissions.permissions
}

output "preflight_hint" {
  description = "What to run next: write the env file, check the mapping, start the receiver and run preflight before enabling notifications."
  value       = <<-EOT
    terraform output -raw receiver_env > pipedial.env && chmod 600 pipedial.env
    set -a; . ./pipedial.env; set +a
    receiver check-mapping ${abspath(local_file.mapping.filename)}
    receiver serve    # reachable at ${var.receiver_url}
    receiver preflight --mapping ${abspath(local_file.mapping.filename)}
    # all green: set enable_notifications = true and apply again
  EOT
}

output "receiver_env" {
  description = "A ready env file for the receiver: GENESYSCLOUD_REGION, GENESYSCLOUD_OAUTHCLIENT_ID, GENESYSCLOUD_OAUTHCLIENT_SECRET (when delivered as output), RECEIVER_SECRET_HCP_TERRAFORM, RECEIVER_MAPPING."
  value       = local.receiver_env
  sensitive   = true
}

output "role_id" {
  description = "Id of the role granted to the OAuth client in each division the routes use."
  value       = genesyscloud_auth_role.this.id
}
