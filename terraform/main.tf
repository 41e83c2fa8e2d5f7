# BinPay on Google Cloud: Pub/Sub topology, Firestore, Cloud SQL, Secret Manager, service accounts
# with least-privilege IAM, the two Cloud Run services, and the outbox relay job + schedule.
# Names follow docs/contracts.md.

locals {
  cloud_run = var.platform == "cloudrun"
  topics = {
    initiation  = "binpay-initiation"
    rollback    = "rollback"
    completion  = "binpay-completion"
    dead_letter = "binpay-dead-letter"
  }
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  build_agent  = "serviceAccount:${data.google_project.this.number}-compute@developer.gserviceaccount.com"
  # Cloud Run's deterministic service URLs: the push audiences are known before the services exist.
  initiator_host     = "initiator-${data.google_project.this.number}.${var.region}.run.app"
  processor_host     = "processor-${data.google_project.this.number}.${var.region}.run.app"
  initiator_push_url = "https://${local.initiator_host}/pubsub/push"
  processor_push_url = "https://${local.processor_host}/pubsub/push"
  # Cloud Scheduler's token names this audience, never a push one: neither opens the other endpoint.
  reconcile_url = "https://${local.initiator_host}/internal/reconcile"
  # The initiator's request timeout bounds a scheduled reconcile call (its attempt deadline); a pass
  # stops itself well inside it.
  initiator_timeout_seconds = 60

  common_env = {
    BINPAY_ENV               = "production"
    PROJECT_ID               = var.project_id
    GOOGLE_CLOUD_PROJECT     = var.project_id
    PUBSUB_TOPIC             = local.topics.initiation
    PUBSUB_ROLLBACK_TOPIC    = local.topics.rollback
    PUBSUB_COMPLETION_TOPIC  = local.topics.completion
    PUBSUB_DEAD_LETTER_TOPIC = local.topics.dead_letter
    FIRESTORE_COLLECTION     = "transactions"
  }
  initiator_env = merge(local.common_env, {
    DJANGO_ALLOWED_HOSTS            = local.initiator_host
    PUBSUB_ROLLBACK_SUBSCRIPTION    = "processor-sub"
    PUBSUB_COMPLETION_SUBSCRIPTION  = "completion-sub"
    PUBSUB_DEAD_LETTER_SUBSCRIPTION = "dead-letter-sub"
    PUBSUB_PUSH_AUDIENCE            = local.initiator_push_url
    PUBSUB_PUSH_SERVICE_ACCOUNT     = google_service_account.pubsub_push.email
    RECONCILE_AUDIENCE              = local.reconcile_url
    RECONCILE_SERVICE_ACCOUNT       = google_service_account.scheduler.email
    RECONCILE_BATCH_SIZE            = "200"
    RECONCILE_TIME_BUDGET_SECONDS   = "45"
    PAYMENT_GATEWAY_URL             = var.payment_gateway_url
  })
  processor_env = merge(local.common_env, {
    PUBSUB_SUBSCRIPTION          = "initiator-sub"
    PAYMENT_GATEWAY_URL          = var.payment_gateway_url
    FAULT_INJECTION_ENABLED      = "false"
    PUSH_REQUEST_TIMEOUT_SECONDS = "270"
    PAYMENT_TIMEOUT_SECONDS      = "600"
    PUBSUB_PUSH_AUDIENCE         = local.processor_push_url
    PUBSUB_PUSH_SERVICE_ACCOUNT  = google_service_account.pubsub_push.email
    # Private service: Cloud Run checks the push token's signature and forwards it with the
    # signature removed; the app checks the claims (docs/deploy.md, "Push authentication").
    BEHIND_CLOUD_RUN_IAM = "true"
  })
  initiator_secrets = {
    DJANGO_SECRET_KEY = google_secret_manager_secret.django_secret_key.secret_id
    DATABASE_URL      = google_secret_manager_secret.database_url.secret_id
    # The reconciler asks the gateway for a stuck payment's charges.
    PAYMENT_GATEWAY_API_KEY = data.google_secret_manager_secret.gateway_api_key.secret_id
  }
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "apis" {
  for_each = toset(concat([
    "run.googleapis.com",
    "pubsub.googleapis.com",
    "firestore.googleapis.com",
    "sqladmin.googleapis.com",
    "secretmanager.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudbuild.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
  ], local.cloud_run ? [] : ["container.googleapis.com"]))
  service            = each.value
  disable_on_destroy = false
}

resource "google_artifact_registry_repository" "binpay" {
  location      = var.region
  repository_id = "binpay"
  format        = "DOCKER"
  depends_on    = [google_project_service.apis]
}

resource "google_firestore_database" "default" {
  name                    = "(default)"
  location_id             = var.firestore_location
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy         = var.deletion_protection ? "ABANDON" : "DELETE"
  depends_on              = [google_project_service.apis]
}
