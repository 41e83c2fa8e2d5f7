# Cloud Scheduler for the Cloud Run jobs deploy.sh applies from deploy/cloudrun/*.yaml (the
# one definition of the services and jobs); their invoker bindings are granted with them (deploy.sh).
resource "google_cloud_scheduler_job" "relay_outbox" {
  count    = local.cloud_run ? 1 : 0
  name     = "binpay-relay-outbox"
  region   = var.region
  schedule = var.relay_schedule

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${local.relay_job.metadata.name}:run"
    oauth_token {
      service_account_email = google_service_account.scheduler.email
    }
  }
}

# The reconciler: Cloud Scheduler calls POST /internal/reconcile with binpay-scheduler's token for
# its own audience (RECONCILE_AUDIENCE); the deadline is the initiator's request timeout.
resource "google_cloud_scheduler_job" "reconcile" {
  count            = local.cloud_run ? 1 : 0
  name             = "binpay-reconcile"
  region           = var.region
  schedule         = var.reconcile_schedule
  attempt_deadline = "${local.initiator_timeout_seconds}s"

  http_target {
    http_method = "POST"
    uri         = local.reconcile_url
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.reconcile_url
    }
  }
}

# Retention: the purge job (manage.py purge_expired) once a day.
resource "google_cloud_scheduler_job" "purge" {
  count    = local.cloud_run ? 1 : 0
  name     = "binpay-purge"
  region   = var.region
  schedule = var.purge_schedule

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${local.purge_job.metadata.name}:run"
    oauth_token {
      service_account_email = google_service_account.scheduler.email
    }
  }
}
