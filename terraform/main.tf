# The mapping: routes in, the receiver's mapping file and the rights it needs out.

data "genesyscloud_auth_division_home" "this" {
  count = var.default_division_id == null ? 1 : 0
}

data "genesyscloud_auth_division" "named" {
  for_each = local.division_names

  name = each.key
}

data "genesyscloud_outbound_contact_list" "named" {
  for_each = local.contact_list_names

  name = each.key
}

module "mapping" {
  source = "./modules/mapping"

  routes                   = var.routes
  contact_list_ids         = { for name, list in data.genesyscloud_outbound_contact_list.named : name => list.id }
  division_ids             = { for name, division in data.genesyscloud_auth_division.named : name => division.id }
  default_division_id      = local.default_division_id
  default_cooldown         = var.default_cooldown
  hcp_terraform_workspaces = keys(var.hcp_terraform_workspaces)
}

module "permissions" {
  source = "./modules/permissions"

  actions = module.mapping.actions
}

resource "local_file" "mapping" {
  filename             = local.mapping_file
  content              = module.mapping.json
  file_permission      = "0640"
  directory_permission = "0750"
}
