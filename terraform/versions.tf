terraform {
  required_version = ">= 1.9.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "6.50.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.7.2"
    }
    # time_sleep: alert policies wait for their new log-based metrics (monitoring.tf).
    time = {
      source  = "hashicorp/time"
      version = "0.13.1"
    }
  }

  # Keep state in a versioned GCS bucket: it holds the generated database password and Django
  # secret key. Fill in the bucket with `terraform init -backend-config="bucket=..."`.
  backend "gcs" {
    prefix = "binpay"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
