locals {
  # Event fields a contact template may name (receiver/model.py Event).
  event_fields = [
    "actor", "branch", "dedupe_key", "delivery_id", "environment", "kind", "message", "occurred_at",
    "organization", "project", "repository", "run_id", "source", "state", "url", "workspace",
  ]

  # The HCP Terraform notification triggers that can deliver each routable state: the inverse of
  # receiver/sources/hcp_terraform.py TRIGGERS, limited to what tfe_notification_configuration
  # accepts. run:errored carries failed and canceled runs alike; an auto-destroy result carries its
  # run's outcome. tests/terraform/test_permissions_match_code.py keeps this equal to the receiver.
  state_triggers = {
    applying          = ["run:applying"]
    canceled          = ["run:errored", "workspace:auto_destroy_run_results"]
    check_failed      = ["assessment:check_failure"]
    created           = ["run:created"]
    destroy_scheduled = ["workspace:auto_destroy_reminder"]
    drifted           = ["assessment:drifted"]
    failed            = ["assessment:failed", "run:errored", "workspace:auto_destroy_run_results"]
    needs_approval    = ["run:needs_attention"]
    running           = ["run:planning"]
    succeeded         = ["run:completed", "workspace:auto_destroy_run_results"]
    unknown           = ["workspace:auto_destroy_run_results"]
  }

  # The mapping file's routes: names resolved to ids, unset keys left out (the receiver's schema
  # allows no nulls), continue written only when true.
  routes = [
    for r in var.routes : merge(
      {
        name  = r.name
        match = { for key, globs in r.match : key => globs if globs != null }
        target = merge(
          {
            for key, value in {
              action          = r.target.action
              contact_list_id = r.target.contact_list_name == null ? r.target.contact_list_id : lookup(var.contact_list_ids, r.target.contact_list_name, null)
              campaign_id     = r.target.campaign_id
              division_id     = r.target.division_name == null ? r.target.division_id : lookup(var.division_ids, r.target.division_name, null)
              cooldown        = r.target.cooldown
            } : key => value if value != null
          },
          [for contact in [r.target.contact] : { contact = contact } if contact != null]...
        )
      },
      [for c in [r.continue] : { continue = true } if c]...
    )
  ]

  document = {
    version = 1
    defaults = {
      division_id = var.default_division_id
      cooldown    = var.default_cooldown
    }
    routes = local.routes
  }

  # The division each route acts in: its own, else the default. The OAuth client needs the role there.
  route_divisions = [for r in local.routes : lookup(r.target, "division_id", var.default_division_id)]

  # The receiver matches with fnmatch globs; the same globs as RE2 patterns (escape the regex
  # metacharacters, then * -> .*, ? -> ., [! -> [^), for the two keys triggers depend on.
  route_patterns = [
    for r in var.routes : {
      for key in ["source", "workspace"] : key => (
        r.match[key] == null ? null : join("|", [
          for glob in r.match[key] :
          "^(?:${replace(replace(replace(replace(glob, "/[.+^$(){}|\\\\]/", "\\$0"), "*", ".*"), "?", "."), "[!", "[^")})$"
        ])
      )
    }
  ]

  # Indexes of the routes HCP Terraform events can match: source unset or a glob matching it.
  hcp_terraform_routes = [
    for i, p in local.route_patterns : i if p.source == null || can(regex(coalesce(p.source, "^$"), "hcp-terraform"))
  ]

  # The triggers each route needs: those of its states, or of every state when it names none.
  # Other match keys (kind, project, ...) can only narrow a route, so they are not evaluated:
  # the subscription is a superset of what the routes use, never a subset.
  route_triggers = [
    for r in var.routes : distinct(flatten([
      for s in coalesce(r.match.state, keys(local.state_triggers)) : lookup(local.state_triggers, s, [])
    ]))
  ]

  hcp_terraform_triggers = {
    for w in var.hcp_terraform_workspaces : w => sort(distinct(flatten([
      for i in local.hcp_terraform_routes : local.route_triggers[i]
      if local.route_patterns[i].workspace == null || can(regex(coalesce(local.route_patterns[i].workspace, "^$"), w))
    ])))
  }
}
