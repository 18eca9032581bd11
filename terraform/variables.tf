variable "access_token_validity_seconds" {
  type        = number
  description = "Lifetime of the receiver's access tokens in seconds, 300 (5 minutes) to 172800 (48 hours). Client credentials have no refresh token: the receiver requests a new token before this runs out."
  default     = 86400

  validation {
    condition     = var.access_token_validity_seconds >= 300 && var.access_token_validity_seconds <= 172800 && floor(var.access_token_validity_seconds) == var.access_token_validity_seconds
    error_message = "access_token_validity_seconds must be a whole number from 300 to 172800."
  }
}

variable "client_secret_delivery" {
  type        = string
  description = "How the OAuth client's secret reaches the receiver: \"integration_credential\" stores it in a Genesys Cloud integration credential and keeps it out of Terraform state; \"output\" exposes it in the sensitive client_secret and receiver_env outputs, which stores it in state."
  default     = "integration_credential"

  validation {
    condition     = contains(["integration_credential", "output"], var.client_secret_delivery)
    error_message = "client_secret_delivery must be \"integration_credential\" or \"output\"."
  }
}

variable "default_cooldown" {
  type        = string
  description = "The mapping's defaults.cooldown: no second action for the same route and target within this window (30s, 10m, 1h, 0)."
  default     = "10m"
}

variable "default_division_id" {
  type        = string
  description = "Division of the routes whose target names none (the mapping's defaults.division_id). Null means the org's home division."
  default     = null
}

variable "enable_notifications" {
  type        = bool
  description = "Turn the HCP Terraform notification configurations on. Enabling sends a verification delivery that fails the apply unless the receiver already answers at receiver_url: apply with false first, start the receiver, then set true and apply again."
  default     = false
}

variable "genesyscloud_region" {
  type        = string
  description = "Genesys Cloud region of the org, as the provider names it (e.g. us-east-1, eu-west-1). Used by the provider and written to the receiver's environment as GENESYSCLOUD_REGION."

  validation {
    condition = contains([
      "us-east-1", "us-east-2", "us-west-2", "ca-central-1", "sa-east-1", "mx-central-1",
      "eu-west-1", "eu-west-2", "eu-central-1", "eu-central-2", "eusc-de-east-1", "me-central-1",
      "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
      "dca", "tca",
    ], var.genesyscloud_region)
    error_message = "genesyscloud_region must be one of the provider's region keys (aws_region), e.g. us-east-1 or eu-west-1."
  }
}

variable "hcp_terraform_workspaces" {
  type        = map(string)
  description = "HCP Terraform workspaces whose notifications go to the receiver, as workspace name => workspace id (ws-...). The names are matched against the routes' match.workspace globs to choose each workspace's triggers."
  default     = {}

  validation {
    condition     = alltrue([for id in values(var.hcp_terraform_workspaces) : can(regex("^ws-[A-Za-z0-9]+$", id))])
    error_message = "hcp_terraform_workspaces values must be workspace ids such as ws-AbCdEf123456."
  }
}

variable "integration_credential_name" {
  type        = string
  description = "Name of the Genesys Cloud integration credential that holds the client id and secret when client_secret_delivery is \"integration_credential\"."
  default     = "pipedial-receiver"
}

variable "mapping_file" {
  type        = string
  description = "Where to write the rendered mapping file (JSON). Null means generated/mapping.json beside this module."
  default     = null
}

variable "name" {
  type        = string
  description = "Name of the role, the OAuth client and each notification configuration."
  default     = "pipedial"

  validation {
    condition     = length(trimspace(var.name)) > 0
    error_message = "name must not be empty."
  }
}

variable "receiver_url" {
  type        = string
  description = "The receiver's public base URL, e.g. https://pipedial.example.com. HCP Terraform posts to <receiver_url>/hooks/hcp-terraform."

  validation {
    condition     = can(regex("^https://[^/?#\\s]+(/[^?#\\s]*)?$", var.receiver_url))
    error_message = "receiver_url must be an https:// URL without query or fragment: webhooks carry signatures and run details."
  }
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
  description = "The receiver's routes, in order, mirroring the mapping file: name, match (lists of globs), continue, and a target with action, contact list (contact_list_id or contact_list_name), campaign_id, division (division_id or division_name), contact template and cooldown. modules/mapping checks the rest."

  validation {
    condition     = length(var.routes) > 0
    error_message = "routes must hold at least one route."
  }

  validation {
    condition     = alltrue([for r in var.routes : contains(["add_contact", "start_campaign", "trigger"], r.target.action)])
    error_message = "target.action must be trigger, add_contact or start_campaign."
  }
}
