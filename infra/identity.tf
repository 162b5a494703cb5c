# Sign-in: Identity Platform (Firebase Auth) with email and password, the domains allowed to
# sign in (the relay's chat page, the load balancer's domain, web_origins), and the Firebase
# web app whose config (API key, auth domain) the chat page uses.

locals {
  auth_domains = distinct(concat(
    [
      "${var.project_id}.firebaseapp.com",
      "${var.project_id}.web.app",
      trimprefix(local.relay_url, "https://"),
    ],
    local.lb_enabled ? [var.domain] : [],
    # host of each scheme://host[:port] origin
    [for o in var.web_origins : split(":", split("/", o)[2])[0]],
  ))
}

resource "google_firebase_project" "apex" {
  provider = google-beta
  project  = var.project_id

  depends_on = [google_project_service.apis]
}

resource "google_identity_platform_config" "apex" {
  project                    = var.project_id
  authorized_domains         = local.auth_domains
  autodelete_anonymous_users = true

  sign_in {
    allow_duplicate_emails = false

    email {
      enabled           = true
      password_required = true
    }
  }

  depends_on = [google_project_service.apis, google_firebase_project.apex]
}

resource "google_firebase_web_app" "chat" {
  provider     = google-beta
  project      = var.project_id
  display_name = "Apex chat"

  depends_on = [google_firebase_project.apex]
}

data "google_firebase_web_app_config" "chat" {
  provider   = google-beta
  project    = var.project_id
  web_app_id = google_firebase_web_app.chat.app_id
}
