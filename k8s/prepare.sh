#!/usr/bin/env bash
# The one step before `kubectl apply -f k8s/initiator.yaml` / `k8s/processor.yaml`: the namespace
# both files declare (binpay) and the Secrets they read, from Secret Manager. Idempotent: run it
# again after rotating a secret (then restart the pods).
#
#   PROJECT_ID=my-project bash k8s/prepare.sh
#
# Reads the Secret Manager secrets binpay-django-secret-key, binpay-initiator-database-url (for GKE
# it holds postgres://binpay:PASSWORD@127.0.0.1:5432/binpay, the Cloud SQL Auth Proxy sidecar;
# docs/deploy.md and terraform/ write it so), binpay-gateway-api-key and binpay-gateway-webhook-secret.
# DATABASE_URL in the environment overrides the secret.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${PROJECT_ID:?set PROJECT_ID to your GCP project id}"

secret() {
  gcloud secrets versions access latest --secret="$1" --project="$PROJECT_ID"
}

database_url="${DATABASE_URL:-$(secret binpay-initiator-database-url)}"
[[ "$database_url" == *@127.0.0.1:5432/* ]] ||
  echo "prepare.sh: warning: DATABASE_URL does not point at the Auth Proxy sidecar (127.0.0.1:5432)" >&2
kubectl apply -f "${HERE}/namespace.yaml"
gateway_key="$(secret binpay-gateway-api-key)"
# create --dry-run | apply: creates the Secret, or updates it on a second run.
kubectl create secret generic initiator-secrets --namespace=binpay --dry-run=client -o yaml \
  --from-literal=DJANGO_SECRET_KEY="$(secret binpay-django-secret-key)" \
  --from-literal=DATABASE_URL="$database_url" \
  --from-literal=PAYMENT_GATEWAY_API_KEY="$gateway_key" \
  --from-literal=PAYMENT_GATEWAY_WEBHOOK_SECRET="$(secret binpay-gateway-webhook-secret)" | kubectl apply -f -
kubectl create secret generic processor-secrets --namespace=binpay --dry-run=client -o yaml \
  --from-literal=PAYMENT_GATEWAY_API_KEY="$gateway_key" | kubectl apply -f -
echo "prepare.sh: namespace binpay, Secrets initiator-secrets and processor-secrets ready"
