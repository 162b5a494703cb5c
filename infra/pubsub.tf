# Topics and subscriptions, all from shared/topology.yaml (the file the local stack applies to
# the emulator too, through shared/topology.py), so nothing here is listed a second time.
#
# Each work queue T: topic T, push subscription to its worker (OIDC token of the pusher service
# account, retry policy, dead-letter topic T-dlq after max_delivery_attempts), and on T-dlq a
# push subscription to deadletter_worker plus a pull copy T-dlq-keep that keeps dead letters for
# inspection. Each BigQuery export T (bigquery.tf makes its subscription): topic T, dead-letter
# topic T-dlq and its pull copy T-dlq-keep. Relay subscriptions on apex-events are made at run
# time by each relay instance.

locals {
  topology = yamldecode(file("${path.module}/../shared/topology.yaml"))
  defaults = local.topology.defaults

  bigquery_exports = local.topology.bigquery_exports

  topic_names = concat(
    [for t in local.topology.topics : t.name],
    [for q in local.topology.work_queues : "${q.topic}-dlq"],
    [for e in local.bigquery_exports : "${e.topic}-dlq"],
  )

  # The same expansion as Topology.subscriptions() in shared/topology.py (the infra tests
  # compare the two). Every entry has the same attributes, so the maps merge.
  subscriptions = merge(
    {
      for q in local.topology.work_queues : q.subscription => {
        topic                     = q.topic
        push_to                   = q.push_to
        ack_deadline_seconds      = try(q.ack_deadline_seconds, local.defaults.ack_deadline_seconds)
        dead_letter_topic         = "${q.topic}-dlq"
        message_retention_seconds = null
      }
    },
    {
      for q in local.topology.work_queues : "${q.topic}-dlq-worker" => {
        topic                     = "${q.topic}-dlq"
        push_to                   = local.topology.dead_letters.push_to
        ack_deadline_seconds      = local.defaults.ack_deadline_seconds
        dead_letter_topic         = null
        message_retention_seconds = null
      }
    },
    {
      for t in concat(local.topology.work_queues, local.bigquery_exports) : "${t.topic}-dlq-keep" => {
        topic                     = "${t.topic}-dlq"
        push_to                   = null
        ack_deadline_seconds      = local.defaults.ack_deadline_seconds
        dead_letter_topic         = null
        message_retention_seconds = local.defaults.dead_letter_retention_seconds
      }
    },
  )

  # Every private worker function: the ones the subscriptions push to.
  workers = toset([for s in values(local.subscriptions) : s.push_to if s.push_to != null])

  # The subscriptions that carry a dead-letter policy (the Pub/Sub service agent must be
  # allowed to pull from them to forward dead letters).
  dead_lettered = { for name, s in local.subscriptions : name => s if s.dead_letter_topic != null }
}

resource "google_pubsub_topic" "topic" {
  for_each = toset(local.topic_names)

  #checkov:skip=CKV_GCP_83:Messages carry run ids and usage batches already stored in Firestore; Google-managed encryption is used as for Firestore itself, no customer-managed key.
  name = each.key

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "subscription" {
  for_each = local.subscriptions

  name                       = each.key
  topic                      = google_pubsub_topic.topic[each.value.topic].id
  ack_deadline_seconds       = each.value.ack_deadline_seconds
  message_retention_duration = each.value.message_retention_seconds == null ? null : "${each.value.message_retention_seconds}s"

  # Never expire: the default deletes a subscription after 31 idle days.
  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${local.defaults.retry_policy.minimum_backoff_seconds}s"
    maximum_backoff = "${local.defaults.retry_policy.maximum_backoff_seconds}s"
  }

  dynamic "push_config" {
    for_each = each.value.push_to == null ? [] : [each.value.push_to]
    content {
      push_endpoint = google_cloudfunctions2_function.worker[push_config.value].service_config[0].uri
      oidc_token {
        service_account_email = google_service_account.pusher.email
        audience              = google_cloudfunctions2_function.worker[push_config.value].service_config[0].uri
      }
    }
  }

  dynamic "dead_letter_policy" {
    for_each = each.value.dead_letter_topic == null ? [] : [each.value.dead_letter_topic]
    content {
      dead_letter_topic     = google_pubsub_topic.topic[dead_letter_policy.value].id
      max_delivery_attempts = local.defaults.max_delivery_attempts
    }
  }

  # The service agent may publish dead letters from the first failed delivery on, and the
  # pusher may call the workers as soon as messages flow.
  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_cloud_run_v2_service_iam_member.worker_invoker,
    google_service_account_iam_member.pubsub_agent_token_creator,
  ]
}

# The Pub/Sub service agent moves undeliverable messages: it publishes to each dead-letter
# topic and acknowledges on the subscription the message came from.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project = var.project_id
  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = { for name, s in local.dead_lettered : name => s.dead_letter_topic }

  topic  = google_pubsub_topic.topic[each.value].name
  role   = "roles/pubsub.publisher"
  member = google_project_service_identity.pubsub.member
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = local.dead_lettered

  subscription = google_pubsub_subscription.subscription[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_project_service_identity.pubsub.member
}

# Push with an OIDC token: the service agent mints tokens for the pusher service account
# (needed in projects whose Pub/Sub was enabled before April 2021; harmless after).
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.pusher.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_project_service_identity.pubsub.member
}
