terraform {
  # 1.9: variable validations that read other variables (modules/mapping).
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    genesyscloud = {
      source  = "mypurecloud/genesyscloud"
      version = "1.84.1"
    }
    local = {
      source  = "hashicorp/local"
      version = "~> 2.5"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
    tfe = {
      source  = "hashicorp/tfe"
      version = "0.80.0"
    }
  }
}
