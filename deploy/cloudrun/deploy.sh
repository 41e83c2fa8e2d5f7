#!/usr/bin/env bash
# Deploy BinPay to Cloud Run: images, service accounts + IAM, Pub/Sub push subscriptions with
# OIDC, dead-letter policy (dead letters pushed to the initiator), migrations, the two services, the
# outbox relay as a scheduled job, the reconciler (Cloud Scheduler -> POST /internal/reconcile), and
# Cloud Monitoring (log-based metrics, alert policies, dashboard from monitoring/).
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
# Pass --dry-run to print every command instead of running it.
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
FIRESTORE_COLLECTION=transactions

IMAGE_BASE="${REGION}-docker.pkg.dev/${PROJECT_ID}/${REPOSITORY}"
INITIATOR_IMAGE="${IMAGE_BASE}/initiator:${TAG}"
PROCESSOR_IMAGE="${IMAGE_BASE}/processor:${TAG}"
INSTANCE_CONNECTION="${PROJECT_ID}:${REGION}:${CLOUD_SQL_INSTANCE}"
SA_DOMAIN="${PROJECT_ID}.iam.gserviceaccount.com"
INITIATOR_SA="binpay-initiator@${SA_DOMAIN}"
PROCESSOR_SA="binpay-processor@${SA_DOMAIN}"
PUSH_SA="binpay-pubsub-push@${SA_DOMAIN}"
SCHEDULER_SA="binpay-scheduler@${SA_DOMAIN}"
# The initiator's request timeout bounds a scheduled reconcile call (its attempt deadline), and a
# reconcile pass stops itself well inside it (RECONCILE_TIME_BUDGET_SECONDS).
INITIATOR_TIMEOUT_SECONDS=60
RECONCILE_BATCH_SIZE=200
RECONCILE_TIME_BUDGET_SECONDS=45

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
  PROJECT_NUMBER=123456789012
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

echo "==> migrations (Cloud Run job, executed before the rollout)"
INITIATOR_ENV="BINPAY_ENV=production,PROJECT_ID=${PROJECT_ID},GOOGLE_CLOUD_PROJECT=${PROJECT_ID}"
INITIATOR_ENV+=",DJANGO_ALLOWED_HOSTS=${INITIATOR_HOST},PUBSUB_TOPIC=${TOPIC}"
INITIATOR_ENV+=",PUBSUB_ROLLBACK_TOPIC=${ROLLBACK_TOPIC},PUBSUB_COMPLETION_TOPIC=${COMPLETION_TOPIC}"
INITIATOR_ENV+=",PUBSUB_DEAD_LETTER_TOPIC=${DEAD_LETTER_TOPIC},PUBSUB_ROLLBACK_SUBSCRIPTION=${ROLLBACK_SUBSCRIPTION}"
INITIATOR_ENV+=",PUBSUB_COMPLETION_SUBSCRIPTION=${COMPLETION_SUBSCRIPTION}"
INITIATOR_ENV+=",PUBSUB_DEAD_LETTER_SUBSCRIPTION=${DEAD_LETTER_SUBSCRIPTION},FIRESTORE_COLLECTION=${FIRESTORE_COLLECTION}"
INITIATOR_ENV+=",PUBSUB_PUSH_AUDIENCE=${INITIATOR_PUSH_URL},PUBSUB_PUSH_SERVICE_ACCOUNT=${PUSH_SA}"
INITIATOR_ENV+=",RECONCILE_AUDIENCE=${RECONCILE_URL},RECONCILE_SERVICE_ACCOUNT=${SCHEDULER_SA}"
INITIATOR_ENV+=",RECONCILE_BATCH_SIZE=${RECONCILE_BATCH_SIZE},RECONCILE_TIME_BUDGET_SECONDS=${RECONCILE_TIME_BUDGET_SECONDS}"
INITIATOR_ENV+=",PAYMENT_GATEWAY_URL=${PAYMENT_GATEWAY_URL}"
INITIATOR_SECRETS="DJANGO_SECRET_KEY=binpay-django-secret-key:latest,DATABASE_URL=binpay-initiator-database-url:latest"
INITIATOR_SECRETS+=",PAYMENT_GATEWAY_API_KEY=binpay-gateway-api-key:latest"
gc run jobs deploy initiator-migrate --region="$REGION" --image="$INITIATOR_IMAGE" \
  --service-account="$INITIATOR_SA" --set-cloudsql-instances="$INSTANCE_CONNECTION" \
  --set-env-vars="$INITIATOR_ENV" --set-secrets="$INITIATOR_SECRETS" \
  --command=python --args=manage.py,migrate,--noinput \
  --tasks=1 --max-retries=1 --task-timeout=600s --execute-now --wait

