# Rendered by tests/terraform/test_terraform_offline.py through modules/mapping: every route feature
# once, so that the receiver's schema and check-mapping see each shape the module can produce.

default_division_id = "div-default"
default_cooldown    = "0"

hcp_terraform_workspaces = {
  "prod-a" = "ws-prodA1"
  "dev"    = "ws-dev1"
}

routes = [
  {
    name     = "prod-trigger-then-continue"
    continue = true
    match = {
      source       = ["hcp-*"]
      kind         = ["run:errored", "assessment:*"]
      organization = ["acme"]
      workspace    = ["prod-?"]
      project      = ["Default Project"]
      state        = ["failed", "canceled", "drifted", "check_failed"]
    }
    target = {
      action          = "trigger"
      contact_list_id = "cl-prod"
      division_id     = "div-ops"
      cooldown        = "1h30m"
    }
  },
  {
    name = "sales.emea_add-contact"
    match = {
      state = ["needs_approval", "applying", "created", "running", "succeeded", "destroy_scheduled", "unknown"]
    }
    target = {
      action            = "add_contact"
      contact_list_name = "Sales EMEA"
      campaign_id       = "camp-sales:emea"
      division_name     = "Sales EMEA"
      contact = {
        Phone  = "+442071838750"
        Note   = "{{literal braces}} {state} on {workspace} by {actor} at {occurred_at}"
        Detail = "{kind} {run_id} {url} {project} {organization} {repository} {branch} {environment} {source} {message}"
      }
    }
  },
  {
    name = "gitlab-release"
    match = {
      source      = ["gitlab"]
      repository  = ["acme/*"]
      branch      = ["release/*"]
      environment = ["production", "staging"]
      state       = ["failed"]
    }
    target = {
      action      = "start_campaign"
      campaign_id = "camp-release"
      cooldown    = "30s"
    }
  },
  {
    name = "catch-all"
    target = {
      action          = "trigger"
      contact_list_id = "cl-catch-all"
    }
  },
]
