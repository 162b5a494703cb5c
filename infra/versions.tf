# Terraform and provider versions, pinned exactly: a plan means the same thing on every
# machine and in Cloud Build (cloudbuild.yaml runs the hashicorp/terraform image of a
# pinned version that satisfies required_version).
terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "= 7.45.0"
    }
    # Firebase projects/web apps and the Pub/Sub service identity are beta-only resources.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "= 7.45.0"
    }
    # The API keys' pepper: an ephemeral random_password (3.7.1+), written to Secret Manager
    # through a write-only argument, so it is never in the plan or the state (secrets.tf).
    random = {
      source  = "hashicorp/random"
      version = "= 3.7.2"
    }
  }

  # State lives in a GCS bucket created once by hand (infra/README.md, step 2):
  #   terraform init -backend-config="bucket=<state bucket>"
  backend "gcs" {
    prefix = "apex"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
  # Quota and billing go to this project, also with user credentials (ADC): Identity
  # Platform and Firebase refuse requests without a quota project.
  user_project_override = true
  billing_project       = var.project_id
  default_labels = {
    app = "apex"
  }
}

provider "google-beta" {
  project               = var.project_id
  region                = var.region
  user_project_override = true
  billing_project       = var.project_id
  default_labels = {
    app = "apex"
  }
}
