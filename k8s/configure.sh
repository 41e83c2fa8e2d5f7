#!/usr/bin/env bash
# Fill the placeholders of k8s/*.yaml in place (the one image setting per service is here), then
# refuse to finish while any placeholder of deploy/placeholders.txt is left.
#
#   PROJECT_ID=my-project TAG=$(git rev-parse HEAD) PAYMENT_GATEWAY_URL=https://gateway.example.org \
#     PUBLIC_HOST=api.example.org bash k8s/configure.sh [DIR]
#
# Required env: PROJECT_ID, TAG (a commit SHA: images are never tagged latest), PAYMENT_GATEWAY_URL
#               (https://...), PUBLIC_HOST (the initiator's public host name)
# Optional env: REGION (us-central1), CLOUD_SQL_INSTANCE (binpay-pg),
#               INITIATOR_IMAGE / PROCESSOR_IMAGE (default REGION-docker.pkg.dev/PROJECT_ID/binpay/NAME:TAG)
# DIR: the manifests to fill (default: this folder); the GKE workflow fills a copy.
set -euo pipefail

die() {
  echo "configure.sh: error: $*" >&2
  exit 1
}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="$(cd "${1:-$HERE}" && pwd)"
PLACEHOLDERS="${HERE}/../deploy/placeholders.txt"
: "${PROJECT_ID:?set PROJECT_ID to your GCP project id}"
: "${TAG:?set TAG to the commit SHA the images were built from}"
: "${PAYMENT_GATEWAY_URL:?set PAYMENT_GATEWAY_URL to the payment gateway base URL (https://...)}"
: "${PUBLIC_HOST:?set PUBLIC_HOST to the public host name of the initiator}"
REGION="${REGION:-us-central1}"
CLOUD_SQL_INSTANCE="${CLOUD_SQL_INSTANCE:-binpay-pg}"
[[ "$TAG" =~ ^[0-9a-f]{7,40}$ ]] || die "TAG must be a commit SHA (got '${TAG}')"
[[ "$PAYMENT_GATEWAY_URL" == https://* ]] || die "PAYMENT_GATEWAY_URL must start with https://"
REGISTRY="${REGION}-docker.pkg.dev/${PROJECT_ID}/binpay"
INITIATOR_IMAGE="${INITIATOR_IMAGE:-${REGISTRY}/initiator:${TAG}}"
PROCESSOR_IMAGE="${PROCESSOR_IMAGE:-${REGISTRY}/processor:${TAG}}"

for manifest in "$DIR"/*.yaml; do
  sed -i \
    -e "s#us-central1-docker.pkg.dev/your-gcp-project-id/binpay/initiator:COMMIT_SHA#${INITIATOR_IMAGE}#g" \
    -e "s#us-central1-docker.pkg.dev/your-gcp-project-id/binpay/processor:COMMIT_SHA#${PROCESSOR_IMAGE}#g" \
    -e "s#your-gcp-project-id:us-central1:binpay-pg#${PROJECT_ID}:${REGION}:${CLOUD_SQL_INSTANCE}#g" \
    -e "s#https://your-payment-gateway.com#${PAYMENT_GATEWAY_URL}#g" \
    -e "s#api.binpay.example.com#${PUBLIC_HOST}#g" \
    -e "s#your-gcp-project-id#${PROJECT_ID}#g" \
    "$manifest"
done
if grep -n -F -f "$PLACEHOLDERS" "$DIR"/*.yaml; then
  die "placeholders left in ${DIR} (above): set them before deploying"
fi
echo "configure.sh: ${DIR}/*.yaml filled for ${PROJECT_ID} (${REGION}), images ${INITIATOR_IMAGE} ${PROCESSOR_IMAGE}"
