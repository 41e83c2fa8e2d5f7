# One service account per workload, each with only what it uses.
resource "google_service_account" "initiator" {
  account_id   = "binpay-initiator"
  display_name = "BinPay initiator"
}

resource "google_service_account" "processor" {
  account_id   = "binpay-processor"
  display_name = "BinPay processor"
}

# Identity Pub/Sub signs push requests' OIDC tokens with.
resource "google_service_account" "pubsub_push" {
  account_id   = "binpay-pubsub-push"
  display_name = "BinPay Pub/Sub push"
}

resource "google_service_account" "scheduler" {
  account_id   = "binpay-scheduler"
  display_name = "BinPay scheduler (runs the outbox relay job, calls /internal/reconcile)"
}

# Cloud Build runs as the Compute Engine default service account in new projects: it pushes the
# images (docs/deploy.md builds them with `gcloud builds submit`) and writes the build logs.
resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  location   = google_artifact_registry_repository.binpay.location
  repository = google_artifact_registry_repository.binpay.name
  role       = "roles/artifactregistry.writer"
  member     = local.build_agent
}

resource "google_project_iam_member" "build_agent" {
  for_each = toset(["roles/logging.logWriter", "roles/storage.objectViewer"])
  project  = var.project_id
  role     = each.value
  member   = local.build_agent
}

resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = google_service_account.pubsub_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# Firestore: both services write saga steps.
resource "google_project_iam_member" "datastore_user" {
  for_each = {
    initiator = google_service_account.initiator.member
    processor = google_service_account.processor.member
  }
  project = var.project_id
  role    = "roles/datastore.user"
  member  = each.value
}

resource "google_project_iam_member" "initiator_cloudsql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.initiator.member
}

resource "google_pubsub_topic_iam_member" "initiator_publishes_initiation" {
  topic  = google_pubsub_topic.topics["initiation"].name
  role   = "roles/pubsub.publisher"
  member = google_service_account.initiator.member
}

resource "google_pubsub_topic_iam_member" "processor_publishes_outcomes" {
  for_each = toset(["rollback", "completion"])
  topic    = google_pubsub_topic.topics[each.value].name
  role     = "roles/pubsub.publisher"
  member   = google_service_account.processor.member
}

# Pull consumers (GKE / local mode) and the dead-letter reader.
resource "google_pubsub_subscription_iam_member" "initiator_subscribes" {
  for_each     = toset(["processor-sub", "completion-sub"])
  subscription = google_pubsub_subscription.push[each.value].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.initiator.member
}

resource "google_pubsub_subscription_iam_member" "initiator_reads_dead_letters" {
  subscription = google_pubsub_subscription.dead_letter.name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.initiator.member
}

resource "google_pubsub_subscription_iam_member" "processor_subscribes" {
  subscription = google_pubsub_subscription.push["initiator-sub"].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.processor.member
}

# GKE: Kubernetes service accounts binpay/initiator and binpay/processor act as the Google ones
# (needs a cluster with Workload Identity in the project).
resource "google_service_account_iam_member" "workload_identity" {
  for_each = var.platform == "gke" ? {
    initiator = google_service_account.initiator.name
    processor = google_service_account.processor.name
  } : {}
  service_account_id = each.value
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[binpay/${each.key}]"
}
