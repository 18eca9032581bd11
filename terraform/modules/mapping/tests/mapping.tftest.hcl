# Offline: this module has no providers, so `terraform init -backend=false && terraform test` needs no network.
# Structures are compared through jsonencode(): a tuple literal never equals a list or an object.
# tests/terraform/test_terraform_offline.py renders these same shapes and runs `receiver check-mapping` on them.

variables {
  default_division_id = "div-home"
  contact_list_ids    = { "On-call" = "cl-oncall" }
  division_ids        = { "Ops" = "div-ops" }
  hcp_terraform_workspaces = [
    "prod-network",
    "staging-app",
    "sandbox",
  ]
  routes = [
    {
      name = "prod-apply-failed"
      match = {
        source    = ["hcp-terraform"]
        workspace = ["prod-*"]
        state     = ["failed", "drifted"]
      }
      target = {
        action            = "add_contact"
        contact_list_name = "On-call"
        campaign_id       = "camp-oncall"
        division_name     = "Ops"
        cooldown          = "10m"
        contact = {
          Phone  = "+15550100"
          Reason = "{state}: {message}"
        }
      }
    },
    {
      name     = "staging-needs-approval"
      continue = true
      match = {
        workspace = ["staging-*"]
        state     = ["needs_approval"]
      }
      target = {
        action          = "trigger"
        contact_list_id = "cl-staging"
      }
    },
    {
      name  = "ci-failed"
      match = { source = ["github", "gitlab"], state = ["failed"] }
      target = {
        action      = "start_campaign"
        campaign_id = "camp-ci"
        division_id = "div-ci"
      }
    },
  ]
}

run "renders_the_mapping_file" {
  command = plan

  assert {
    condition = jsonencode(output.document) == jsonencode({
      version  = 1
      defaults = { cooldown = "10m", division_id = "div-home" }
      routes = [
        {
          name  = "prod-apply-failed"
          match = { source = ["hcp-terraform"], state = ["failed", "drifted"], workspace = ["prod-*"] }
          target = {
            action          = "add_contact"
            campaign_id     = "camp-oncall"
            contact         = { Phone = "+15550100", Reason = "{state}: {message}" }
            contact_list_id = "cl-oncall"
            cooldown        = "10m"
            division_id     = "div-ops"
          }
        },
        {
          continue = true
          name     = "staging-needs-approval"
          match    = { state = ["needs_approval"], workspace = ["staging-*"] }
          target   = { action = "trigger", contact_list_id = "cl-staging" }
        },
        {
          name   = "ci-failed"
          match  = { source = ["github", "gitlab"], state = ["failed"] }
          target = { action = "start_campaign", campaign_id = "camp-ci", division_id = "div-ci" }
        },
      ]
    })
    error_message = "Names must resolve to ids, unset keys must be left out, and continue written only when true: ${output.json}"
  }

  assert {
    condition     = output.json == jsonencode(output.document)
    error_message = "json must be the document, encoded."
  }
}

run "collects_actions_and_divisions" {
  command = plan

  assert {
    condition     = output.actions == tolist(["add_contact", "start_campaign", "trigger"])
    error_message = "actions must be the distinct target actions, sorted."
  }

  assert {
    condition     = output.division_ids == tolist(["div-ci", "div-home", "div-ops"])
    error_message = "A route without a division acts in the default one; every division the routes use needs a grant."
  }
}

run "derives_triggers_per_watched_workspace" {
  command = plan

  assert {
    condition = jsonencode(output.hcp_terraform_triggers) == jsonencode({
      prod-network = ["assessment:drifted", "assessment:failed", "run:errored", "workspace:auto_destroy_run_results"]
      sandbox      = []
      staging-app  = ["run:needs_attention"]
    })
    error_message = "Only HCP Terraform routes whose workspace glob matches contribute, with their states' triggers: ${jsonencode(output.hcp_terraform_triggers)}"
  }
}

run "a_route_without_states_subscribes_every_trigger" {
  command = plan

  variables {
    hcp_terraform_workspaces = ["any.workspace"]
    routes = [
      {
        name   = "everything"
        match  = { workspace = ["any.work?pace"] }
        target = { action = "trigger", contact_list_id = "cl-1" }
      },
    ]
  }

  assert {
    condition = output.hcp_terraform_triggers["any.workspace"] == tolist([
      "assessment:check_failure",
      "assessment:drifted",
      "assessment:failed",
      "run:applying",
      "run:completed",
      "run:created",
      "run:errored",
      "run:needs_attention",
      "run:planning",
      "workspace:auto_destroy_reminder",
      "workspace:auto_destroy_run_results",
    ])
    error_message = "No state means every state; ? and . must follow glob rules: ${jsonencode(output.hcp_terraform_triggers)}"
  }
}

