# The two services. The processor is private (internal ingress, invoker = push identity only);
# the initiator is the public API and checks the OIDC tokens on /pubsub/push and
# /internal/reconcile itself.
resource "google_cloud_run_v2_service" "processor" {
  count               = local.cloud_run ? 1 : 0
  name                = "processor"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.processor.email
    max_instance_request_concurrency = 40
    # A lease waited out (120 s) plus one delivery's worst case (113 s) fits; under the push
    # subscription's ack deadline.
    timeout = "270s"

    scaling {
      min_instance_count = 0
      max_instance_count = 20
    }

    containers {
      image = var.processor_image
      args  = ["gunicorn", "-w", "4", "app:app"]

      ports {
        container_port = 8080
      }

      dynamic "env" {
        for_each = local.processor_env
        content {
          name  = env.key
          value = env.value
        }
      }

      env {
        name = "PAYMENT_GATEWAY_API_KEY"
        value_source {
          secret_key_ref {
            secret  = data.google_secret_manager_secret.gateway_api_key.secret_id
            version = "latest"
          }
        }
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        startup_cpu_boost = true
      }

      startup_probe {
        period_seconds    = 2
        failure_threshold = 30
        http_get {
          path = "/healthz"
        }
      }

      liveness_probe {
        period_seconds  = 15
        timeout_seconds = 3
        http_get {
          path = "/healthz"
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.processor_gateway_key]
}

resource "google_cloud_run_v2_service" "initiator" {
  count               = local.cloud_run ? 1 : 0
  name                = "initiator"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.initiator.email
    max_instance_request_concurrency = 80
    timeout                          = "${local.initiator_timeout_seconds}s"

    scaling {
      min_instance_count = 1
      max_instance_count = 20
    }

    volumes {
      name = "cloudsql"
      cloud_sql_instance {
        instances = [google_sql_database_instance.binpay.connection_name]
      }
    }

    containers {
      image = var.initiator_image
      args  = ["gunicorn", "binpay_initiator.wsgi:application"]

      ports {
        container_port = 8080
      }

      dynamic "env" {
        for_each = local.initiator_env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.initiator_secrets
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      volume_mounts {
        name       = "cloudsql"
        mount_path = "/cloudsql"
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        startup_cpu_boost = true
      }

      # /healthz answers whatever the Host (Cloud Run's probes do not send the service's host name).
      startup_probe {
        period_seconds    = 2
        failure_threshold = 30
        http_get {
          path = "/healthz"
        }
      }

      liveness_probe {
        period_seconds  = 15
        timeout_seconds = 3
        http_get {
          path = "/healthz"
        }
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.initiator_secrets,
    google_secret_manager_secret_version.database_url,
    google_secret_manager_secret_version.django_secret_key,
    google_project_iam_member.initiator_cloudsql_client,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "push_invokes" {
  for_each = local.cloud_run ? {
    processor = google_cloud_run_v2_service.processor[0].name
    initiator = google_cloud_run_v2_service.initiator[0].name
  } : {}
  location = var.region
  name     = each.value
  role     = "roles/run.invoker"
  member   = google_service_account.pubsub_push.member
}

resource "google_cloud_run_v2_service_iam_member" "initiator_public" {
  count    = local.cloud_run ? 1 : 0
  location = var.region
  name     = google_cloud_run_v2_service.initiator[0].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# One-shot jobs on the initiator image: migrations (run before each rollout) and the outbox relay.
resource "google_cloud_run_v2_job" "initiator" {
  for_each = local.cloud_run ? {
    "initiator-migrate" = { args = ["manage.py", "migrate", "--noinput"], timeout = "600s" }
    "initiator-relay"   = { args = ["manage.py", "relay_outbox", "--once"], timeout = "240s" }
  } : {}
  name                = each.key
  location            = var.region
  deletion_protection = var.deletion_protection

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.initiator.email
      max_retries     = 1
      timeout         = each.value.timeout

      volumes {
        name = "cloudsql"
        cloud_sql_instance {
          instances = [google_sql_database_instance.binpay.connection_name]
        }
      }

      containers {
        image   = var.initiator_image
        command = ["python"]
        args    = each.value.args

        dynamic "env" {
          for_each = local.initiator_env
          content {
            name  = env.key
            value = env.value
          }
        }

        dynamic "env" {
          for_each = local.initiator_secrets
          content {
            name = env.key
            value_source {
              secret_key_ref {
                secret  = env.value
                version = "latest"
              }
            }
          }
        }

        volume_mounts {
          name       = "cloudsql"
          mount_path = "/cloudsql"
        }
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.initiator_secrets,
    google_secret_manager_secret_version.database_url,
    google_secret_manager_secret_version.django_secret_key,
  ]
}

resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_relay" {
  count    = local.cloud_run ? 1 : 0
  location = var.region
  name     = google_cloud_run_v2_job.initiator["initiator-relay"].name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_scheduler_job" "relay_outbox" {
  count    = local.cloud_run ? 1 : 0
  name     = "binpay-relay-outbox"
  region   = var.region
  schedule = var.relay_schedule

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/${google_cloud_run_v2_job.initiator["initiator-relay"].id}:run"
    oauth_token {
      service_account_email = google_service_account.scheduler.email
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.scheduler_runs_relay]
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

  depends_on = [google_cloud_run_v2_service.initiator]
}
