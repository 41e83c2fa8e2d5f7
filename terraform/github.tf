# Keyless deploys from GitHub Actions (Workload Identity Federation), only from one repository's
# production environment on its protected branch: GitHub's issuer is shared by every repository,
# so the provider's attribute condition names the repository, the environment and the ref, and
# only that repository's principal set may act as binpay-deployer. Set github_repository =
# "OWNER/REPO" to create it.
resource "google_iam_workload_identity_pool" "github" {
  count                     = local.github ? 1 : 0
  workload_identity_pool_id = "github"
  display_name              = "GitHub Actions"
  depends_on                = [google_project_service.apis]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  #checkov:skip=CKV_GCP_125:the condition pins sub to repo:OWNER/REPO:environment:production from var.github_repository, which checkov cannot resolve
  count                              = local.github ? 1 : 0
  workload_identity_pool_id          = google_iam_workload_identity_pool.github[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "binpay-deploy"
  display_name                       = "BinPay deploy workflows"
  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
  }
  # The deploy jobs run in the `production` environment, so GitHub's subject is
  # repo:OWNER/REPO:environment:production; the ref pins the protected branch as well.
  attribute_condition = "assertion.sub == 'repo:${var.github_repository}:environment:production' && assertion.ref == '${var.github_deploy_ref}'"
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

# What the workflows need to roll out (deploy.sh --rollout, the GKE workflow) and nothing more:
# no IAM administration, no service-account creation, no secrets, no databases (the bootstrap,
# by a project owner, does those once).
resource "google_service_account" "deployer" {
  count        = local.github ? 1 : 0
  account_id   = "binpay-deployer"
  display_name = "BinPay deploy workflows (GitHub Actions)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account_iam_member" "github_acts_as_deployer" {
  count              = local.github ? 1 : 0
  service_account_id = google_service_account.deployer[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github[0].name}/attribute.repository/${var.github_repository}"
}

resource "google_project_iam_member" "deployer" {
  for_each = local.github ? toset(concat([
    "roles/run.admin",
    "roles/cloudbuild.builds.editor",
    "roles/storage.objectUser",
    "roles/serviceusage.serviceUsageConsumer",
  ], local.cloud_run ? [] : ["roles/container.developer"])) : toset([])
  project = var.project_id
  role    = each.value
  member  = google_service_account.deployer[0].member
}

# actAs only on the accounts a rollout runs things as: the revisions', the jobs' and the builds'.
resource "google_service_account_iam_member" "deployer_acts_as" {
  for_each = local.github ? {
    initiator = google_service_account.initiator.name
    processor = google_service_account.processor.name
    build     = google_service_account.build.name
  } : {}
  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deployer[0].member
}

# The GKE workflow pushes the images itself (docker push).
resource "google_artifact_registry_repository_iam_member" "deployer_pushes_images" {
  count      = local.github && !local.cloud_run ? 1 : 0
  location   = google_artifact_registry_repository.binpay.location
  repository = google_artifact_registry_repository.binpay.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.deployer[0].member
}
