#!/usr/bin/env bash
# Deploy BinPay to Cloud Run: images (built as binpay-build), service accounts + IAM, Pub/Sub push
# subscriptions with OIDC, dead-letter policy (dead letters pushed to the initiator), migrations,
# the two services (and, for a trial, the sandbox gateway), the outbox relay and the retention
# purge as scheduled jobs, the reconciler (Cloud Scheduler -> POST /internal/reconcile), and Cloud
# Monitoring (log-based metrics, alert policies, dashboard from monitoring/).
# The services and jobs are defined once, in deploy/cloudrun/*.yaml: this script renders them for
# the project (render.sh) and applies them with `gcloud run services|jobs replace`.
# Idempotent: run it again to roll out a new image (TAG).
#
#   PROJECT_ID=my-project PAYMENT_GATEWAY_URL=https://api.stripe.com bash deploy/cloudrun/deploy.sh
#   PROJECT_ID=my-project SANDBOX_GATEWAY=true bash deploy/cloudrun/deploy.sh   # no real provider
#   PROJECT_ID=my-project PAYMENT_GATEWAY_URL=... bash deploy/cloudrun/deploy.sh --rollout
#
# Required env:  PROJECT_ID; PAYMENT_GATEWAY_URL unless SANDBOX_GATEWAY=true (then the sandbox's URL)
# Optional env:  REGION (us-central1), REPOSITORY (binpay, an Artifact Registry Docker repo),
#                TAG (the checkout's commit SHA; images are never tagged latest), CLOUD_SQL_INSTANCE (binpay-pg),
#                RELAY_SCHEDULE ("*/5 * * * *"), RECONCILE_SCHEDULE ("*/5 * * * *"),
#                PURGE_SCHEDULE ("17 3 * * *"), MAX_DELIVERY_ATTEMPTS (5),
#                SANDBOX_GATEWAY (false: also deploy the sandbox gateway, never for real money),
#                PUBLIC_INVOKER (iam-check-disabled: the initiator is public with Cloud Run's invoker
#                check disabled; allUsers: an allUsers invoker binding instead, where the
#                organisation enforces run.managed.requireInvokerIam), METRIC_WAIT_SECONDS (600)
# Must exist first (docs/deploy.md, or terraform/): the Cloud SQL instance, and the Secret Manager
# secrets binpay-django-secret-key, binpay-initiator-database-url, binpay-gateway-api-key,
# binpay-gateway-webhook-secret.
# --dry-run prints every command instead of running it; RENDERED_DIR keeps the rendered YAML.
# --rollout only builds the images, migrates and replaces the services and jobs: what the deploy
# workflow's narrow identity may do (docs/deploy.md, "GitHub Actions"); a full run made the rest.
set -euo pipefail

DRY_RUN=false
ROLLOUT_ONLY=false
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=true ;;
    --rollout) ROLLOUT_ONLY=true ;;
    *)
      echo "usage: $0 [--dry-run] [--rollout]" >&2
      exit 2
      ;;
  esac
done

die() {
  echo "deploy.sh: error: $*" >&2
  exit 1
}

: "${PROJECT_ID:?set PROJECT_ID to your GCP project id}"
REGION="${REGION:-us-central1}"
REPOSITORY="${REPOSITORY:-binpay}"
CLOUD_SQL_INSTANCE="${CLOUD_SQL_INSTANCE:-binpay-pg}"
RELAY_SCHEDULE="${RELAY_SCHEDULE:-*/5 * * * *}"
RECONCILE_SCHEDULE="${RECONCILE_SCHEDULE:-*/5 * * * *}"
PURGE_SCHEDULE="${PURGE_SCHEDULE:-17 3 * * *}"
MAX_DELIVERY_ATTEMPTS="${MAX_DELIVERY_ATTEMPTS:-5}"
SANDBOX_GATEWAY="${SANDBOX_GATEWAY:-false}"
PUBLIC_INVOKER="${PUBLIC_INVOKER:-iam-check-disabled}"
METRIC_WAIT_SECONDS="${METRIC_WAIT_SECONDS:-600}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -z "${TAG:-}" ]]; then
  TAG="$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null)" || die "set TAG (no git checkout to take it from)"
