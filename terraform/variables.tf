variable "project_id" {
  description = "GCP project id."
  type        = string
}

variable "region" {
  description = "Region of Cloud Run, Cloud SQL, Artifact Registry and Cloud Scheduler."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Firestore (Native mode) location; empty: the region, as docs/deploy.md and deploy.sh create it (a multi-region such as nam5 also works; it cannot change later)."
  type        = string
  default     = ""
}

variable "payment_gateway_api_key_secret_id" {
  description = "Existing Secret Manager secret holding the gateway API key (created out of band, never in state)."
  type        = string
  default     = "binpay-gateway-api-key"
}

variable "cloud_sql_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-1-3840"
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message goes to the dead-letter topic (docs/contracts.md: 5)."
  type        = number
  default     = 5

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "Pub/Sub allows 5..100 delivery attempts."
  }
}

variable "ack_deadline_seconds" {
  description = "Ack deadline of every subscription (docs/contracts.md: 300, above the processor's 270 s push request timeout)."
  type        = number
  default     = 300
}

variable "relay_schedule" {
  description = "Cron schedule of the outbox relay job (relay_outbox --once): the safety net, since the initiator publishes within the request on Cloud Run."
  type        = string
  default     = "*/5 * * * *"
}

variable "reconcile_schedule" {
  description = "Cron schedule of the reconciler (Cloud Scheduler POST /internal/reconcile on the initiator)."
  type        = string
  default     = "*/5 * * * *"
}

variable "platform" {
  description = "Where the services run: cloudrun (deploy/cloudrun/*.yaml via deploy.sh, push subscriptions, schedules) or gke (k8s/, pull subscriptions, Workload Identity bindings for binpay/initiator and binpay/processor)."
  type        = string
  default     = "cloudrun"

  validation {
    condition     = contains(["cloudrun", "gke"], var.platform)
    error_message = "platform must be cloudrun or gke."
  }
}

variable "deletion_protection" {
  description = "Protect the Cloud SQL instance and Firestore database from terraform destroy."
  type        = bool
  default     = true
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/PROJECT/notificationChannels/ID) the alert policies notify."
  type        = list(string)
  default     = []
}

variable "purge_schedule" {
  description = "Cron schedule of the retention job (manage.py purge_expired: idempotency records past their window, other expired rows)."
  type        = string
  default     = "17 3 * * *"
}

variable "payment_gateway_webhook_secret_secret_id" {
  description = "Existing Secret Manager secret holding the gateway's webhook signing secret (whsec_..., created out of band, never in state)."
  type        = string
  default     = "binpay-gateway-webhook-secret"
}

variable "github_repository" {
  description = "OWNER/REPO whose deploy workflows may act as binpay-deployer (Workload Identity Federation); empty: none."
  type        = string
  default     = ""
}

variable "github_deploy_ref" {
  description = "The protected branch the deploy workflows run from; tokens from any other ref are refused."
  type        = string
  default     = "refs/heads/main"
}
