# Firestore (native mode), the composite indexes the code's queries need, and TTL policies.
# Single-field queries (runs/{run}/events by seq, usage_daily by day) use automatic indexes.

locals {
  composite_indexes = {
    # A thread's queued runs, oldest first: thread_id == , status == , order by created_at.
    runs_by_thread_status = {
      collection = "runs"
      fields = [
        { path = "thread_id", order = "ASCENDING" },
        { path = "status", order = "ASCENDING" },
        { path = "created_at", order = "ASCENDING" },
      ]
    }
    # A user's threads in a workspace, newest first.
    threads_by_owner = {
      collection = "threads"
      fields = [
        { path = "owner_uid", order = "ASCENDING" },
        { path = "workspace_id", order = "ASCENDING" },
        { path = "updated_at", order = "DESCENDING" },
      ]
    }
  }

  # Collection groups whose documents Firestore deletes once `expires_at` has passed.
  ttl_fields = {
    dedup              = "expires_at"
    ratelimits         = "expires_at"
    usage_hash_windows = "expires_at"
  }

  # Fields no query filters or orders on, whose automatic single-field indexes would only
  # cost writes: the usage rollups' blobs (a part or a day's rows, up to ~900 KB; only `day`
  # and `kind` are queried) and a window marker's slots (rewritten as calls arrive).
  unindexed_fields = {
    usage_daily_rows         = { collection = "usage_daily", field = "rows" }
    usage_daily_catalogue    = { collection = "usage_daily", field = "catalogue" }
    usage_daily_users_rows   = { collection = "usage_daily_users", field = "rows" }
    usage_hash_windows_slots = { collection = "usage_hash_windows", field = "slots" }
  }
}

resource "google_firestore_database" "default" {
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  # `terraform destroy` leaves the data; delete the database by hand if you mean it.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.apis]
}

resource "google_firestore_index" "composite" {
  for_each = local.composite_indexes

  database    = google_firestore_database.default.name
  collection  = each.value.collection
  query_scope = "COLLECTION"

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value.path
      order      = fields.value.order
    }
  }
}

resource "google_firestore_field" "ttl" {
  for_each = local.ttl_fields

  database   = google_firestore_database.default.name
  collection = each.key
  field      = each.value

  ttl_config {}

  # No single-field indexes on the expiry timestamp: nothing queries it, and indexes on a
  # steadily growing timestamp hot-spot writes.
  index_config {}
}

resource "google_firestore_field" "unindexed" {
  for_each = local.unindexed_fields

  database   = google_firestore_database.default.name
  collection = each.value.collection
  field      = each.value.field

  # An empty index_config: no single-field index at all on this field.
  index_config {}
}
