output "relay_url" {
  description = "The chat page (/) and the WebSocket endpoint (/ws, as wss://)."
  value       = local.relay_url
}

output "public_function_urls" {
  description = "Each public function's URL (Firebase ID token in Authorization: Bearer)."
  value       = { for name, f in google_cloudfunctions2_function.public : name => f.service_config[0].uri }
}

output "public_function_services" {
  description = "The Cloud Run services of the public functions, space-separated, in region (output region): cloudbuild.yaml's step public-functions disables their invoker check (infra/README.md)."
  value       = join(" ", [for name, f in google_cloudfunctions2_function.public : f.name])
}

output "region" {
  description = "The region of the functions and the relay."
  value       = var.region
}

output "worker_functions" {
  description = "The private workers (invocable only by the pusher service account)."
  value       = { for name, f in google_cloudfunctions2_function.worker : name => f.name }
}

output "lb_ip_address" {
  description = "With var.domain: the address the domain's A record must point at."
  value       = local.lb_enabled ? google_compute_global_address.lb[0].address : null
}

output "lb_url" {
  description = "With var.domain: https://<domain> (chat page at /, WebSocket at /ws, functions at /api/agents/<function>)."
  value       = local.lb_enabled ? "https://${var.domain}" : null
}

output "firebase_auth_domain" {
  description = "The Firebase Auth domain the chat page signs in with (APEX_FIREBASE_AUTH_DOMAIN on the relay)."
  value       = data.google_firebase_web_app_config.chat.auth_domain
}

output "relay_image" {
  description = "The image the relay runs (the placeholder until Cloud Build has deployed one)."
  value       = local.relay_image
}

output "artifact_repository" {
  description = "Where Cloud Build pushes the relay image."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.apex.repository_id}"
}

output "deployer_service_account" {
  description = "The service account to run cloudbuild.yaml as (gcloud builds submit --service-account, or the trigger's)."
  value       = google_service_account.deployer.id
}

output "gemini_api_key_secret" {
  description = "With gemini_backend = api_key: the secret to add the key to, as a version."
  value       = local.gemini_api_key ? google_secret_manager_secret.gemini_api_key[0].secret_id : null
}

output "bigquery_tables" {
  description = "The raw-records tables, project.dataset.table (docs/bigquery.md)."
  value       = { for name, t in google_bigquery_table.export : name => "${var.project_id}.${t.dataset_id}.${t.table_id}" }
}
