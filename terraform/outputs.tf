output "initiator_url" {
  description = "Public URL of the initiator API (Cloud Run's deterministic URL of the service deploy.sh applies)."
  value       = local.cloud_run ? "https://${local.initiator_host}" : null
}

output "processor_url" {
  description = "URL of the processor (internal ingress)."
  value       = local.cloud_run ? "https://${local.processor_host}" : null
}

output "cloud_sql_connection_name" {
  description = "Instance connection name for the Cloud SQL Auth Proxy (k8s/initiator.yaml)."
  value       = google_sql_database_instance.binpay.connection_name
}

output "artifact_registry" {
  description = "Docker repository for the images."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.binpay.repository_id}"
}

output "service_accounts" {
  description = "Service account emails (the GKE ServiceAccounts' iam.gke.io/gcp-service-account annotations)."
  value = {
    initiator   = google_service_account.initiator.email
    processor   = google_service_account.processor.email
    pubsub_push = google_service_account.pubsub_push.email
    scheduler   = google_service_account.scheduler.email
  }
}

output "workload_identity_provider" {
  description = "The deploy workflows' GCP_WORKLOAD_IDENTITY_PROVIDER (empty without github_repository)."
  value       = local.github ? google_iam_workload_identity_pool_provider.github[0].name : ""
}

output "deploy_service_account" {
  description = "The deploy workflows' GCP_DEPLOY_SERVICE_ACCOUNT (empty without github_repository)."
  value       = local.github ? google_service_account.deployer[0].email : ""
}
