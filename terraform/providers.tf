# Terraform signs in as an admin OAuth client of its own, never as the client it creates:
# GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET (or GENESYSCLOUD_ACCESS_TOKEN)
# in the environment. The tfe provider reads TFE_TOKEN (and TFE_HOSTNAME for Terraform Enterprise).
provider "genesyscloud" {
  aws_region = var.genesyscloud_region
}
