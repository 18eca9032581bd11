output "actions" {
  description = "The platform actions the routes perform, sorted: the input of the permissions module."
  value       = sort(distinct(var.routes[*].target.action))
}

output "division_ids" {
  description = "The divisions the routes act in (their own or the default), sorted: one OAuth client role grant each."
  value       = sort(distinct(local.route_divisions))
}

output "document" {
  description = "The mapping file as a value: {version, defaults, routes}."
  value       = local.document
}

output "hcp_terraform_triggers" {
  description = "For each watched workspace, the sorted notification triggers the routes that can match it need (empty when none can)."
  value       = local.hcp_terraform_triggers
}

output "json" {
  description = "The mapping file rendered as JSON, ready for the receiver (RECEIVER_MAPPING, check-mapping)."
  value       = jsonencode(local.document)
}
