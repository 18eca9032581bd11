terraform {
  # No providers: this module is pure computation, so `terraform test` runs it offline.
  required_version = ">= 1.9.0"
}
