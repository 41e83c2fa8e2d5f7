# BinPay on Google Cloud: Pub/Sub topology, Firestore, Cloud SQL, Secret Manager, service accounts
# with least-privilege IAM, Cloud Scheduler and Cloud Monitoring. The Cloud Run services and jobs
# themselves are deploy/cloudrun/*.yaml, applied by deploy/cloudrun/deploy.sh (docs/deploy.md).
# Names follow docs/contracts.md.

locals {
  cloud_run = var.platform == "cloudrun"
  github    = var.github_repository != ""
  topics = {
    initiation  = "binpay-initiation"
    rollback    = "rollback"
    completion  = "binpay-completion"
    dead_letter = "binpay-dead-letter"
  }
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  # The Cloud Run services and jobs are defined once, in deploy/cloudrun/*.yaml (deploy.sh applies
  # them); what this configuration needs of them (names, the initiator's request timeout) is read
  # from there.
  initiator_service = yamldecode(file("${path.module}/../deploy/cloudrun/initiator.yaml"))
  processor_service = yamldecode(file("${path.module}/../deploy/cloudrun/processor.yaml"))
  relay_job         = yamldecode(file("${path.module}/../deploy/cloudrun/initiator-relay-job.yaml"))
  # Cloud Run's deterministic service URLs: the push audiences are known before the services exist.
  initiator_host     = "${local.initiator_service.metadata.name}-${data.google_project.this.number}.${var.region}.run.app"
  processor_host     = "${local.processor_service.metadata.name}-${data.google_project.this.number}.${var.region}.run.app"
  initiator_push_url = "https://${local.initiator_host}/pubsub/push"
  processor_push_url = "https://${local.processor_host}/pubsub/push"
  # Cloud Scheduler's token names this audience, never a push one: neither opens the other endpoint.
  reconcile_url = "https://${local.initiator_host}/internal/reconcile"
  # The initiator's request timeout bounds a scheduled reconcile call (its attempt deadline).
  initiator_timeout_seconds = local.initiator_service.spec.template.spec.timeoutSeconds
  # The secrets the initiator's YAML reads (its env's secretKeyRef names).
  initiator_secrets = {
    DJANGO_SECRET_KEY = google_secret_manager_secret.django_secret_key.secret_id
    DATABASE_URL      = google_secret_manager_secret.database_url.secret_id
    # The reconciler asks the gateway for a stuck payment's charges.
    PAYMENT_GATEWAY_API_KEY = data.google_secret_manager_secret.gateway_api_key.secret_id
    # Stripe's webhook signing secret: POST /webhooks/stripe checks each event's signature with it.
    PAYMENT_GATEWAY_WEBHOOK_SECRET = data.google_secret_manager_secret.gateway_webhook_secret.secret_id
  }
  purge_job = yamldecode(file("${path.module}/../deploy/cloudrun/initiator-purge-job.yaml"))
}

data "google_project" "this" {
  project_id = var.project_id
}

# Enabled before everything else; cloudresourcemanager and serviceusage themselves must be on
# before the first plan (docs/deploy.md, "Terraform"): the provider reads the project through them.
resource "google_project_service" "apis" {
  for_each = toset(concat([
    "cloudresourcemanager.googleapis.com",
    "serviceusage.googleapis.com",
    "cloudtrace.googleapis.com",
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
  ], local.cloud_run ? [] : ["container.googleapis.com"], local.github ? ["iamcredentials.googleapis.com", "sts.googleapis.com"] : []))
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
  location_id             = coalesce(var.firestore_location, var.region)
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy         = var.deletion_protection ? "ABANDON" : "DELETE"
  depends_on              = [google_project_service.apis]
}
