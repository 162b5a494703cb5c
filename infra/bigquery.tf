# Raw usage records in BigQuery (DESIGN §10, docs/bigquery.md), from shared/topology.yaml's
# bigquery_exports: for each, a table in dataset `apex` (schema infra/schemas/<table>.json,
# written by `python -m infra.bq_schema` from the row model; a test keeps the two equal),
# partitioned by the UTC day of a timestamp column, clustered, partitions kept
# var.bigquery_retention_days; and a BigQuery subscription that writes each message of the
# topic as one row, dead letters to <topic>-dlq (pubsub.tf keeps them in <topic>-dlq-keep).
#
# The subscription writes as the Pub/Sub service agent, so the agent may write the table and
# read its metadata, publish to the dead-letter topic and acknowledge on the subscription.

locals {
  bigquery_tables        = { for e in local.bigquery_exports : e.table => e }
  bigquery_subscriptions = { for e in local.bigquery_exports : e.subscription => e }

  bigquery_writer_roles = ["roles/bigquery.dataEditor", "roles/bigquery.metadataViewer"]
  bigquery_writer_grants = merge([
    for table in keys(local.bigquery_tables) : {
      for role in local.bigquery_writer_roles : "${table} ${role}" => { table = table, role = role }
    }
  ]...)
}

resource "google_bigquery_dataset" "apex" {
  #checkov:skip=CKV_GCP_81:Usage records (token counts, model and feature names, no prompts) as in Firestore; Google-managed encryption as for Firestore itself, no customer-managed key.
  project     = var.project_id
  dataset_id  = "apex"
  location    = var.bigquery_location
  description = "Apex raw usage records (docs/bigquery.md)."

  # Never drop a table's rows with the dataset; the tables are deletion-protected as well.
  delete_contents_on_destroy = false

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "export" {
  for_each = local.bigquery_tables

  #checkov:skip=CKV_GCP_80:Usage records (token counts, model and feature names, no prompts) as in Firestore; Google-managed encryption as for Firestore itself, no customer-managed key.
  project     = var.project_id
  dataset_id  = google_bigquery_dataset.apex.dataset_id
  table_id    = each.key
  description = "One row per accepted usage record (topic ${each.value.topic}); rows may repeat: deduplicate on (workspace_id, record_id), docs/bigquery.md."
  schema      = file("${path.module}/schemas/${each.key}.json")

  time_partitioning {
    type          = "DAY"
    field         = each.value.partition_by_day
    expiration_ms = var.bigquery_retention_days * 86400000
  }
  clustering = each.value.cluster_by
  # A query must name the days it reads: a whole-table scan of every workspace's calls is
  # a mistake that costs money.
  require_partition_filter = true

  # A schema change that BigQuery cannot apply in place must not replace the table.
  deletion_protection = true
}

resource "google_bigquery_table_iam_member" "pubsub_writer" {
  for_each = local.bigquery_writer_grants

  project    = var.project_id
  dataset_id = google_bigquery_dataset.apex.dataset_id
  table_id   = google_bigquery_table.export[each.value.table].table_id
  role       = each.value.role
  member     = google_project_service_identity.pubsub.member
}

resource "google_pubsub_subscription" "bigquery" {
  for_each = local.bigquery_subscriptions

  name                 = each.key
  topic                = google_pubsub_topic.topic[each.value.topic].id
  ack_deadline_seconds = local.defaults.ack_deadline_seconds

  bigquery_config {
    table = "${var.project_id}.${google_bigquery_dataset.apex.dataset_id}.${google_bigquery_table.export[each.value.table].table_id}"
    # The message is the row's JSON, its keys the table's columns (shared/ingest/rows.py).
    use_table_schema = true
    write_metadata   = false
    # A key the table lacks is refused (the message dead-letters), not silently dropped.
    drop_unknown_fields = false
  }

  # Never expire: the default deletes a subscription after 31 idle days.
  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${local.defaults.retry_policy.minimum_backoff_seconds}s"
    maximum_backoff = "${local.defaults.retry_policy.maximum_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic["${each.value.topic}-dlq"].id
    max_delivery_attempts = local.defaults.max_delivery_attempts
  }

  # Pub/Sub checks at creation that its agent may write the table.
  depends_on = [
    google_bigquery_table_iam_member.pubsub_writer,
    google_pubsub_topic_iam_member.bigquery_dead_letter_publisher,
  ]
}

resource "google_pubsub_topic_iam_member" "bigquery_dead_letter_publisher" {
  for_each = local.bigquery_subscriptions

  topic  = google_pubsub_topic.topic["${each.value.topic}-dlq"].name
  role   = "roles/pubsub.publisher"
  member = google_project_service_identity.pubsub.member
}

resource "google_pubsub_subscription_iam_member" "bigquery_dead_letter_subscriber" {
  for_each = local.bigquery_subscriptions

  subscription = google_pubsub_subscription.bigquery[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_project_service_identity.pubsub.member
}
