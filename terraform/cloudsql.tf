resource "google_sql_database_instance" "binpay" {
  name                = "binpay-pg"
  database_version    = "POSTGRES_15"
  region              = var.region
  deletion_protection = var.deletion_protection

  settings {
    tier              = var.cloud_sql_tier
    edition           = "ENTERPRISE"
    availability_type = "REGIONAL"

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
    }

    # Public IP with no authorized networks: only the Cloud SQL connectors (Cloud Run's
    # attachment, the Auth Proxy on GKE) reach it, authorized by IAM (roles/cloudsql.client).
    ip_configuration {
      ipv4_enabled = true
      ssl_mode     = "ENCRYPTED_ONLY"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_sql_database" "binpay" {
  name     = "binpay"
  instance = google_sql_database_instance.binpay.name
}

resource "random_password" "database" {
  length  = 32
  special = false
}

resource "google_sql_user" "binpay" {
  name     = "binpay"
  instance = google_sql_database_instance.binpay.name
  password = random_password.database.result
}
