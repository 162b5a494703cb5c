# Optional (var.domain): one global HTTPS load balancer for the whole API on one domain.
#   /api/agents/<function>[/...] -> that public function at /[...] (e.g.
#                                   /api/agents/workspaces/<ws>/members -> /<ws>/members)
#   /ws, / and anything else     -> the relay (WebSocket and chat page)
# plain HTTP redirects to HTTPS. Point the domain's A record at output lb_ip_address; the
# Google-managed certificate becomes active once DNS resolves there.

locals {
  lb_functions = local.lb_enabled ? local.public_functions : {}
  lb_count     = local.lb_enabled ? 1 : 0
  # One route rule per public function; each needs its own priority.
  lb_routes = [for i, f in sort(keys(local.lb_functions)) : { function = f, priority = i + 1 }]
}

resource "google_compute_global_address" "lb" {
  count = local.lb_count
  name  = "apex-lb"

  depends_on = [google_project_service.apis]
}

resource "google_compute_managed_ssl_certificate" "lb" {
  count = local.lb_count
  name  = "apex-lb"

  managed {
    domains = [var.domain]
  }

  depends_on = [google_project_service.apis]
}

resource "google_compute_ssl_policy" "lb" {
  count           = local.lb_count
  name            = "apex-lb"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"

  depends_on = [google_project_service.apis]
}

resource "google_compute_region_network_endpoint_group" "relay" {
  count                 = local.lb_count
  name                  = "apex-relay"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    service = google_cloud_run_v2_service.relay.name
  }
}

# A gen2 function is a Cloud Run service: a serverless NEG reaches it through `cloud_run`
# (`cloud_function` serves 1st-gen functions only). The service carries the function's name
# (service_config[0].service is projects/<p>/locations/<r>/services/<that name>, a form
# `cloud_run.service` does not take): functions.tf's names are lowercase with hyphens, which
# Cloud Run keeps as they are (tests/infra checks both).
resource "google_compute_region_network_endpoint_group" "function" {
  for_each = local.lb_functions

  name                  = google_cloudfunctions2_function.public[each.key].name
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    service = google_cloudfunctions2_function.public[each.key].name
  }
}

resource "google_compute_backend_service" "relay" {
  count                 = local.lb_count
  name                  = "apex-relay"
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"

  backend {
    group = google_compute_region_network_endpoint_group.relay[0].id
  }

  log_config {
    enable      = true
    sample_rate = 1
  }
}

resource "google_compute_backend_service" "function" {
  for_each = local.lb_functions

  name                  = google_cloudfunctions2_function.public[each.key].name
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"

  backend {
    group = google_compute_region_network_endpoint_group.function[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = 1
  }
}

resource "google_compute_url_map" "lb" {
  count           = local.lb_count
  name            = "apex-lb"
  default_service = google_compute_backend_service.relay[0].id

  host_rule {
    hosts        = [var.domain]
    path_matcher = "apex"
  }

  path_matcher {
    name            = "apex"
    default_service = google_compute_backend_service.relay[0].id

    # The function gets the path below its prefix, as it would at its own URL: the workspaces
    # function (and OTLP's /v1/traces) route on it.
    dynamic "route_rules" {
      for_each = local.lb_routes
      content {
        priority = route_rules.value.priority
        service  = google_compute_backend_service.function[route_rules.value.function].id
        match_rules {
          full_path_match = "/api/agents/${route_rules.value.function}"
        }
        match_rules {
          prefix_match = "/api/agents/${route_rules.value.function}/"
        }
        route_action {
          url_rewrite {
            path_prefix_rewrite = "/"
          }
        }
      }
    }
  }
}

resource "google_compute_target_https_proxy" "lb" {
  count            = local.lb_count
  name             = "apex-lb"
  url_map          = google_compute_url_map.lb[0].id
  ssl_certificates = [google_compute_managed_ssl_certificate.lb[0].id]
  ssl_policy       = google_compute_ssl_policy.lb[0].id
}

resource "google_compute_global_forwarding_rule" "https" {
  count                 = local.lb_count
  name                  = "apex-lb-https"
  target                = google_compute_target_https_proxy.lb[0].id
  ip_address            = google_compute_global_address.lb[0].id
  port_range            = "443"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

resource "google_compute_url_map" "http_redirect" {
  count = local.lb_count
  name  = "apex-lb-http-redirect"

  default_url_redirect {
    https_redirect = true
    strip_query    = false
  }
}

resource "google_compute_target_http_proxy" "http_redirect" {
  count   = local.lb_count
  name    = "apex-lb-http-redirect"
  url_map = google_compute_url_map.http_redirect[0].id
}

resource "google_compute_global_forwarding_rule" "http" {
  count                 = local.lb_count
  name                  = "apex-lb-http"
  target                = google_compute_target_http_proxy.http_redirect[0].id
  ip_address            = google_compute_global_address.lb[0].id
  port_range            = "80"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}
