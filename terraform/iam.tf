# One service account per workload, each with only what it uses (deploy/iam.json is the table).
# Every account waits for the APIs: IAM is among them, and a binding needs its account.
resource "google_service_account" "initiator" {
  account_id   = "binpay-initiator"
  display_name = "BinPay initiator"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "processor" {
  account_id   = "binpay-processor"
  display_name = "BinPay processor"
  depends_on   = [google_project_service.apis]
}

# Identity Pub/Sub signs push requests' OIDC tokens with.
resource "google_service_account" "pubsub_push" {
  account_id   = "binpay-pubsub-push"
  display_name = "BinPay Pub/Sub push"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  account_id   = "binpay-scheduler"
  display_name = "BinPay scheduler (runs the outbox relay and purge jobs, calls /internal/reconcile)"
  depends_on   = [google_project_service.apis]
}

# Cloud Build runs as this account (gcloud builds submit --service-account), never as the Compute
# Engine default account: that one exists only with the Compute API and may hold Editor.
resource "google_service_account" "build" {
  account_id   = "binpay-build"
  display_name = "BinPay image builds"
  depends_on   = [google_project_service.apis]
}

resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  location   = google_artifact_registry_repository.binpay.location
  repository = google_artifact_registry_repository.binpay.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

resource "google_project_iam_member" "build" {
  for_each = toset(["roles/logging.logWriter", "roles/storage.objectViewer"])
  project  = var.project_id
  role     = each.value
  member   = google_service_account.build.member
}

resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = google_service_account.pubsub_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# Firestore (both services write saga steps) and Cloud Trace (the production trace exporter).
resource "google_project_iam_member" "initiator_project_roles" {
  for_each = toset(["roles/datastore.user", "roles/cloudtrace.agent"])
  project  = var.project_id
  role     = each.value
  member   = google_service_account.initiator.member
}

resource "google_project_iam_member" "processor_project_roles" {
  for_each = toset(["roles/datastore.user", "roles/cloudtrace.agent"])
  project  = var.project_id
  role     = each.value
  member   = google_service_account.processor.member
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
