# Secrets, read by the functions as secret env refs (resolved at instance start):
#
# - the API keys' pepper (APEX_KEY_PEPPER, public functions only): the key of the HMAC over
#   every API key's secret (DESIGN §9). Terraform makes it once, from an ephemeral random
#   value written through the write-only `secret_data_wo`: the value exists only in Secret
#   Manager, never in the plan or the state. It must not change: every stored key hash
#   depends on it, so a new pepper revokes every API key (infra/README.md, "API keys' pepper").
# - the Gemini API key (GEMINI_API_KEY), only when answer_writer = gemini and gemini_backend =
#   api_key. Terraform makes the secret, never its value (which comes from outside and would
#   land in the state): add the key as a version by hand (infra/README.md).

ephemeral "random_password" "key_pepper" {
  length  = 64
  special = false
}

resource "google_secret_manager_secret" "key_pepper" {
  secret_id = "apex-key-pepper"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "key_pepper" {
  secret         = google_secret_manager_secret.key_pepper.id
  secret_data_wo = ephemeral.random_password.key_pepper.result
  # The value is sent once, when this version is created. Raising the number makes a new
  # pepper, which revokes every API key.
  secret_data_wo_version = 1
}

# Only the public functions check and create API keys; the workers and the relay never see one.
resource "google_secret_manager_secret_iam_member" "key_pepper" {
  secret_id = google_secret_manager_secret.key_pepper.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.public_functions.member
}

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
