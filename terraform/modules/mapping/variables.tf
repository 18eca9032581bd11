variable "contact_list_ids" {
  type        = map(string)
  description = "Contact list ids by name, for routes that name their list with target.contact_list_name (the root module reads them with the genesyscloud_outbound_contact_list data source)."
  default     = {}
}

variable "default_cooldown" {
  type        = string
  description = "The mapping's defaults.cooldown: no second action for the same route and target within this window (30s, 10m, 1h, 0)."
  default     = "10m"

  validation {
    condition     = can(regex("^(0|([0-9]+(ms|s|m|h|d))+)$", var.default_cooldown))
    error_message = "default_cooldown must be a duration such as 30s, 10m, 1h30m or 0."
  }
}

variable "default_division_id" {
  type        = string
  description = "The mapping's defaults.division_id: the division of every route whose target names none."

  validation {
    condition     = can(regex("^[A-Za-z0-9._:-]{1,128}$", var.default_division_id))
    error_message = "default_division_id must be a division id (letters, digits and . _ : -)."
  }
}

variable "division_ids" {
  type        = map(string)
  description = "Division ids by name, for routes that name their division with target.division_name (the root module reads them with the genesyscloud_auth_division data source)."
  default     = {}
}

variable "hcp_terraform_workspaces" {
  type        = list(string)
  description = "Names of the HCP Terraform workspaces whose notifications reach the receiver; hcp_terraform_triggers is computed for each."
  default     = []
}

variable "routes" {
  type = list(object({
    name     = string
    continue = optional(bool, false)
    match = optional(object({
      source       = optional(list(string))
      kind         = optional(list(string))
      state        = optional(list(string))
      organization = optional(list(string))
      workspace    = optional(list(string))
      project      = optional(list(string))
      repository   = optional(list(string))
      branch       = optional(list(string))
      environment  = optional(list(string))
    }), {})
    target = object({
      action            = string
      contact_list_id   = optional(string)
      contact_list_name = optional(string)
      campaign_id       = optional(string)
      division_id       = optional(string)
      division_name     = optional(string)
      contact           = optional(map(string))
      cooldown          = optional(string)
    })
  }))
  description = "The routes of the mapping file, in order (first match wins unless continue = true). Match values are lists of globs; a contact list or division may be given by id or by name."

  validation {
    condition     = length(var.routes) > 0
    error_message = "routes must hold at least one route."
  }

  validation {
    condition = alltrue([
      for r in var.routes : can(regex("^[A-Za-z0-9._-]{1,128}$", r.name))
    ]) && length(distinct(var.routes[*].name)) == length(var.routes)
    error_message = "Route names must be unique and made of letters, digits and . _ - (at most 128): ${jsonencode(var.routes[*].name)}."
  }

  validation {
    condition = alltrue([
      for r in var.routes : contains(["add_contact", "start_campaign", "trigger"], r.target.action)
    ])
    error_message = "target.action must be trigger, add_contact or start_campaign: ${jsonencode(var.routes[*].target.action)}."
  }

  validation {
    condition = alltrue([
      for r in var.routes : (
        !(r.target.contact_list_id != null && r.target.contact_list_name != null) &&
        !(r.target.division_id != null && r.target.division_name != null)
      )
    ])
    error_message = "A target gives its contact list by id or by name, not both; the same for its division."
  }

  validation {
    condition = alltrue([
      for r in var.routes : (
        r.target.action == "start_campaign" ? r.target.campaign_id != null :
        r.target.contact_list_id != null || r.target.contact_list_name != null
      )
    ])
    error_message = "trigger and add_contact need target.contact_list_id or target.contact_list_name; start_campaign needs target.campaign_id."
  }

  validation {
    condition = alltrue([
      for r in var.routes : (r.target.action == "add_contact") == (length(coalesce(r.target.contact, {})) > 0)
    ])
    error_message = "target.contact (the list's columns, templated from the event) is required for add_contact and allowed only there."
  }

  validation {
    condition = alltrue(flatten([
      for r in var.routes : [
        for value in values(coalesce(r.target.contact, {})) : [
          for placeholder in regexall("\\{([^{}]*)\\}", replace(replace(value, "{{", ""), "}}", "")) :
          contains(local.event_fields, placeholder[0])
        ]
      ]
    ]))
    error_message = "A contact template names an unknown placeholder; use {field} with one of: ${join(", ", local.event_fields)} (write literal braces as {{ and }})."
  }

  validation {
    condition = alltrue(flatten([
      for r in var.routes : [
        for id in [r.target.contact_list_id, r.target.campaign_id, r.target.division_id] :
        id == null || can(regex("^[A-Za-z0-9._:-]{1,128}$", id))
      ]
    ]))
    error_message = "contact_list_id, campaign_id and division_id must be ids (letters, digits and . _ : -, at most 128)."
  }

  validation {
    condition = alltrue([
      for r in var.routes : r.target.cooldown == null || can(regex("^(0|([0-9]+(ms|s|m|h|d))+)$", r.target.cooldown))
    ])
    error_message = "target.cooldown must be a duration such as 30s, 10m, 1h30m or 0."
  }

  validation {
    condition = alltrue(flatten([
      for r in var.routes : [for s in coalesce(r.match.state, []) : contains(keys(local.state_triggers), s)]
    ]))
    error_message = "match.state values must be states: ${join(", ", keys(local.state_triggers))} (verification is never routed)."
  }

  validation {
    condition = alltrue(flatten([
      for r in var.routes : [for key, globs in r.match : globs == null || length(coalesce(globs, [])) > 0]
    ]))
    error_message = "A match key given as a list needs at least one glob; leave the key out to match anything."
  }

  validation {
    condition = alltrue([
      for r in var.routes : r.target.contact_list_name == null ? true : contains(keys(var.contact_list_ids), r.target.contact_list_name)
    ])
    error_message = "Every target.contact_list_name must be a key of contact_list_ids: ${jsonencode(compact(var.routes[*].target.contact_list_name))} vs ${jsonencode(keys(var.contact_list_ids))}."
  }

  validation {
    condition = alltrue([
      for r in var.routes : r.target.division_name == null ? true : contains(keys(var.division_ids), r.target.division_name)
    ])
    error_message = "Every target.division_name must be a key of division_ids: ${jsonencode(compact(var.routes[*].target.division_name))} vs ${jsonencode(keys(var.division_ids))}."
  }
}
