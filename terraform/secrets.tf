# The services read secrets from Secret Manager by reference; Cloud Run resolves them at start.
resource "random_password" "django_secret_key" {
  length  = 64
  special = false
}

resource "google_secret_manager_secret" "django_secret_key" {
  secret_id = "binpay-django-secret-key"
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "django_secret_key" {
  secret      = google_secret_manager_secret.django_secret_key.id
  secret_data = random_password.django_secret_key.result
}

resource "google_secret_manager_secret" "database_url" {
  secret_id = "binpay-initiator-database-url"
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

# Cloud Run mounts the instance's unix socket under /cloudsql (dj-database-url: %-encoded host);
# on GKE the Cloud SQL Auth Proxy sidecar listens on 127.0.0.1:5432.
resource "google_secret_manager_secret_version" "database_url" {
  secret = google_secret_manager_secret.database_url.id
  secret_data = format(
    "postgres://%s:%s@%s/%s",
    google_sql_user.binpay.name,
    random_password.database.result,
    local.cloud_run ? urlencode("/cloudsql/${google_sql_database_instance.binpay.connection_name}") : "127.0.0.1:5432",
    google_sql_database.binpay.name,
  )
}

# Created out of band (docs/deploy.md), so the gateway's key and webhook secret never enter
# Terraform state.
data "google_secret_manager_secret" "gateway_api_key" {
  secret_id = var.payment_gateway_api_key_secret_id
}

data "google_secret_manager_secret" "gateway_webhook_secret" {
  secret_id = var.payment_gateway_webhook_secret_secret_id
}

# Where `manage.py create_api_key --secret-id binpay-api-keys` writes each production key, as a new
# version (never to stdout or the logs): the initiator's jobs may add versions, not read them.
resource "google_secret_manager_secret" "api_keys" {
  secret_id = "binpay-api-keys"
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "initiator_adds_api_keys" {
  secret_id = google_secret_manager_secret.api_keys.secret_id
  role      = "roles/secretmanager.secretVersionAdder"
  member    = google_service_account.initiator.member
}

resource "google_secret_manager_secret_iam_member" "initiator_secrets" {
  for_each  = local.initiator_secrets
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.initiator.member
}

resource "google_secret_manager_secret_iam_member" "processor_gateway_key" {
  secret_id = data.google_secret_manager_secret.gateway_api_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.processor.member
}
