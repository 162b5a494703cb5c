# Cloud Functions gen2 (python312): one function per functions-framework target in
# functions/main.py, all from one source bundle, each with its own entry_point.
#
# The bundle (functions/*.py and requirements.txt at its root, shared/ beside them) is made by
# `python3 infra/package_functions.py` (Cloud Build step `package-functions`) as a reproducible
# zip, and uploaded under its content hash: unchanged code keeps the same object name, so no
# function is redeployed.

locals {
  functions_source_zip = "${path.module}/build/functions-source.zip"

  # Public HTTP functions (DESIGN §2): anyone may invoke them; each checks the Firebase ID token
  # itself. Workers are not listed here: they are the topology's push targets (pubsub.tf).
  public_functions = {
    agents_execute      = { memory = "512Mi", timeout_seconds = 90 } # waits up to 60 s for the run
    agents_triage       = { memory = "512Mi", timeout_seconds = 60 }
    agents_data         = { memory = "1Gi", timeout_seconds = 120 }
    agents_optimization = { memory = "1Gi", timeout_seconds = 120 }
    usage_ingest        = { memory = "1Gi", timeout_seconds = 120 } # up to 5 MiB, 5,000 records
    otlp_ingest         = { memory = "1Gi", timeout_seconds = 120 } # OTLP: 5 MiB sent, 32 MiB inflated
    runs_get            = { memory = "256Mi", timeout_seconds = 30 }
    threads_get         = { memory = "256Mi", timeout_seconds = 30 }
    # Workspaces, members, invites, API keys, audit (DESIGN §9): paths below its URL.
    workspaces = { memory = "512Mi", timeout_seconds = 60 }
  }

  # A worker must finish before its subscription's ack deadline, or Pub/Sub redelivers.
  worker_timeouts = {
    for w in local.workers : w => max([for s in values(local.subscriptions) : s.ack_deadline_seconds if s.push_to == w]...)
  }

  function_names = merge(
    { for f in keys(local.public_functions) : f => "apex-${replace(f, "_", "-")}" },
    { for w in local.workers : w => "apex-${replace(w, "_", "-")}" },
  )

  # Environment (shared/config.py ENV_VARS; the infra tests check every reader gets its variables).
  cors_origins = distinct(concat(
    [local.relay_url],
    local.lb_enabled ? ["https://${var.domain}"] : [],
    var.web_origins,
  ))

  gemini_env = var.answer_writer != "gemini" ? {} : merge(
    { APEX_GEMINI_MODEL = var.gemini_model },
    local.gemini_vertex ? {
      GOOGLE_GENAI_USE_VERTEXAI = "true"
      GOOGLE_CLOUD_LOCATION     = var.gemini_location
    } : {},
    var.gemini_base_url == "" ? {} : { APEX_GEMINI_BASE_URL = var.gemini_base_url },
  )

  public_function_env = merge(
    {
      GOOGLE_CLOUD_PROJECT            = var.project_id
      APEX_CORS_ORIGINS               = join(",", local.cors_origins)
      APEX_FUNCTION_CALLS_PER_MINUTE  = tostring(var.function_calls_per_minute)
      APEX_CHAT_MESSAGES_PER_MINUTE   = tostring(var.chat_messages_per_minute)
      APEX_WORKSPACE_CALLS_PER_MINUTE = tostring(var.workspace_calls_per_minute)
      APEX_ACCESS_CACHE_S             = tostring(var.access_cache_seconds)
      APEX_ANSWER_WRITER              = var.answer_writer
    },
    local.gemini_env,
  )

  worker_env = merge(
    {
      GOOGLE_CLOUD_PROJECT = var.project_id
      APEX_ANSWER_WRITER   = var.answer_writer
    },
    local.gemini_env,
  )

  # Secret env refs (name -> Secret Manager secret and version), read at instance start
  # (secrets.tf).
  gemini_secret_env = local.gemini_api_key ? {
    GEMINI_API_KEY = { secret = google_secret_manager_secret.gemini_api_key[0].secret_id, version = "latest" }
  } : {}

  public_function_secret_env = merge(local.gemini_secret_env, {
    # Pinned to the version Terraform made: a version added later never changes the pepper
    # under the stored key hashes.
    APEX_KEY_PEPPER = {
      secret  = google_secret_manager_secret.key_pepper.secret_id
      version = google_secret_manager_secret_version.key_pepper.version
    }
  })

  worker_secret_env = local.gemini_secret_env
}

