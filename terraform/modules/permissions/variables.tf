variable "actions" {
  type        = set(string)
  description = "Platform actions the routes perform: any of trigger, add_contact, start_campaign. The read-only permissions preflight uses are always included."

  validation {
    condition     = alltrue([for a in var.actions : contains(keys(local.action_permissions), a)])
    error_message = "Unknown action in ${jsonencode(sort(tolist(var.actions)))}; known actions: ${join(", ", sort(keys(local.action_permissions)))}."
  }
}
