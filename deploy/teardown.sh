#!/usr/bin/env bash
# Delete what docs/deploy.md and deploy/cloudrun/deploy.sh created for BinPay in a project, so
# nothing is left billing: scheduler jobs, Cloud Run services and jobs, the GKE cluster, Pub/Sub,
# Cloud SQL and Firestore (their deletion protection turned off first), secrets, images, Cloud
# Monitoring and the service accounts. Each is deleted only if it exists: safe to run again.
# Deleting the project instead (`gcloud projects delete`) also stops all billing.
#
#   PROJECT_ID=my-project bash deploy/teardown.sh
#   PROJECT_ID=my-project bash deploy/teardown.sh --outside-terraform   # before `terraform destroy`
#
# --outside-terraform: only what deploy.sh makes beyond terraform/ (the Cloud Run services and
#   jobs, the sandbox gateway's account); `terraform destroy` deletes the rest (docs/deploy.md).
# Optional env: REGION (us-central1), CLOUD_SQL_INSTANCE (binpay-pg), REPOSITORY (binpay),
#   CLUSTER (binpay-cluster).
# THE DATA GOES WITH IT: the database and its backups, the Firestore saga log, the images.
set -euo pipefail

OUTSIDE_TERRAFORM=false
case "${1:-}" in
  "") ;;
  --outside-terraform) OUTSIDE_TERRAFORM=true ;;
  *)
    echo "usage: $0 [--outside-terraform]" >&2
    exit 2
    ;;
esac
: "${PROJECT_ID:?set PROJECT_ID to the project to clear}"
REGION="${REGION:-us-central1}"
CLOUD_SQL_INSTANCE="${CLOUD_SQL_INSTANCE:-binpay-pg}"
REPOSITORY="${REPOSITORY:-binpay}"
CLUSTER="${CLUSTER:-binpay-cluster}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SA_DOMAIN="${PROJECT_ID}.iam.gserviceaccount.com"

gc() {
  gcloud --project="$PROJECT_ID" --quiet "$@"
}
# Run the delete only when the describe finds the resource.
delete_if() {
  local describe=("${@:1:$#-1}") delete="${*: -1}"
  if gc "${describe[@]}" >/dev/null 2>&1; then
    echo "teardown.sh: ${delete}"
    eval "gc ${delete}"
  fi
}

for service in initiator processor sandbox-gateway; do
  delete_if run services describe "$service" --region="$REGION" "run services delete ${service} --region=${REGION}"
done
for job in initiator-migrate initiator-relay initiator-purge; do
  delete_if run jobs describe "$job" --region="$REGION" "run jobs delete ${job} --region=${REGION}"
done
delete_if iam service-accounts describe "binpay-sandbox-gateway@${SA_DOMAIN}" \
  "iam service-accounts delete binpay-sandbox-gateway@${SA_DOMAIN}"
if [[ "$OUTSIDE_TERRAFORM" == true ]]; then
  exit 0
fi

for job in binpay-relay-outbox binpay-reconcile binpay-purge; do
  delete_if scheduler jobs describe "$job" --location="$REGION" "scheduler jobs delete ${job} --location=${REGION}"
done
location="$(gc container clusters list --filter="name=${CLUSTER}" --format='value(location)' 2>/dev/null || true)"
if [[ -n "$location" ]]; then
  echo "teardown.sh: container clusters delete ${CLUSTER} --location=${location}"
  gc container clusters delete "$CLUSTER" --location="$location"
fi
for subscription in initiator-sub processor-sub completion-sub dead-letter-sub; do
  delete_if pubsub subscriptions describe "$subscription" "pubsub subscriptions delete ${subscription}"
done
for topic in binpay-initiation rollback binpay-completion binpay-dead-letter; do
  delete_if pubsub topics describe "$topic" "pubsub topics delete ${topic}"
done
if gc sql instances describe "$CLOUD_SQL_INSTANCE" >/dev/null 2>&1; then
  echo "teardown.sh: sql instances delete ${CLOUD_SQL_INSTANCE} (deletion protection off first)"
  gc sql instances patch "$CLOUD_SQL_INSTANCE" --no-deletion-protection
  gc sql instances delete "$CLOUD_SQL_INSTANCE"
fi
if gc firestore databases describe --database='(default)' >/dev/null 2>&1; then
  echo "teardown.sh: firestore databases delete (default) (delete protection off first)"
  gc firestore databases update --database='(default)' --no-delete-protection
  gc firestore databases delete --database='(default)'
fi
for secret in binpay-django-secret-key binpay-initiator-database-url binpay-gateway-api-key \
  binpay-gateway-webhook-secret binpay-api-keys; do
  delete_if secrets describe "$secret" "secrets delete ${secret}"
done
delete_if artifacts repositories describe "$REPOSITORY" --location="$REGION" \
  "artifacts repositories delete ${REPOSITORY} --location=${REGION}"
display_name() {
  sed -n 's/^  "displayName": "\(.*\)",$/\1/p' "$1"
}
for file in "$REPO_ROOT"/monitoring/alert-policies/*.json; do
  for policy in $(gc alpha monitoring policies list --filter="displayName=\"$(display_name "$file")\"" --format='value(name)'); do
    gc alpha monitoring policies delete "$policy"
  done
done
for dashboard in $(gc monitoring dashboards list --filter="displayName=\"$(display_name "$REPO_ROOT/monitoring/dashboard.json")\"" --format='value(name)'); do
  gc monitoring dashboards delete "$dashboard"
done
for file in "$REPO_ROOT"/monitoring/log-metrics/*.json; do
  metric="$(basename "$file" .json)"
  delete_if logging metrics describe "$metric" "logging metrics delete ${metric}"
done
for account in binpay-initiator binpay-processor binpay-pubsub-push binpay-scheduler binpay-build binpay-gke-nodes; do
  delete_if iam service-accounts describe "${account}@${SA_DOMAIN}" "iam service-accounts delete ${account}@${SA_DOMAIN}"
done
echo "teardown.sh: done; the project itself remains (gcloud projects delete ${PROJECT_ID} removes it)"
