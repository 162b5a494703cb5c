# The chat relay on Cloud Run v2 (DESIGN §3): WebSockets, so a request may last an hour,
# clients stick to an instance (session affinity), and an instance holds many sockets.

locals {
  # Google's placeholder until Cloud Build has built the relay (infra/README.md).
  relay_image = var.relay_image != "" ? var.relay_image : "us-docker.pkg.dev/cloudrun/container/hello"

  relay_service_name = "apex-relay"
  # Cloud Run's deterministic URL, known before the service exists (so the relay's own
  # settings can name it without a cycle).
  relay_url = "https://${local.relay_service_name}-${data.google_project.this.number}.${var.region}.run.app"

  relay_env = {
    GOOGLE_CLOUD_PROJECT          = var.project_id
    APEX_CORS_ORIGINS             = join(",", local.cors_origins)
    APEX_CHAT_MESSAGES_PER_MINUTE = tostring(var.chat_messages_per_minute)
    # The chat page's Firebase web config (the relay serves the page).
    APEX_FIREBASE_API_KEY     = data.google_firebase_web_app_config.chat.api_key
    APEX_FIREBASE_AUTH_DOMAIN = data.google_firebase_web_app_config.chat.auth_domain
    # The page lists the user's threads through the threads_get function.
    APEX_THREADS_GET_URL = google_cloudfunctions2_function.public["threads_get"].service_config[0].uri
    # Its workspace switcher, members and API keys views call the workspaces function.
    APEX_WORKSPACES_URL = google_cloudfunctions2_function.public["workspaces"].service_config[0].uri
    # The dashboard's figures come from agents_data and agents_optimization (DESIGN §12).
    APEX_AGENTS_DATA_URL         = google_cloudfunctions2_function.public["agents_data"].service_config[0].uri
    APEX_AGENTS_OPTIMIZATION_URL = google_cloudfunctions2_function.public["agents_optimization"].service_config[0].uri
    # Seconds a membership check may be cached (the auth frame's workspace, DESIGN §9).
    APEX_ACCESS_CACHE_S = tostring(var.access_cache_seconds)
    # Seconds a new socket has to send its auth frame (DESIGN §3.2).
    APEX_RELAY_AUTH_TIMEOUT_S = "10"
  }
}

resource "google_cloud_run_v2_service" "relay" {
  name                = local.relay_service_name
  location            = var.region
  description         = "Apex chat relay: the WebSocket endpoint /ws and the chat page /."
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false
  # Public by design (DESIGN §3): the chat page and /ws; a socket is closed with 1008 unless
  # its first frame carries a valid Firebase ID token. Public through the disabled invoker
  # check, not a run.invoker grant to allUsers, which organisations enforcing
  # domain-restricted sharing refuse (infra/README.md).
  invoker_iam_disabled = true

  template {
    service_account                  = google_service_account.relay.email
    timeout                          = "3600s"
    session_affinity                 = true
    max_instance_request_concurrency = var.relay_concurrency

    scaling {
      min_instance_count = var.relay_min_instances
      max_instance_count = var.relay_max_instances
    }

    containers {
      image = local.relay_image

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        # Each instance pulls its own Pub/Sub subscription between requests too.
        cpu_idle = false
      }

      dynamic "env" {
        for_each = local.relay_env
        content {
          name  = env.key
          value = env.value
        }
      }

      startup_probe {
        http_get {
          path = "/health/ready"
        }
        period_seconds    = 5
        failure_threshold = 12
      }

      liveness_probe {
        http_get {
          path = "/health/live"
        }
        period_seconds = 30
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.workload,
    google_project_iam_member.relay_subscriptions,
    google_pubsub_topic_iam_member.relay_attach,
  ]
}
