locals {
  # Names the routes use instead of ids; each is read once with a data source.
  contact_list_names = toset(compact(var.routes[*].target.contact_list_name))
  division_names     = toset(compact(var.routes[*].target.division_name))

  default_division_id = coalesce(var.default_division_id, one(data.genesyscloud_auth_division_home.this[*].id))

  mapping_file  = coalesce(var.mapping_file, "${path.module}/generated/mapping.json")
  hook_url      = "${trimsuffix(var.receiver_url, "/")}/hooks/hcp-terraform"
  expose_secret = var.client_secret_delivery == "output"

  # KEY=value lines without quotes (every value is an id, a URL-safe secret or a path), so the
  # file works with docker --env-file, systemd EnvironmentFile and `set -a; . file`.
  receiver_env = join("\n", [
    "# pipedial receiver environment, rendered by Terraform. Contains secrets: keep it mode 0600.",
    "GENESYSCLOUD_REGION=${var.genesyscloud_region}",
    "GENESYSCLOUD_OAUTHCLIENT_ID=${genesyscloud_oauth_client.this.client_id}",
    local.expose_secret
    ? "GENESYSCLOUD_OAUTHCLIENT_SECRET=${genesyscloud_oauth_client.this.client_secret}"
    : "# GENESYSCLOUD_OAUTHCLIENT_SECRET: in integration credential \"${var.integration_credential_name}\" (${genesyscloud_oauth_client.this.integration_credential_id}); set it, or GENESYSCLOUD_OAUTHCLIENT_SECRET_FILE, from there.",
    "RECEIVER_SECRET_HCP_TERRAFORM=${random_password.hcp_terraform_token.result}",
    "RECEIVER_MAPPING=${abspath(local.mapping_file)}",
    "",
  ])
}
