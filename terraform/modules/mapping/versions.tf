terraform {
  # No providers: this module is pure computation, so `terraform test` runs it offline.
  # Validations that read other variables need Terraform 1.9.
  required_version = ">= 1.9.0"
}
