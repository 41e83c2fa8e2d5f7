# GKE (platform = "gke"): the nodes' own account, and Workload Identity for the two Kubernetes
# service accounts. The cluster itself is docs/deploy.md's `gcloud container clusters create-auto`
# (or a sized Standard cluster), created with --service-account binpay-gke-nodes.
resource "google_service_account" "gke_nodes" {
  count        = local.cloud_run ? 0 : 1
  account_id   = "binpay-gke-nodes"
  display_name = "BinPay GKE nodes (pull images, write logs and metrics)"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "gke_nodes" {
  count   = local.cloud_run ? 0 : 1
  project = var.project_id
  role    = "roles/container.defaultNodeServiceAccount"
  member  = google_service_account.gke_nodes[0].member
}

resource "google_artifact_registry_repository_iam_member" "gke_nodes_pull_images" {
  count      = local.cloud_run ? 0 : 1
  location   = google_artifact_registry_repository.binpay.location
  repository = google_artifact_registry_repository.binpay.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.gke_nodes[0].member
}

# Kubernetes service accounts binpay/initiator and binpay/processor act as the Google ones (needs
# the cluster first: its Workload Identity pool PROJECT.svc.id.goog exists from then on).
resource "google_service_account_iam_member" "workload_identity" {
  for_each = local.cloud_run ? {} : {
    initiator = google_service_account.initiator.name
    processor = google_service_account.processor.name
  }
  service_account_id = each.value
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[binpay/${each.key}]"
}
