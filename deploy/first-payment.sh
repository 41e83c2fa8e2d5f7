#!/usr/bin/env bash
# The first payment against a deployed BinPay: a user, a deposit, a payment, then its status until
# it settles. Exits 0 only when the payment completed.
#
#   KEY=... bash deploy/first-payment.sh https://initiator-NUMBER.REGION.run.app
#   KEY=... bash deploy/first-payment.sh http://127.0.0.1:8000 -H 'Host: initiator' -H 'X-Forwarded-Proto: https'
#
# KEY: an API key with users:write, deposits:write, payments:write and payments:read (docs/deploy.md
# creates a one-day key with `create_api_key --secret-id binpay-api-keys`). Extra arguments go to
# every curl call. Optional env: ATTEMPTS (30), every 2 seconds.
set -euo pipefail

[[ $# -ge 1 ]] || {
  echo "usage: KEY=... $0 URL [CURL_ARGS...]" >&2
  exit 2
}
: "${KEY:?set KEY to an API key (docs/deploy.md, 'The first payment')}"
URL="$1"
shift
ATTEMPTS="${ATTEMPTS:-30}"

api() {
  curl -fsS -H "Authorization: Bearer ${KEY}" "$@"
}
field() {
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

user_id="$(api "$@" -d email="first-payment-$(date +%s)@example.com" -d name="First payment" "${URL}/users" | field id)"
api "$@" -d amount=100.00 "${URL}/users/${user_id}/deposits" >/dev/null
payment_id="$(api "$@" -d user_id="$user_id" -d amount=25.00 "${URL}/initiate-payment" | field id)"
echo "first-payment.sh: user ${user_id}, payment ${payment_id} (USD 25.00)"
status=pending
for _ in $(seq "$ATTEMPTS"); do
  status="$(api "$@" "${URL}/payments/${payment_id}" | field status)"
  [[ "$status" == pending ]] || break
  sleep 2
done
echo "first-payment.sh: payment ${payment_id} is ${status}"
[[ "$status" == completed ]]
