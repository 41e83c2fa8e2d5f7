#!/usr/bin/env bash
# Fill the placeholders of the manifests for one project and image tag, then refuse to finish
# while any placeholder of deploy/placeholders.txt is left.
#
#   PROJECT_ID=my-project TAG=$(git rev-parse HEAD) PAYMENT_GATEWAY_URL=https://api.stripe.com \
#     PUBLIC_HOST=api.example.org bash k8s/configure.sh OUT_DIR
#
# OUT_DIR: rendered from the templates beside this script (created or overwritten), so every run
#          renders the requested TAG; `kubectl apply -f OUT_DIR/initiator.yaml` then.
# No OUT_DIR: the templates in this folder are filled in place, once (the spec's
#          `kubectl apply -f k8s/initiator.yaml`); a second run that would change them is refused
#          (nothing is left to fill, so it could not roll anything out).
# Required env: PROJECT_ID, TAG (a commit SHA: images are never tagged latest), PAYMENT_GATEWAY_URL
#               (https://...), PUBLIC_HOST (the initiator's public host name)
# Optional env: REGION (us-central1), CLOUD_SQL_INSTANCE (binpay-pg), INITIATOR_IMAGE /
#               PROCESSOR_IMAGE (default REGION-docker.pkg.dev/PROJECT_ID/binpay/NAME:TAG; the GKE
#               workflow passes NAME@sha256:DIGEST of what it pushed)
set -euo pipefail

die() {
  echo "configure.sh: error: $*" >&2
  exit 1
}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
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

if [[ $# -ge 1 ]]; then
  mkdir -p "$1"
  DIR="$(cd "$1" && pwd)"
  if [[ "$DIR" != "$HERE" ]]; then
    cp "$HERE"/*.yaml "$DIR"/
  fi
else
  DIR="$HERE"
fi
if [[ "$DIR" == "$HERE" ]] && ! grep -q -F -f "$PLACEHOLDERS" "$DIR"/*.yaml; then
  if grep -q -F "image: ${INITIATOR_IMAGE}" "$DIR/initiator.yaml" && grep -q -F "image: ${PROCESSOR_IMAGE}" "$DIR/processor.yaml"; then
    echo "configure.sh: ${DIR}/*.yaml already filled for ${INITIATOR_IMAGE} ${PROCESSOR_IMAGE}"
    exit 0
  fi
  die "${DIR}/*.yaml were filled before, for other images or values ($(grep -m1 -o 'image: .*/initiator[:@].*' "$DIR/initiator.yaml")):" \
    "render into a folder instead (bash k8s/configure.sh OUT_DIR), or restore the templates (git checkout -- k8s/)"
fi

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