run "globs_are_anchored_and_dots_literal" {
  command = plan

  variables {
    hcp_terraform_workspaces = ["prod", "prodX", "xprod", "prod-a"]
    routes = [
      {
        name   = "exact"
        match  = { source = ["hcp-*"], workspace = ["prod", "prod-[!b]"], state = ["succeeded"] }
        target = { action = "trigger", contact_list_id = "cl-1" }
      },
    ]
  }

  assert {
    condition = jsonencode(output.hcp_terraform_triggers) == jsonencode({
      prod   = ["run:completed", "workspace:auto_destroy_run_results"]
      prod-a = ["run:completed", "workspace:auto_destroy_run_results"]
      prodX  = []
      xprod  = []
    })
    error_message = "Globs match whole names; [!b] is a negated class: ${jsonencode(output.hcp_terraform_triggers)}"
  }
}

run "rejects_an_unknown_action" {
  command = plan

  variables {
    routes = [{ name = "r", target = { action = "call", contact_list_id = "cl-1" } }]
  }

  expect_failures = [var.routes]
}

run "rejects_no_routes" {
  command = plan

  variables {
    routes = []
  }

  expect_failures = [var.routes]
}

run "rejects_duplicate_route_names" {
  command = plan

  variables {
    routes = [
      { name = "same", target = { action = "trigger", contact_list_id = "cl-1" } },
      { name = "same", target = { action = "trigger", contact_list_id = "cl-2" } },
    ]
  }

  expect_failures = [var.routes]
}

run "rejects_add_contact_without_contact" {
  command = plan

  variables {
    routes = [{ name = "r", target = { action = "add_contact", contact_list_id = "cl-1" } }]
  }

  expect_failures = [var.routes]
}

run "rejects_contact_on_trigger" {
  command = plan

  variables {
    routes = [{ name = "r", target = { action = "trigger", contact_list_id = "cl-1", contact = { Phone = "+1" } } }]
  }

  expect_failures = [var.routes]
}

run "rejects_start_campaign_without_campaign" {
  command = plan

  variables {
    routes = [{ name = "r", target = { action = "start_campaign", contact_list_id = "cl-1" } }]
  }

  expect_failures = [var.routes]
}

run "rejects_a_list_given_by_id_and_name" {
  command = plan

  variables {
    routes = [{ name = "r", target = { action = "trigger", contact_list_id = "cl-1", contact_list_name = "On-call" } }]
  }

  expect_failures = [var.routes]
}

run "rejects_an_unresolved_contact_list_name" {
  command = plan

  variables {
    routes = [{ name = "r", target = { action = "trigger", contact_list_name = "Nobody" } }]
  }

  expect_failures = [var.routes]
}

run "rejects_an_unknown_state" {
  command = plan

  variables {
    routes = [{ name = "r", match = { state = ["faild"] }, target = { action = "trigger", contact_list_id = "cl-1" } }]
  }

  expect_failures = [var.routes]
}

run "rejects_a_bad_cooldown" {
  command = plan

  variables {
    routes = [{ name = "r", target = { action = "trigger", contact_list_id = "cl-1", cooldown = "ten minutes" } }]
  }

  expect_failures = [var.routes]
}

run "rejects_an_unknown_placeholder" {
  command = plan

  variables {
    routes = [{
      name   = "r"
      target = { action = "add_contact", contact_list_id = "cl-1", contact = { Reason = "{status}" } }
    }]
  }

  expect_failures = [var.routes]
}

run "accepts_escaped_braces_in_a_template" {
  command = plan

  variables {
    routes = [{
      name   = "r"
      target = { action = "add_contact", contact_list_id = "cl-1", contact = { Reason = "{{literal}} {state}" } }
    }]
  }

  assert {
    condition     = output.document.routes[0].target.contact.Reason == "{{literal}} {state}"
    error_message = "Templates are passed through untouched."
  }
}

run "rejects_an_empty_match_list" {
  command = plan

  variables {
    routes = [{ name = "r", match = { workspace = [] }, target = { action = "trigger", contact_list_id = "cl-1" } }]
  }

  expect_failures = [var.routes]
}
