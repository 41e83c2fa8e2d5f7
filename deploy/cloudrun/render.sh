#!/usr/bin/env bash
# Render the Cloud Run YAML beside this script (the one definition of the services and jobs) for
# one project: fill the placeholders of deploy/placeholders.txt and the defaults that are real
# values (region us-central1, repository binpay, Cloud SQL instance binpay-pg), write each file
# into OUT_DIR, and refuse to finish while any placeholder is left.
#
#   PROJECT_ID=my-project PROJECT_NUMBER=123 TAG=<sha> PAYMENT_GATEWAY_URL=https://... \
#     bash deploy/cloudrun/render.sh OUT_DIR
#
# Optional env: REGION (us-central1), REPOSITORY (binpay), CLOUD_SQL_INSTANCE (binpay-pg).
# deploy.sh and the Cloud Run workflow render with it; `gcloud run services|jobs replace` applies
# the result.
set -euo pipefail

die() {
  echo "render.sh: error: $*" >&2
  exit 1
}

[[ $# -eq 1 ]] || die "usage: $0 OUT_DIR"
OUT_DIR="$1"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PLACEHOLDERS="${HERE}/../placeholders.txt"
REGION="${REGION:-us-central1}"
REPOSITORY="${REPOSITORY:-binpay}"
CLOUD_SQL_INSTANCE="${CLOUD_SQL_INSTANCE:-binpay-pg}"

# Every value goes into a sed replacement: the patterns keep out the characters sed would read
# (the delimiter #, & and \) as well as anything the platform would refuse anyway.
expect() {
  local name="$1" pattern="$2"
  [[ "${!name:-}" =~ $pattern ]] || die "${name} must match ${pattern} (got '${!name:-}')"
}
expect PROJECT_ID '^[a-z][a-z0-9-]{4,28}[a-z0-9]$'
expect PROJECT_NUMBER '^[0-9]+$'
expect TAG '^[0-9a-f]{7,40}$'
expect PAYMENT_GATEWAY_URL '^https://[^#&\\[:space:]]+$'
expect REGION '^[a-z]+-[a-z]+[0-9]+$'
expect REPOSITORY '^[a-z][a-z0-9-]*$'
expect CLOUD_SQL_INSTANCE '^[a-z][a-z0-9-]*$'

mkdir -p "$OUT_DIR"
for file in "$HERE"/*.yaml; do
  # The specific placeholders first: the Cloud SQL connection and the image both contain the
  # project id and the region.
  sed -e "s#your-gcp-project-id:us-central1:binpay-pg#${PROJECT_ID}:${REGION}:${CLOUD_SQL_INSTANCE}#g" \
    -e "s#us-central1-docker.pkg.dev/your-gcp-project-id/binpay/#${REGION}-docker.pkg.dev/${PROJECT_ID}/${REPOSITORY}/#g" \
    -e "s#COMMIT_SHA#${TAG}#g" \
    -e "s#your-gcp-project-id#${PROJECT_ID}#g" \
    -e "s#123456789012#${PROJECT_NUMBER}#g" \
    -e "s#us-central1#${REGION}#g" \
    -e "s#https://your-payment-gateway.com#${PAYMENT_GATEWAY_URL}#g" \
    "$file" >"${OUT_DIR}/$(basename "$file")"
done
if grep -n -F -f "$PLACEHOLDERS" "$OUT_DIR"/*.yaml >&2; then
  die "placeholders left in the rendered Cloud Run YAML (above)"
fi