fi
# Immutable tags only: a re-deploy of a moved tag would not roll anything out.
[[ "$TAG" =~ ^[0-9a-f]{7,40}$ ]] || die "TAG must be a commit SHA (got '${TAG}')"
[[ "$SANDBOX_GATEWAY" == true || "$SANDBOX_GATEWAY" == false ]] || die "SANDBOX_GATEWAY must be true or false"
[[ "$PUBLIC_INVOKER" == iam-check-disabled || "$PUBLIC_INVOKER" == allUsers ]] ||
  die "PUBLIC_INVOKER must be iam-check-disabled or allUsers"
if [[ "$SANDBOX_GATEWAY" == false ]]; then
  : "${PAYMENT_GATEWAY_URL:?set PAYMENT_GATEWAY_URL to the payment gateway base URL (https://...), or SANDBOX_GATEWAY=true}"
  [[ "$PAYMENT_GATEWAY_URL" == https://* ]] || die "PAYMENT_GATEWAY_URL must start with https://"
fi
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
RUNTIME_SECRETS=(binpay-django-secret-key binpay-initiator-database-url binpay-gateway-api-key binpay-gateway-webhook-secret)

IMAGE_BASE="${REGION}-docker.pkg.dev/${PROJECT_ID}/${REPOSITORY}"
SA_DOMAIN="${PROJECT_ID}.iam.gserviceaccount.com"
INITIATOR_SA="binpay-initiator@${SA_DOMAIN}"
PROCESSOR_SA="binpay-processor@${SA_DOMAIN}"
PUSH_SA="binpay-pubsub-push@${SA_DOMAIN}"
SCHEDULER_SA="binpay-scheduler@${SA_DOMAIN}"
BUILD_SA="binpay-build@${SA_DOMAIN}"
SANDBOX_SA="binpay-sandbox-gateway@${SA_DOMAIN}"
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

# IAM is eventually consistent: a binding naming an account created seconds ago can be refused
# ("does not exist") for a minute or more (https://cloud.google.com/iam/docs/service-accounts-create).
grant() {
  local attempt
  for attempt in 1 2 3 4 5; do
    if gc "$@"; then
      return 0
    fi
    echo "deploy.sh: binding refused (attempt ${attempt}); retrying in $((attempt * 10)) s" >&2
    sleep "$((attempt * 10))"
  done
  die "binding still refused: gcloud $*"
}

echo "==> project ${PROJECT_ID}, region ${REGION}, tag ${TAG}$([[ "$ROLLOUT_ONLY" == true ]] && echo ' (rollout only)')"
if [[ "$DRY_RUN" == true ]]; then
  PROJECT_NUMBER=111111111111
else
  PROJECT_NUMBER="$(gcloud projects describe "$PROJECT_ID" --format='value(projectNumber)')"
fi
PUBSUB_AGENT="service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
# Cloud Run's deterministic URLs: known before the first deploy, so the push audiences,
# DJANGO_ALLOWED_HOSTS and the sandbox gateway's URL are set in the same revision.
INITIATOR_HOST="initiator-${PROJECT_NUMBER}.${REGION}.run.app"
PROCESSOR_HOST="processor-${PROJECT_NUMBER}.${REGION}.run.app"
SANDBOX_URL="https://sandbox-gateway-${PROJECT_NUMBER}.${REGION}.run.app"
if [[ "$SANDBOX_GATEWAY" == true ]]; then
  PAYMENT_GATEWAY_URL="${PAYMENT_GATEWAY_URL:-$SANDBOX_URL}"
  [[ "$PAYMENT_GATEWAY_URL" == "$SANDBOX_URL" ]] || die "with SANDBOX_GATEWAY=true, PAYMENT_GATEWAY_URL is ${SANDBOX_URL}"
fi
INITIATOR_PUSH_URL="https://${INITIATOR_HOST}/pubsub/push"
# Cloud Scheduler's token names this audience, never the push one: neither opens the other endpoint.
RECONCILE_URL="https://${INITIATOR_HOST}/internal/reconcile"
PROCESSOR_PUSH_URL="https://${PROCESSOR_HOST}/pubsub/push"
MONITORING_DIR="${REPO_ROOT}/monitoring"

if [[ "$ROLLOUT_ONLY" == false ]]; then
  echo "==> APIs"
  gc services enable run.googleapis.com pubsub.googleapis.com firestore.googleapis.com \
    sqladmin.googleapis.com secretmanager.googleapis.com artifactregistry.googleapis.com \
    cloudbuild.googleapis.com cloudscheduler.googleapis.com iam.googleapis.com \
    logging.googleapis.com monitoring.googleapis.com cloudtrace.googleapis.com
  # Pub/Sub's service agent is made on demand; the dead-letter and push-token bindings name it.
  gc beta services identity create --service=pubsub.googleapis.com

  echo "==> log-based metrics first: an alert policy on one is refused until it is available (up to 10 min)"
  for file in "$MONITORING_DIR"/log-metrics/*.json; do
    metric="$(basename "$file" .json)"
    if exists gcloud --project="$PROJECT_ID" logging metrics describe "$metric"; then
      gc logging metrics update "$metric" --config-from-file="$file"
    else
      gc logging metrics create "$metric" --config-from-file="$file"
    fi
  done
fi

echo "==> prerequisites"
if [[ "$DRY_RUN" == false ]]; then
  gcloud --project="$PROJECT_ID" sql instances describe "$CLOUD_SQL_INSTANCE" >/dev/null 2>&1 \
    || die "Cloud SQL instance ${CLOUD_SQL_INSTANCE} not found (docs/deploy.md, 'Cloud SQL')"
  for secret in "${RUNTIME_SECRETS[@]}"; do
    gcloud --project="$PROJECT_ID" secrets describe "$secret" >/dev/null 2>&1 \
      || die "Secret Manager secret ${secret} not found (docs/deploy.md, 'Secrets')"
  done
fi
if [[ "$ROLLOUT_ONLY" == false ]]; then
  if ! exists gcloud --project="$PROJECT_ID" firestore databases describe --database='(default)'; then
    gc firestore databases create --location="$REGION" --type=firestore-native
  fi

  echo "==> images: repository and the build account"
  if ! exists gcloud --project="$PROJECT_ID" artifacts repositories describe "$REPOSITORY" --location="$REGION"; then
    gc artifacts repositories create "$REPOSITORY" --repository-format=docker --location="$REGION"
  fi
  if ! exists gcloud --project="$PROJECT_ID" iam service-accounts describe "$BUILD_SA"; then
    gc iam service-accounts create binpay-build --display-name="BinPay image builds"
  fi
  # Cloud Build runs as binpay-build (never the Compute Engine default account, which exists only
  # with the Compute API): it pushes the images, writes the build logs, reads the uploaded source.
  grant artifacts repositories add-iam-policy-binding "$REPOSITORY" --location="$REGION" \
    --member="serviceAccount:${BUILD_SA}" --role=roles/artifactregistry.writer
  for role in roles/logging.logWriter roles/storage.objectViewer; do
    grant projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:${BUILD_SA}" --role="$role" --condition=None
  done
fi

echo "==> images: build"
# --suppress-logs: gcloud waits for the build without streaming its log, which would need read
# access to the logs bucket the deploy identity does not have; the log stays in Cloud Logging.
build() {
  gc builds submit "${REPO_ROOT}/$1" --tag="${IMAGE_BASE}/$2:${TAG}" --region="$REGION" \
    --service-account="projects/${PROJECT_ID}/serviceAccounts/${BUILD_SA}" \
    --default-buckets-behavior=regional-user-owned-bucket --suppress-logs
}
build initiator initiator
build processor processor
if [[ "$SANDBOX_GATEWAY" == true ]]; then
  build gateway sandbox-gateway
fi

if [[ "$ROLLOUT_ONLY" == false ]]; then
  echo "==> service accounts and IAM"
  accounts=(binpay-initiator binpay-processor binpay-pubsub-push binpay-scheduler)
  if [[ "$SANDBOX_GATEWAY" == true ]]; then
    accounts+=(binpay-sandbox-gateway)
  fi
  for sa in "${accounts[@]}"; do
    if ! exists gcloud --project="$PROJECT_ID" iam service-accounts describe "${sa}@${SA_DOMAIN}"; then
      gc iam service-accounts create "$sa" --display-name="BinPay ${sa#binpay-}"
    fi
  done
  for sa in "$INITIATOR_SA" "$PROCESSOR_SA"; do
    # Firestore (saga steps) and Cloud Trace (the production trace exporter).
    for role in roles/datastore.user roles/cloudtrace.agent; do
      grant projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:${sa}" --role="$role" --condition=None
    done
  done
  grant projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:${INITIATOR_SA}" \
    --role=roles/cloudsql.client --condition=None
  for secret in binpay-django-secret-key binpay-initiator-database-url binpay-gateway-webhook-secret; do
    grant secrets add-iam-policy-binding "$secret" --member="serviceAccount:${INITIATOR_SA}" \
      --role=roles/secretmanager.secretAccessor
  done
  # The processor charges with the gateway key; the initiator's reconciler reads charges with it.
  gateway_key_readers=("$PROCESSOR_SA" "$INITIATOR_SA")
  if [[ "$SANDBOX_GATEWAY" == true ]]; then
    gateway_key_readers+=("$SANDBOX_SA")
    grant secrets add-iam-policy-binding binpay-gateway-webhook-secret --member="serviceAccount:${SANDBOX_SA}" \
      --role=roles/secretmanager.secretAccessor
  fi
  for sa in "${gateway_key_readers[@]}"; do
    grant secrets add-iam-policy-binding binpay-gateway-api-key --member="serviceAccount:${sa}" \
      --role=roles/secretmanager.secretAccessor
  done
  # Production API keys: `manage.py create_api_key --secret-id binpay-api-keys` (in the migration
  # job's image) adds each as a new version; the initiator may add versions, never read them.
  if ! exists gcloud --project="$PROJECT_ID" secrets describe binpay-api-keys; then
    gc secrets create binpay-api-keys --replication-policy=automatic
  fi
  grant secrets add-iam-policy-binding binpay-api-keys --member="serviceAccount:${INITIATOR_SA}" \
    --role=roles/secretmanager.secretVersionAdder
  # Pub/Sub mints the push OIDC tokens as binpay-pubsub-push.
  grant iam service-accounts add-iam-policy-binding "$PUSH_SA" \
    --member="serviceAccount:${PUBSUB_AGENT}" --role=roles/iam.serviceAccountTokenCreator

  echo "==> topics"
  for topic in "$TOPIC" "$ROLLBACK_TOPIC" "$COMPLETION_TOPIC" "$DEAD_LETTER_TOPIC"; do
    if ! exists gcloud --project="$PROJECT_ID" pubsub topics describe "$topic"; then
      gc pubsub topics create "$topic"
    fi
  done
  grant pubsub topics add-iam-policy-binding "$TOPIC" --member="serviceAccount:${INITIATOR_SA}" \
    --role=roles/pubsub.publisher
  for topic in "$ROLLBACK_TOPIC" "$COMPLETION_TOPIC"; do
    grant pubsub topics add-iam-policy-binding "$topic" --member="serviceAccount:${PROCESSOR_SA}" \
      --role=roles/pubsub.publisher
  done
  # The Pub/Sub service agent forwards undeliverable messages to the dead-letter topic.
  grant pubsub topics add-iam-policy-binding "$DEAD_LETTER_TOPIC" --member="serviceAccount:${PUBSUB_AGENT}" \
    --role=roles/pubsub.publisher
fi

echo "==> Cloud Run services and jobs (deploy/cloudrun/*.yaml, rendered for ${PROJECT_ID})"
PROJECT_ID="$PROJECT_ID" PROJECT_NUMBER="$PROJECT_NUMBER" REGION="$REGION" TAG="$TAG" \
  PAYMENT_GATEWAY_URL="$PAYMENT_GATEWAY_URL" REPOSITORY="$REPOSITORY" CLOUD_SQL_INSTANCE="$CLOUD_SQL_INSTANCE" \
  bash "${REPO_ROOT}/deploy/cloudrun/render.sh" "$RENDERED_DIR"
if [[ "$PUBLIC_INVOKER" == allUsers ]]; then
  # The organisation enforces the invoker check (run.managed.requireInvokerIam): bind allUsers.
  sed -i 's#run.googleapis.com/invoker-iam-disabled: "true"#run.googleapis.com/invoker-iam-disabled: "false"#' \
    "${RENDERED_DIR}/initiator.yaml" "${RENDERED_DIR}/sandbox-gateway.yaml"
fi
if [[ "$SANDBOX_GATEWAY" == true ]]; then
  # Before the services: the processor's first charge goes to it.
  gc run services replace "${RENDERED_DIR}/sandbox-gateway.yaml" --region="$REGION"
fi
# Migrations run to completion before the services roll out.
gc run jobs replace "${RENDERED_DIR}/initiator-migrate-job.yaml" --region="$REGION"
gc run jobs execute initiator-migrate --region="$REGION" --wait
# Private: no allUsers invoker; Cloud Run admits only binpay-pubsub-push's tokens.
gc run services replace "${RENDERED_DIR}/processor.yaml" --region="$REGION"
# Public API (API keys); /pubsub/push and /internal/reconcile check their OIDC tokens themselves.
gc run services replace "${RENDERED_DIR}/initiator.yaml" --region="$REGION"
gc run jobs replace "${RENDERED_DIR}/initiator-relay-job.yaml" --region="$REGION"
gc run jobs replace "${RENDERED_DIR}/initiator-purge-job.yaml" --region="$REGION"
if [[ "$ROLLOUT_ONLY" == true ]]; then
  echo "==> rolled out ${TAG}: initiator https://${INITIATOR_HOST}"
  exit 0
fi
if [[ "$PUBLIC_INVOKER" == allUsers ]]; then
  grant run services add-iam-policy-binding initiator --region="$REGION" --member=allUsers --role=roles/run.invoker
  if [[ "$SANDBOX_GATEWAY" == true ]]; then
    grant run services add-iam-policy-binding sandbox-gateway --region="$REGION" --member=allUsers --role=roles/run.invoker
  fi
fi
grant run services add-iam-policy-binding processor --region="$REGION" \
  --member="serviceAccount:${PUSH_SA}" --role=roles/run.invoker
for job in initiator-relay initiator-purge; do
  grant run jobs add-iam-policy-binding "$job" --region="$REGION" \
    --member="serviceAccount:${SCHEDULER_SA}" --role=roles/run.invoker
done

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
  grant pubsub subscriptions add-iam-policy-binding "$subscription" \
    --member="serviceAccount:${PUBSUB_AGENT}" --role=roles/pubsub.subscriber
  grant pubsub subscriptions add-iam-policy-binding "$subscription" \
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
grant pubsub subscriptions add-iam-policy-binding "$DEAD_LETTER_SUBSCRIPTION" \
  --member="serviceAccount:${INITIATOR_SA}" --role=roles/pubsub.subscriber

echo "==> scheduled jobs (Cloud Scheduler runs Cloud Run jobs as binpay-scheduler)"
schedule_job() {
  local name="$1" job="$2" cron="$3"
  local settings=(
    --location="$REGION" --schedule="$cron" --http-method=POST
    --uri="https://run.googleapis.com/v2/projects/${PROJECT_ID}/locations/${REGION}/jobs/${job}:run"
    --oauth-service-account-email="$SCHEDULER_SA"
  )
  if exists gcloud --project="$PROJECT_ID" scheduler jobs describe "$name" --location="$REGION"; then
    gc scheduler jobs update http "$name" "${settings[@]}"
  else
    gc scheduler jobs create http "$name" "${settings[@]}"
  fi
}
# The outbox relay: the safety net (the initiator publishes within each request).
schedule_job binpay-relay-outbox initiator-relay "$RELAY_SCHEDULE"
# Retention: idempotency records past their window and other expired rows.
schedule_job binpay-purge initiator-purge "$PURGE_SCHEDULE"

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

echo "==> Cloud Monitoring: alert policies and dashboard (monitoring/; terraform/monitoring.tf twin)"
# The name of the existing alert policy or dashboard with this display name (none in a dry run).
monitoring_resource_named() {
  if [[ "$DRY_RUN" == false ]]; then
    gcloud --project="$PROJECT_ID" "$@" --format='value(name)' --limit=1
  fi
}
top_level_display_name() {
  sed -n 's/^  "displayName": "\(.*\)",$/\1/p' "$1"
}
# Until its log-based metric is available Monitoring refuses a policy (404 "Cannot find
# metric(s)"); the metrics were created first, so this rarely waits, and never past METRIC_WAIT_SECONDS.
apply_policy() {
  local waited=0 output
  while true; do
    if [[ "$DRY_RUN" == true ]]; then
      gc alpha monitoring policies "$@"
      return 0
    fi
    if output="$(gcloud --project="$PROJECT_ID" --quiet alpha monitoring policies "$@" 2>&1)"; then
      return 0
    fi
    if [[ "$output" != *"Cannot find metric"* ]] || ((waited >= METRIC_WAIT_SECONDS)); then
      echo "$output" >&2
      die "alert policy not created"
    fi
    echo "deploy.sh: log-based metrics not available yet; waiting (${waited} s so far)" >&2
    sleep 60
    waited=$((waited + 60))
  done
}
for file in "$MONITORING_DIR"/alert-policies/*.json; do
  policy="$(monitoring_resource_named alpha monitoring policies list --filter="displayName=\"$(top_level_display_name "$file")\"")"
  if [[ -n "$policy" ]]; then
    apply_policy update "$policy" --policy-from-file="$file"
  else
    apply_policy create --policy-from-file="$file"
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
if [[ "$SANDBOX_GATEWAY" == true ]]; then
  echo "    sandbox gateway ${SANDBOX_URL} (never for real money)"
fi
