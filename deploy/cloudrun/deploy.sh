#!/usr/bin/env bash
# Deploy BinPay to Cloud Run: images, service accounts + IAM, Pub/Sub push subscriptions with
# OIDC, dead-letter policy (dead letters pushed to the initiator), migrations, the two services, the
# outbox relay as a scheduled job, the reconciler (Cloud Scheduler -> POST /internal/reconcile), and
# Cloud Monitoring (log-based metrics, alert policies, dashboard from monitoring/).
# The services and jobs are defined once, in deploy/cloudrun/*.yaml: this script renders them for
# the project (render.sh) and applies them with `gcloud run services|jobs replace`.
# Idempotent: run it again to roll out a new image (TAG).
#
#   PROJECT_ID=my-project PAYMENT_GATEWAY_URL=https://gateway.example.com \
#     bash deploy/cloudrun/deploy.sh
#
# Required env:  PROJECT_ID, PAYMENT_GATEWAY_URL
# Optional env:  REGION (us-central1), REPOSITORY (binpay, an Artifact Registry Docker repo),
#                TAG (the checkout's commit SHA; images are never tagged latest), CLOUD_SQL_INSTANCE (binpay-pg),
#                RELAY_SCHEDULE ("* * * * *"), RECONCILE_SCHEDULE ("*/5 * * * *"),
#                MAX_DELIVERY_ATTEMPTS (5)
# Must exist first (docs/deploy.md, or terraform/): the Cloud SQL instance, and the Secret Manager
# secrets binpay-django-secret-key, binpay-initiator-database-url, binpay-gateway-api-key.
# Pass --dry-run to print every command instead of running it; RENDERED_DIR keeps the rendered YAML.
set -euo pipefail

DRY_RUN=false
if [[ "${1:-}" == "--dry-run" ]]; then
  DRY_RUN=true
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--dry-run]" >&2
  exit 2
fi

die() {
  echo "deploy.sh: error: $*" >&2
  exit 1
}

: "${PROJECT_ID:?set PROJECT_ID to your GCP project id}"
: "${PAYMENT_GATEWAY_URL:?set PAYMENT_GATEWAY_URL to the payment gateway base URL (https://...)}"
REGION="${REGION:-us-central1}"
REPOSITORY="${REPOSITORY:-binpay}"
CLOUD_SQL_INSTANCE="${CLOUD_SQL_INSTANCE:-binpay-pg}"
RELAY_SCHEDULE="${RELAY_SCHEDULE:-* * * * *}"
RECONCILE_SCHEDULE="${RECONCILE_SCHEDULE:-*/5 * * * *}"
MAX_DELIVERY_ATTEMPTS="${MAX_DELIVERY_ATTEMPTS:-5}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -z "${TAG:-}" ]]; then
  TAG="$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null)" || die "set TAG (no git checkout to take it from)"