resource "google_storage_bucket_object" "functions_source" {
  name   = "functions/${filesha256(local.functions_source_zip)}.zip"
  bucket = google_storage_bucket.functions_source.name
  source = local.functions_source_zip
}

resource "google_cloudfunctions2_function" "public" {
  for_each = local.public_functions

  #checkov:skip=CKV_GCP_124:Public HTTP API by design (DESIGN §2): clients call the function URLs directly; each verifies the caller's Firebase ID token and answers 401 without one.
  name        = local.function_names[each.key]
  location    = var.region
  description = "Apex public function ${each.key} (Firebase ID token checked in the app)."

  build_config {
    runtime           = "python312"
    entry_point       = each.key
    service_account   = google_service_account.functions_build.id
    docker_repository = google_artifact_registry_repository.apex.id
    source {
      storage_source {
        bucket = google_storage_bucket.functions_source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    available_memory               = each.value.memory
    timeout_seconds                = each.value.timeout_seconds
    max_instance_count             = var.function_max_instances
    min_instance_count             = 0
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.public_functions.email
    environment_variables          = local.public_function_env

    dynamic "secret_environment_variables" {
      for_each = local.public_function_secret_env
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.workload,
    google_artifact_registry_repository_iam_member.functions_build_writer,
    google_secret_manager_secret_iam_member.gemini_api_key,
    google_secret_manager_secret_iam_member.key_pepper,
  ]
}

resource "google_cloudfunctions2_function" "worker" {
  for_each = local.workers

  name        = local.function_names[each.key]
  location    = var.region
  description = "Apex worker ${each.key}: private, fed by its Pub/Sub push subscription."

  build_config {
    runtime           = "python312"
    entry_point       = each.key
    service_account   = google_service_account.functions_build.id
    docker_repository = google_artifact_registry_repository.apex.id
    source {
      storage_source {
        bucket = google_storage_bucket.functions_source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    available_memory   = "1Gi"
    timeout_seconds    = local.worker_timeouts[each.key]
    max_instance_count = var.function_max_instances
    min_instance_count = 0
    # Pub/Sub push from this project counts as internal traffic; nothing else gets in.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.workers.email
    environment_variables          = local.worker_env

    dynamic "secret_environment_variables" {
      for_each = local.worker_secret_env
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.workload,
    google_artifact_registry_repository_iam_member.functions_build_writer,
    google_secret_manager_secret_iam_member.gemini_api_key,
  ]
}

# Invokers. Gen2 functions are Cloud Run services of the same name: Cloud Run's invoker check
# (run.invoker) decides who may call them.
#
# The public functions are public by design (DESIGN §2: each verifies the Firebase ID token
# itself), but not through a run.invoker grant to allUsers, which organisations enforcing
# domain-restricted sharing refuse. Their invoker check is disabled instead, on the Cloud Run
# service under each function: the Cloud Functions API has no such setting and owns that
# service, so Terraform cannot set it. cloudbuild.yaml's step `public-functions` does, after
# every apply, for the services in output public_function_services (infra/README.md says
# what to run after an apply by hand).

# Workers: only the pusher service account (whose OIDC token the push subscriptions carry).
resource "google_cloud_run_v2_service_iam_member" "worker_invoker" {
  for_each = local.workers

  location = var.region
  name     = google_cloudfunctions2_function.worker[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.pusher.member
}
