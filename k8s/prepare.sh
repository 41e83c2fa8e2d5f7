#!/usr/bin/env bash
# The one step before `kubectl apply -f k8s/initiator.yaml` / `k8s/processor.yaml`: the namespace
# both files declare (binpay) and the Secrets they read, from Secret Manager. Idempotent.
#
#   PROJECT_ID=my-project DB_PASSWORD=... bash k8s/prepare.sh
#
# Reads the Secret Manager secrets binpay-django-secret-key and binpay-gateway-api-key (docs/deploy.md,
# "Secrets"); DATABASE_URL points at the Cloud SQL Auth Proxy sidecar (127.0.0.1:5432), with
# DB_PASSWORD the binpay user's password (or set DATABASE_URL yourself).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${PROJECT_ID:?set PROJECT_ID to your GCP project id}"
if [[ -z "${DATABASE_URL:-}" ]]; then
  : "${DB_PASSWORD:?set DB_PASSWORD (password of the Cloud SQL user binpay) or DATABASE_URL}"
  DATABASE_URL="postgres://binpay:${DB_PASSWORD}@127.0.0.1:5432/binpay"
fi

secret() {
  gcloud secrets versions access latest --secret="$1" --project="$PROJECT_ID"
}

kubectl apply -f "${HERE}/namespace.yaml"
gateway_key="$(secret binpay-gateway-api-key)"
# create --dry-run | apply: creates the Secret, or updates it on a second run.
kubectl create secret generic initiator-secrets --namespace=binpay --dry-run=client -o yaml \
  --from-literal=DJANGO_SECRET_KEY="$(secret binpay-django-secret-key)" \
  --from-literal=DATABASE_URL="$DATABASE_URL" \
  --from-literal=PAYMENT_GATEWAY_API_KEY="$gateway_key" | kubectl apply -f -
kubectl create secret generic processor-secrets --namespace=binpay --dry-run=client -o yaml \
  --from-literal=PAYMENT_GATEWAY_API_KEY="$gateway_key" | kubectl apply -f -
echo "prepare.sh: namespace binpay, Secrets initiator-secrets and processor-secrets ready"
