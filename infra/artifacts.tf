# Where deployables are stored: the Artifact Registry repository (relay image, function images)
# and the bucket holding the function source bundles.

resource "google_artifact_registry_repository" "apex" {
  location      = var.region
  repository_id = "apex"
  description   = "Apex images: the relay (Cloud Build) and the functions (their builds)."
  format        = "DOCKER"

  #checkov:skip=CKV_GCP_84:Images are built from this public source tree; Google-managed encryption, no customer-managed key.
  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "functions_source" {
  name                        = "${var.project_id}-apex-functions"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  #checkov:skip=CKV_GCP_62:Holds only function source bundles, named by content hash; Cloud Audit Logs record access, no separate access-log bucket.
  versioning {
    enabled = true
  }

  # Terraform deletes a bundle when a new one replaces it; the old version goes a week later.
  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}
