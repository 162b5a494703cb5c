# Inputs. Only project_id is required; apex.tfvars.example shows a typical set.

variable "project_id" {
  description = "The GCP project Apex is deployed into (an empty project with billing enabled)."
  type        = string
}

variable "region" {
  description = "Region of the functions, the relay, Artifact Registry and the load balancer's backends."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Firestore location: a multi-region (nam5, eur3) or a region. Fixed once created."
  type        = string
  default     = "nam5"
}

variable "web_origins" {
  description = "Extra web origins (https://host[:port]) allowed to call the functions and the relay (CORS) and to sign in with Firebase Auth. The relay's own URL and the load balancer's domain are always allowed."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.web_origins : can(regex("^https?://[^/]+$", o))])
    error_message = "Each web origin is scheme://host[:port], with no path or trailing slash."
  }
}

variable "domain" {
  description = "Optional. A domain (apex.example.com) for one HTTPS load balancer: /api/agents/<function> to the public functions, /ws and / to the relay. Empty: no load balancer."
  type        = string
  default     = ""
}

variable "relay_image" {
  description = "The relay's container image (Cloud Build passes the one it built, by digest). Empty: Google's placeholder image, so the first apply can run before any image exists."
  type        = string
  default     = ""
}

variable "relay_concurrency" {
  description = "Concurrent requests (open WebSockets) per relay instance. 1000 until the relay benchmark (bench/) says otherwise."
  type        = number
  default     = 1000

  validation {
    condition     = var.relay_concurrency >= 1 && var.relay_concurrency <= 1000
    error_message = "Cloud Run allows 1..1000 concurrent requests per instance."
  }
}

variable "relay_min_instances" {
  description = "Relay instances kept warm (0 lets it scale to zero; the first chat then waits for a cold start)."
  type        = number
  default     = 1
}

variable "relay_max_instances" {
  description = "Upper bound on relay instances."
  type        = number
  default     = 10
}

variable "function_max_instances" {
  description = "Upper bound on instances of each function."
  type        = number
  default     = 20
}

variable "function_calls_per_minute" {
  description = "Per-user limit on public function calls (APEX_FUNCTION_CALLS_PER_MINUTE)."
  type        = number
  default     = 120
}

variable "chat_messages_per_minute" {
  description = "Per-user limit on chat messages, relay and agents_execute (APEX_CHAT_MESSAGES_PER_MINUTE)."
  type        = number
  default     = 30
}

variable "workspace_calls_per_minute" {
  description = "Per-workspace limit on public function calls, API keys' included (APEX_WORKSPACE_CALLS_PER_MINUTE)."
  type        = number
  default     = 6000

  validation {
    condition     = var.workspace_calls_per_minute >= 1 && var.workspace_calls_per_minute <= 1000000
    error_message = "workspace_calls_per_minute is 1..1,000,000."
  }
}

variable "access_cache_seconds" {
  description = "Seconds a function or the relay may cache a membership or API key check (APEX_ACCESS_CACHE_S): a removed member or a revoked key is refused at most this long after the change (DESIGN §9 allows 10)."
  type        = number
  default     = 10

  validation {
    condition     = var.access_cache_seconds >= 0 && var.access_cache_seconds <= 10
    error_message = "access_cache_seconds is 0..10 (DESIGN §9: a change takes effect within 10 s)."
  }
}

variable "answer_writer" {
  description = "`default`: answers written without a model. `gemini`: Gemini phrases the same findings (see gemini_backend)."
  type        = string
  default     = "default"

  validation {
    condition     = contains(["default", "gemini"], var.answer_writer)
    error_message = "answer_writer is `default` or `gemini`."
  }
}

variable "gemini_backend" {
  description = "With answer_writer = gemini: `vertex` (Vertex AI, the functions' service accounts get roles/aiplatform.user) or `api_key` (a Gemini API key in Secret Manager, secret apex-gemini-api-key, read as GEMINI_API_KEY)."
  type        = string
  default     = "vertex"

  validation {
    condition     = contains(["vertex", "api_key"], var.gemini_backend)
    error_message = "gemini_backend is `vertex` or `api_key`."
  }
}

variable "gemini_model" {
  description = "Gemini model id for the gemini answer writer."
  type        = string
  default     = "gemini-2.5-flash"
}

variable "gemini_location" {
  description = "Vertex AI location for Gemini (gemini_backend = vertex)."
  type        = string
  default     = "global"
}

variable "gemini_base_url" {
  description = "Optional override of the Gemini endpoint (a proxy). Empty: Google's endpoint."
  type        = string
  default     = ""
}

variable "bigquery_location" {
  description = "Location of the BigQuery dataset `apex` holding the raw usage records (US, EU, or a region). Fixed once created."
  type        = string
  default     = "US"
}

variable "bigquery_retention_days" {
  description = "Days the raw usage records are kept in BigQuery, counted from each record's ts (partition expiration). The rollups in Firestore are not affected."
  type        = number
  default     = 400

  validation {
    condition     = var.bigquery_retention_days >= 1 && var.bigquery_retention_days <= 3650 && floor(var.bigquery_retention_days) == var.bigquery_retention_days
    error_message = "bigquery_retention_days is a whole number of days, 1..3650."
  }
}
