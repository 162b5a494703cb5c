# One service account per workload, each with only what it needs, bound on the specific topic,
# secret, repository or service wherever the API allows it. Project-level grants are left for
# the services that have no finer resource (Firestore, Firebase Auth, Vertex AI, Logging) and
# for creating subscriptions at run time (a project permission in Pub/Sub).
#
# Workloads (as in shared/config.py): public_functions, workers, relay; plus the pusher (the
# identity on the workers' push requests), functions_build (builds the function images) and
# the deployer (Cloud Build, build.tf).

resource "google_service_account" "public_functions" {
  account_id   = "apex-public"
  display_name = "Apex public functions"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "workers" {
  account_id   = "apex-workers"
  display_name = "Apex worker functions"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "relay" {
  account_id   = "apex-relay"
  display_name = "Apex chat relay"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "pusher" {
  account_id   = "apex-pusher"
  display_name = "Apex Pub/Sub push identity (the only invoker of the workers)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "functions_build" {
  account_id   = "apex-functions-build"
  display_name = "Apex function image builds"
  depends_on   = [google_project_service.apis]
}

locals {
  workload_members = {
    public_functions = google_service_account.public_functions.member
    workers          = google_service_account.workers.member
    relay            = google_service_account.relay.member
    functions_build  = google_service_account.functions_build.member
  }

  vertex_roles = local.gemini_vertex ? ["roles/aiplatform.user"] : []

  # Project-level roles, only where no narrower resource exists.
  project_roles = {
    # Firestore has no per-collection IAM; Firebase Auth account lookups (revoked/disabled).
    public_functions = concat(["roles/datastore.user", "roles/firebaseauth.viewer"], local.vertex_roles)
    workers          = concat(["roles/datastore.user"], local.vertex_roles)
    relay            = ["roles/datastore.user", "roles/firebaseauth.viewer"]
    # Reads the source GCF stages in its own bucket; writes build logs.
    functions_build = ["roles/logging.logWriter", "roles/storage.objectViewer"]
  }

  project_role_bindings = merge([
    for who, roles in local.project_roles : {
      for role in roles : "${who} ${role}" => { who = who, role = role }
    }
  ]...)

  # Topics each workload publishes to (names from shared/topology.yaml; the tests check them).
  publishes = {
    # agents_execute: RunRequested; ingest (shared/ingest/accept.py): usage batches and
    # one BigQuery row per record; run events.
    public_functions = ["apex-triage", "apex-usage", "apex-records", "apex-events"]
    # hand-offs along the pipeline, the next queued run of a thread, run events; the budget
    # tick's fan-out, webhook deliveries and alert frames (budget_worker, DESIGN §11).
    workers = ["apex-triage", "apex-data", "apex-optimization", "apex-events", "apex-budget-tick", "apex-notify"]
    # chat.send: RunRequested; run.cancel: run events.
    relay = ["apex-triage", "apex-events"]
  }

  publisher_bindings = merge([
    for who, topics in local.publishes : {
      for topic in topics : "${who} ${topic}" => { who = who, topic = topic }
    }
  ]...)
}

resource "google_project_iam_member" "workload" {
  for_each = local.project_role_bindings

  project = var.project_id
  role    = each.value.role
  member  = local.workload_members[each.value.who]
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.publisher_bindings

  topic  = google_pubsub_topic.topic[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = local.workload_members[each.value.who]
}

# The relay makes one subscription per instance on apex-events at start-up and deletes it at
# shutdown (an expiration policy removes those of a crashed instance). Creating a subscription
# is a project permission in Pub/Sub, and attaching it needs the topic's subscriber role.
resource "google_project_iam_custom_role" "relay_subscriptions" {
  role_id     = "apexRelaySubscriptions"
  title       = "Apex relay: own subscriptions"
  description = "Create, read, pull from and delete the relay's per-instance subscriptions."
  permissions = [
    "pubsub.subscriptions.consume",
    "pubsub.subscriptions.create",
    "pubsub.subscriptions.delete",
    "pubsub.subscriptions.get",
  ]
  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "relay_subscriptions" {
  project = var.project_id
  role    = google_project_iam_custom_role.relay_subscriptions.name
  member  = google_service_account.relay.member
}

resource "google_pubsub_topic_iam_member" "relay_attach" {
  topic  = google_pubsub_topic.topic[local.topology.relay_subscriptions.topic].name
  role   = "roles/pubsub.subscriber"
  member = google_service_account.relay.member
}

# Build images for the functions in Apex's repository only.
resource "google_artifact_registry_repository_iam_member" "functions_build_writer" {
  location   = google_artifact_registry_repository.apex.location
  repository = google_artifact_registry_repository.apex.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.functions_build.member
}
