# The deployer: the service account Cloud Build runs cloudbuild.yaml as (tests, relay image,
# terraform plan/apply). It manages every resource in this directory, so it holds the admin
# roles of those services, but neither roles/owner nor roles/editor; it may act as the
# runtime service accounts it deploys, and only as those.

locals {
  deployer_roles = concat(
    [
      "roles/artifactregistry.admin",
      # The raw-records dataset, its tables and their IAM (bigquery.tf).
      "roles/bigquery.admin",
      "roles/cloudfunctions.admin",
      "roles/datastore.owner",
      "roles/firebase.admin",
      "roles/iam.roleAdmin",
      "roles/iam.serviceAccountAdmin",
      "roles/identityplatform.admin",
      "roles/logging.logWriter",
      "roles/pubsub.admin",
      "roles/resourcemanager.projectIamAdmin",
      "roles/run.admin",
      "roles/secretmanager.admin",
      "roles/serviceusage.serviceUsageAdmin",
      "roles/storage.admin",
    ],
    local.lb_enabled ? ["roles/compute.loadBalancerAdmin"] : [],
  )

  deployed_identities = {
    public_functions = google_service_account.public_functions.name
    workers          = google_service_account.workers.name
    relay            = google_service_account.relay.name
    pusher           = google_service_account.pusher.name
    functions_build  = google_service_account.functions_build.name
  }
}

resource "google_service_account" "deployer" {
  account_id   = "apex-deployer"
  display_name = "Apex deployer (Cloud Build: test, build, terraform apply)"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "deployer" {
  for_each = toset(local.deployer_roles)

  # checkov cannot see these roles through for_each; the skip records that they are admin
  # roles on purpose.
  #checkov:skip=CKV_GCP_42:The deployer applies this Terraform, so it must administer the services it creates (no owner/editor; the infra tests forbid those).
  project = var.project_id
  role    = each.key
  member  = google_service_account.deployer.member
}

resource "google_service_account_iam_member" "deployer_acts_as" {
  for_each = local.deployed_identities

  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deployer.member
}
