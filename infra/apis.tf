# The Google APIs Apex uses. Left enabled on destroy: other things in the project may use them.

locals {
  lb_enabled     = var.domain != ""
  gemini_vertex  = var.answer_writer == "gemini" && var.gemini_backend == "vertex"
  gemini_api_key = var.answer_writer == "gemini" && var.gemini_backend == "api_key"

  apis = concat(
    [
      "artifactregistry.googleapis.com",
      "bigquery.googleapis.com",
      "cloudbuild.googleapis.com",
      "cloudfunctions.googleapis.com",
      "cloudresourcemanager.googleapis.com",
      "cloudscheduler.googleapis.com",
      "firebase.googleapis.com",
      "firestore.googleapis.com",
      "iam.googleapis.com",
      "iamcredentials.googleapis.com",
      "identitytoolkit.googleapis.com",
      "logging.googleapis.com",
      "pubsub.googleapis.com",
      "run.googleapis.com",
      "secretmanager.googleapis.com",
      "serviceusage.googleapis.com",
      "storage.googleapis.com",
    ],
    local.lb_enabled ? ["compute.googleapis.com"] : [],
    local.gemini_vertex ? ["aiplatform.googleapis.com"] : [],
  )
}

resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  project            = var.project_id
  service            = each.key
  disable_on_destroy = false
}

data "google_project" "this" {
  project_id = var.project_id
  depends_on = [google_project_service.apis]
}
