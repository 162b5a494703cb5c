# The budget tick (DESIGN §11): Cloud Scheduler publishes it on apex-budget-tick every minute,
# and budget_worker fans it out into one check per workspace with budgets. The message is the
# one the local stack's ticker publishes (devstack/ticker.py, every APEX_BUDGET_TICK_S): data
# {"kind":"budget_tick"} and attribute kind=budget_tick; the worker judges the moment Pub/Sub
# accepted it (its publish time), so a redelivery judges the same moment.
#
# Cloud Scheduler publishes as its service agent, which may publish to the project's topics
# (roles/cloudscheduler.serviceAgent, granted when the API is enabled): no grant here.

resource "google_cloud_scheduler_job" "budget_tick" {
  name        = "apex-budget-tick"
  description = "Apex budget tick (DESIGN §11): every minute, to apex-budget-tick."
  region      = var.region
  schedule    = "* * * * *"
  time_zone   = "Etc/UTC"

  # A tick that could not be published is not retried: the next one, a minute later, judges
  # the same budgets (every alert fires once per budget, month and threshold anyway).
  retry_config {
    retry_count = 0
  }

  pubsub_target {
    topic_name = google_pubsub_topic.topic["apex-budget-tick"].id
    data       = base64encode(jsonencode({ kind = "budget_tick" }))
    attributes = { kind = "budget_tick" }
  }

  depends_on = [google_project_service.apis]
}
