# Secrets. Only one: the Gemini API key, when answer_writer = gemini and gemini_backend =
# api_key. Terraform makes the secret, never its value (which would land in the state): add the
# key as a version by hand (infra/README.md). Functions read it as GEMINI_API_KEY through a
# secret env ref, resolved at instance start.

resource "google_secret_manager_secret" "gemini_api_key" {
  count = local.gemini_api_key ? 1 : 0

  secret_id = "apex-gemini-api-key"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

locals {
  gemini_secret_readers = local.gemini_api_key ? {
    public_functions = google_service_account.public_functions.member
    workers          = google_service_account.workers.member
  } : {}
}

resource "google_secret_manager_secret_iam_member" "gemini_api_key" {
  for_each = local.gemini_secret_readers

  secret_id = google_secret_manager_secret.gemini_api_key[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value
}