fi
# Immutable tags only: a re-deploy of a moved tag would not roll anything out.
[[ "$TAG" =~ ^[0-9a-f]{7,40}$ ]] || die "TAG must be a commit SHA (got '${TAG}')"
[[ "$PAYMENT_GATEWAY_URL" == https://* ]] || die "PAYMENT_GATEWAY_URL must start with https://"
if ! [[ "$MAX_DELIVERY_ATTEMPTS" =~ ^[0-9]+$ ]] || ((MAX_DELIVERY_ATTEMPTS < 5 || MAX_DELIVERY_ATTEMPTS > 100)); then
  die "MAX_DELIVERY_ATTEMPTS must be 5..100 (Pub/Sub's limits)"
fi
command -v gcloud >/dev/null || die "gcloud is not installed"

# Names from docs/contracts.md.
TOPIC=binpay-initiation
ROLLBACK_TOPIC=rollback
COMPLETION_TOPIC=binpay-completion
DEAD_LETTER_TOPIC=binpay-dead-letter
SUBSCRIPTION=initiator-sub
ROLLBACK_SUBSCRIPTION=processor-sub
COMPLETION_SUBSCRIPTION=completion-sub
DEAD_LETTER_SUBSCRIPTION=dead-letter-sub

IMAGE_BASE="${REGION}-docker.pkg.dev/${PROJECT_ID}/${REPOSITORY}"
INITIATOR_IMAGE="${IMAGE_BASE}/initiator:${TAG}"
PROCESSOR_IMAGE="${IMAGE_BASE}/processor:${TAG}"
SA_DOMAIN="${PROJECT_ID}.iam.gserviceaccount.com"
INITIATOR_SA="binpay-initiator@${SA_DOMAIN}"
PROCESSOR_SA="binpay-processor@${SA_DOMAIN}"
PUSH_SA="binpay-pubsub-push@${SA_DOMAIN}"
SCHEDULER_SA="binpay-scheduler@${SA_DOMAIN}"
# The initiator's request timeout (its YAML's timeoutSeconds) bounds a scheduled reconcile call:
# the scheduler's attempt deadline.
INITIATOR_TIMEOUT_SECONDS="$(sed -n 's/^      timeoutSeconds: \([0-9]*\)$/\1/p' "${REPO_ROOT}/deploy/cloudrun/initiator.yaml")"
[[ "$INITIATOR_TIMEOUT_SECONDS" =~ ^[0-9]+$ ]] || die "no timeoutSeconds in deploy/cloudrun/initiator.yaml"
# Where render.sh writes the YAML for this project (a temporary folder unless set).
if [[ -z "${RENDERED_DIR:-}" ]]; then
  RENDERED_DIR="$(mktemp -d)"
  trap 'rm -rf "$RENDERED_DIR"' EXIT
fi

run() {
  if [[ "$DRY_RUN" == true ]]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# True when a describe command finds the resource (always false in a dry run, so every
# create is printed).
exists() {
  [[ "$DRY_RUN" == false ]] && "$@" >/dev/null 2>&1
}

gc() {
  run gcloud --project="$PROJECT_ID" --quiet "$@"
}

echo "==> project ${PROJECT_ID}, region ${REGION}, tag ${TAG}"
if [[ "$DRY_RUN" == true ]]; then
  PROJECT_NUMBER=111111111111
else
  PROJECT_NUMBER="$(gcloud projects describe "$PROJECT_ID" --format='value(projectNumber)')"
fi
PUBSUB_AGENT="service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
# Cloud Run's deterministic URLs: known before the first deploy, so the push audiences and
# DJANGO_ALLOWED_HOSTS are set in the same revision.
INITIATOR_HOST="initiator-${PROJECT_NUMBER}.${REGION}.run.app"
PROCESSOR_HOST="processor-${PROJECT_NUMBER}.${REGION}.run.app"
INITIATOR_PUSH_URL="https://${INITIATOR_HOST}/pubsub/push"
# Cloud Scheduler's token names this audience, never the push one: neither opens the other endpoint.
RECONCILE_URL="https://${INITIATOR_HOST}/internal/reconcile"
BUILD_SA="${PROJECT_NUMBER}-compute@developer.gserviceaccount.com"
PROCESSOR_PUSH_URL="https://${PROCESSOR_HOST}/pubsub/push"

echo "==> APIs"
gc services enable run.googleapis.com pubsub.googleapis.com firestore.googleapis.com \
  sqladmin.googleapis.com secretmanager.googleapis.com artifactregistry.googleapis.com \
  cloudbuild.googleapis.com cloudscheduler.googleapis.com iam.googleapis.com \
  logging.googleapis.com monitoring.googleapis.com

echo "==> prerequisites"
if [[ "$DRY_RUN" == false ]]; then
  gcloud --project="$PROJECT_ID" sql instances describe "$CLOUD_SQL_INSTANCE" >/dev/null 2>&1 \
    || die "Cloud SQL instance ${CLOUD_SQL_INSTANCE} not found (docs/deploy.md, 'Cloud SQL')"
  for secret in binpay-django-secret-key binpay-initiator-database-url binpay-gateway-api-key; do
    gcloud --project="$PROJECT_ID" secrets describe "$secret" >/dev/null 2>&1 \
      || die "Secret Manager secret ${secret} not found (docs/deploy.md, 'Secrets')"
  done
fi
if ! exists gcloud --project="$PROJECT_ID" firestore databases describe --database='(default)'; then
  gc firestore databases create --location="$REGION" --type=firestore-native
fi

echo "==> images"
if ! exists gcloud --project="$PROJECT_ID" artifacts repositories describe "$REPOSITORY" --location="$REGION"; then
  gc artifacts repositories create "$REPOSITORY" --repository-format=docker --location="$REGION"
fi
# Cloud Build runs as the Compute Engine default service account in new projects: it pushes the
# image and writes the build's logs.
gc artifacts repositories add-iam-policy-binding "$REPOSITORY" --location="$REGION" \
  --member="serviceAccount:${BUILD_SA}" --role=roles/artifactregistry.writer
for role in roles/logging.logWriter roles/storage.objectViewer; do
  gc projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:${BUILD_SA}" --role="$role" --condition=None
done
gc builds submit "${REPO_ROOT}/initiator" --tag="$INITIATOR_IMAGE"
gc builds submit "${REPO_ROOT}/processor" --tag="$PROCESSOR_IMAGE"

echo "==> service accounts and IAM"
for sa in binpay-initiator binpay-processor binpay-pubsub-push binpay-scheduler; do
  if ! exists gcloud --project="$PROJECT_ID" iam service-accounts describe "${sa}@${SA_DOMAIN}"; then
    gc iam service-accounts create "$sa" --display-name="BinPay ${sa#binpay-}"
  fi
done
gc projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:${INITIATOR_SA}" \
  --role=roles/datastore.user --condition=None
gc projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:${PROCESSOR_SA}" \
  --role=roles/datastore.user --condition=None
gc projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:${INITIATOR_SA}" \
  --role=roles/cloudsql.client --condition=None
for secret in binpay-django-secret-key binpay-initiator-database-url; do
  gc secrets add-iam-policy-binding "$secret" --member="serviceAccount:${INITIATOR_SA}" \
    --role=roles/secretmanager.secretAccessor
done
# The processor charges with the gateway key; the initiator's reconciler reads charges with it.
for sa in "$PROCESSOR_SA" "$INITIATOR_SA"; do
  gc secrets add-iam-policy-binding binpay-gateway-api-key --member="serviceAccount:${sa}" \
    --role=roles/secretmanager.secretAccessor
done
# Pub/Sub mints the push OIDC tokens as binpay-pubsub-push.
gc iam service-accounts add-iam-policy-binding "$PUSH_SA" \
  --member="serviceAccount:${PUBSUB_AGENT}" --role=roles/iam.serviceAccountTokenCreator

echo "==> topics"
for topic in "$TOPIC" "$ROLLBACK_TOPIC" "$COMPLETION_TOPIC" "$DEAD_LETTER_TOPIC"; do
  if ! exists gcloud --project="$PROJECT_ID" pubsub topics describe "$topic"; then
    gc pubsub topics create "$topic"
  fi
done
gc pubsub topics add-iam-policy-binding "$TOPIC" --member="serviceAccount:${INITIATOR_SA}" \
  --role=roles/pubsub.publisher
for topic in "$ROLLBACK_TOPIC" "$COMPLETION_TOPIC"; do
  gc pubsub topics add-iam-policy-binding "$topic" --member="serviceAccount:${PROCESSOR_SA}" \
    --role=roles/pubsub.publisher
done
# The Pub/Sub service agent forwards undeliverable messages to the dead-letter topic.
gc pubsub topics add-iam-policy-binding "$DEAD_LETTER_TOPIC" --member="serviceAccount:${PUBSUB_AGENT}" \
  --role=roles/pubsub.publisher

echo "==> Cloud Run services and jobs (deploy/cloudrun/*.yaml, rendered for ${PROJECT_ID})"
PROJECT_ID="$PROJECT_ID" PROJECT_NUMBER="$PROJECT_NUMBER" REGION="$REGION" TAG="$TAG" \
  PAYMENT_GATEWAY_URL="$PAYMENT_GATEWAY_URL" REPOSITORY="$REPOSITORY" CLOUD_SQL_INSTANCE="$CLOUD_SQL_INSTANCE" \
  bash "${REPO_ROOT}/deploy/cloudrun/render.sh" "$RENDERED_DIR"
# Migrations run to completion before the services roll out.
gc run jobs replace "${RENDERED_DIR}/initiator-migrate-job.yaml" --region="$REGION"
gc run jobs execute initiator-migrate --region="$REGION" --wait
# Private: no allUsers invoker; Cloud Run admits only binpay-pubsub-push's tokens.
gc run services replace "${RENDERED_DIR}/processor.yaml" --region="$REGION"
gc run services add-iam-policy-binding processor --region="$REGION" \
  --member="serviceAccount:${PUSH_SA}" --role=roles/run.invoker
# Public API (API keys); /pubsub/push and /internal/reconcile check their OIDC tokens themselves.
gc run services replace "${RENDERED_DIR}/initiator.yaml" --region="$REGION"
gc run services add-iam-policy-binding initiator --region="$REGION" --member=allUsers --role=roles/run.invoker
gc run services add-iam-policy-binding initiator --region="$REGION" \
  --member="serviceAccount:${PUSH_SA}" --role=roles/run.invoker
gc run jobs replace "${RENDERED_DIR}/initiator-relay-job.yaml" --region="$REGION"
gc run jobs add-iam-policy-binding initiator-relay --region="$REGION" \
  --member="serviceAccount:${SCHEDULER_SA}" --role=roles/run.invoker

echo "==> push subscriptions (OIDC, dead-letter after ${MAX_DELIVERY_ATTEMPTS} attempts, backoff 1s-60s)"
# subscription|topic|push endpoint|consumer (may also pull it: `manage.py consume_outcomes`, the worker)
for plan in \
  "${SUBSCRIPTION}|${TOPIC}|${PROCESSOR_PUSH_URL}|${PROCESSOR_SA}" \
  "${ROLLBACK_SUBSCRIPTION}|${ROLLBACK_TOPIC}|${INITIATOR_PUSH_URL}|${INITIATOR_SA}" \
  "${COMPLETION_SUBSCRIPTION}|${COMPLETION_TOPIC}|${INITIATOR_PUSH_URL}|${INITIATOR_SA}"; do
  IFS='|' read -r subscription topic endpoint consumer <<<"$plan"
  settings=(
    --push-endpoint="$endpoint"
    --push-auth-service-account="$PUSH_SA"
    --push-auth-token-audience="$endpoint"
    --ack-deadline=300
    --dead-letter-topic="$DEAD_LETTER_TOPIC"
    --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
    --min-retry-delay=1s
    --max-retry-delay=60s
  )
  if exists gcloud --project="$PROJECT_ID" pubsub subscriptions describe "$subscription"; then
    gc pubsub subscriptions update "$subscription" "${settings[@]}"
  else
    gc pubsub subscriptions create "$subscription" --topic="$topic" "${settings[@]}"
  fi
  # The service agent acks a message on the source subscription when it dead-letters it.
  gc pubsub subscriptions add-iam-policy-binding "$subscription" \
    --member="serviceAccount:${PUBSUB_AGENT}" --role=roles/pubsub.subscriber
  gc pubsub subscriptions add-iam-policy-binding "$subscription" \
    --member="serviceAccount:${consumer}" --role=roles/pubsub.subscriber
done
# Dead letters are pushed to the initiator, which stores each one and moves its payment to
# needs_attention (it recognises the subscription's name); kept 7 days while undelivered.
dead_letter_settings=(
  --push-endpoint="$INITIATOR_PUSH_URL"
  --push-auth-service-account="$PUSH_SA"
  --push-auth-token-audience="$INITIATOR_PUSH_URL"
  --ack-deadline=300
  --message-retention-duration=7d
  --min-retry-delay=1s
  --max-retry-delay=60s
)
if exists gcloud --project="$PROJECT_ID" pubsub subscriptions describe "$DEAD_LETTER_SUBSCRIPTION"; then
  gc pubsub subscriptions update "$DEAD_LETTER_SUBSCRIPTION" "${dead_letter_settings[@]}"
else
  gc pubsub subscriptions create "$DEAD_LETTER_SUBSCRIPTION" --topic="$DEAD_LETTER_TOPIC" \
    "${dead_letter_settings[@]}"
fi
gc pubsub subscriptions add-iam-policy-binding "$DEAD_LETTER_SUBSCRIPTION" \
  --member="serviceAccount:${INITIATOR_SA}" --role=roles/pubsub.subscriber

echo "==> outbox relay (Cloud Run job + Cloud Scheduler, ${RELAY_SCHEDULE})"
RELAY_RUN_URI="https://run.googleapis.com/v2/projects/${PROJECT_ID}/locations/${REGION}/jobs/initiator-relay:run"
scheduler_settings=(
  --location="$REGION" --schedule="$RELAY_SCHEDULE" --uri="$RELAY_RUN_URI" --http-method=POST
  --oauth-service-account-email="$SCHEDULER_SA"
)
if exists gcloud --project="$PROJECT_ID" scheduler jobs describe binpay-relay-outbox --location="$REGION"; then
  gc scheduler jobs update http binpay-relay-outbox "${scheduler_settings[@]}"
else
  gc scheduler jobs create http binpay-relay-outbox "${scheduler_settings[@]}"
fi

echo "==> reconciler (Cloud Scheduler -> POST /internal/reconcile, ${RECONCILE_SCHEDULE})"
# The endpoint takes binpay-scheduler's token for its own audience (RECONCILE_AUDIENCE), no push token.
# Attempt deadline = the service's request timeout: Cloud Run ends the request there anyway.
reconcile_settings=(
  --location="$REGION" --schedule="$RECONCILE_SCHEDULE" --http-method=POST
  --uri="$RECONCILE_URL"
  --oidc-service-account-email="$SCHEDULER_SA" --oidc-token-audience="$RECONCILE_URL"
  --attempt-deadline="${INITIATOR_TIMEOUT_SECONDS}s"
)
if exists gcloud --project="$PROJECT_ID" scheduler jobs describe binpay-reconcile --location="$REGION"; then
  gc scheduler jobs update http binpay-reconcile "${reconcile_settings[@]}"
else
  gc scheduler jobs create http binpay-reconcile "${reconcile_settings[@]}"
fi

echo "==> Cloud Monitoring (monitoring/: log-based metrics, alert policies, dashboard; terraform/monitoring.tf twin)"
MONITORING_DIR="${REPO_ROOT}/monitoring"
# The name of the existing alert policy or dashboard with this display name (none in a dry run).
monitoring_resource_named() {
  if [[ "$DRY_RUN" == false ]]; then
    gcloud --project="$PROJECT_ID" "$@" --format='value(name)' --limit=1
  fi
}
top_level_display_name() {
  sed -n 's/^  "displayName": "\(.*\)",$/\1/p' "$1"
}
for file in "$MONITORING_DIR"/log-metrics/*.json; do
  metric="$(basename "$file" .json)"
  if exists gcloud --project="$PROJECT_ID" logging metrics describe "$metric"; then
    gc logging metrics update "$metric" --config-from-file="$file"
  else
    gc logging metrics create "$metric" --config-from-file="$file"
  fi
done
for file in "$MONITORING_DIR"/alert-policies/*.json; do
  policy="$(monitoring_resource_named alpha monitoring policies list --filter="displayName=\"$(top_level_display_name "$file")\"")"
  if [[ -n "$policy" ]]; then
    gc alpha monitoring policies update "$policy" --policy-from-file="$file"
  else
    gc alpha monitoring policies create --policy-from-file="$file"
  fi
done
dashboard="$(monitoring_resource_named monitoring dashboards list \
  --filter="displayName=\"$(top_level_display_name "$MONITORING_DIR/dashboard.json")\"")"
if [[ -n "$dashboard" ]]; then
  gc monitoring dashboards update "$dashboard" --config-from-file="$MONITORING_DIR/dashboard.json"
else
  gc monitoring dashboards create --config-from-file="$MONITORING_DIR/dashboard.json"
fi

echo "==> done: initiator https://${INITIATOR_HOST}  processor https://${PROCESSOR_HOST} (internal)"