echo "==> processor (private: Pub/Sub push with OIDC only)"
PROCESSOR_ENV="BINPAY_ENV=production,PROJECT_ID=${PROJECT_ID},GOOGLE_CLOUD_PROJECT=${PROJECT_ID}"
PROCESSOR_ENV+=",PUBSUB_TOPIC=${TOPIC},PUBSUB_ROLLBACK_TOPIC=${ROLLBACK_TOPIC}"
PROCESSOR_ENV+=",PUBSUB_COMPLETION_TOPIC=${COMPLETION_TOPIC},PUBSUB_DEAD_LETTER_TOPIC=${DEAD_LETTER_TOPIC}"
PROCESSOR_ENV+=",PUBSUB_SUBSCRIPTION=${SUBSCRIPTION},FIRESTORE_COLLECTION=${FIRESTORE_COLLECTION}"
PROCESSOR_ENV+=",PAYMENT_GATEWAY_URL=${PAYMENT_GATEWAY_URL},FAULT_INJECTION_ENABLED=false"
# The delivery worst case must fit the request timeout, the saga timeout the initiator's (docs/architecture.md).
PROCESSOR_ENV+=",PUSH_REQUEST_TIMEOUT_SECONDS=270,PAYMENT_TIMEOUT_SECONDS=600"
PROCESSOR_ENV+=",PUBSUB_PUSH_AUDIENCE=${PROCESSOR_PUSH_URL},PUBSUB_PUSH_SERVICE_ACCOUNT=${PUSH_SA}"
# Private service: Cloud Run checks the push token's signature and forwards it with the signature
# removed; the app checks the claims (docs/deploy.md, "Push authentication").
PROCESSOR_ENV+=",BEHIND_CLOUD_RUN_IAM=true"
gc run deploy processor --image="$PROCESSOR_IMAGE" --platform=managed --region="$REGION" \
  --no-allow-unauthenticated --ingress=internal --service-account="$PROCESSOR_SA" \
  --set-env-vars="$PROCESSOR_ENV" --set-secrets="PAYMENT_GATEWAY_API_KEY=binpay-gateway-api-key:latest" \
  --command=gunicorn --args=-w,4,app:app --port=8080 \
  --cpu=1 --memory=512Mi --concurrency=40 --timeout=270 --min-instances=0 --max-instances=20
gc run services add-iam-policy-binding processor --region="$REGION" \
  --member="serviceAccount:${PUSH_SA}" --role=roles/run.invoker

echo "==> initiator (public API; /pubsub/push and /internal/reconcile check their OIDC tokens themselves)"
gc run deploy initiator --image="$INITIATOR_IMAGE" --platform=managed --region="$REGION" \
  --allow-unauthenticated --ingress=all --service-account="$INITIATOR_SA" \
  --add-cloudsql-instances="$INSTANCE_CONNECTION" \
  --set-env-vars="$INITIATOR_ENV" --set-secrets="$INITIATOR_SECRETS" \
  --command=gunicorn --args=binpay_initiator.wsgi:application --port=8080 \
  --cpu=1 --memory=512Mi --concurrency=80 --timeout="$INITIATOR_TIMEOUT_SECONDS" --min-instances=1 --max-instances=20
gc run services add-iam-policy-binding initiator --region="$REGION" \
  --member="serviceAccount:${PUSH_SA}" --role=roles/run.invoker

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
gc run jobs deploy initiator-relay --region="$REGION" --image="$INITIATOR_IMAGE" \
  --service-account="$INITIATOR_SA" --set-cloudsql-instances="$INSTANCE_CONNECTION" \
  --set-env-vars="$INITIATOR_ENV" --set-secrets="$INITIATOR_SECRETS" \
  --command=python --args=manage.py,relay_outbox,--once \
  --tasks=1 --max-retries=1 --task-timeout=240s
gc run jobs add-iam-policy-binding initiator-relay --region="$REGION" \
  --member="serviceAccount:${SCHEDULER_SA}" --role=roles/run.invoker
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
