#!/usr/bin/env bash
# `make run`: the whole BinPay system on this machine, in the foreground. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

export BINPAY_HOST=${BINPAY_HOST:-127.0.0.1}
export INITIATOR_PORT=${INITIATOR_PORT:-8000}
export PROCESSOR_PORT=${PROCESSOR_PORT:-5000}
export GATEWAY_PORT=${GATEWAY_PORT:-8090}
export PUBSUB_EMULATOR_PORT=${PUBSUB_EMULATOR_PORT:-8085}
export FIRESTORE_EMULATOR_PORT=${FIRESTORE_EMULATOR_PORT:-8086}
export PROJECT_ID=${PROJECT_ID:-binpay-local}
export PATH="$root/.venv/bin:$PATH"
# gunicorn 27 binds a control socket at one fixed path per user: our three servers would clash.
export GUNICORN_CMD_ARGS=${GUNICORN_CMD_ARGS:---no-control-socket}

python devtools/emulators.py --check
for port in "$INITIATOR_PORT" "$PROCESSOR_PORT" "$GATEWAY_PORT" "$PUBSUB_EMULATOR_PORT" "$FIRESTORE_EMULATOR_PORT" \
  "${INITIATOR_METRICS_PORT:-9090}" "${PROCESSOR_METRICS_PORT:-9091}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run: port $port is already in use; stop what holds it or override the *_PORT variables (see README)" >&2
    exit 1
  fi
done

# Every store of the demo lives here and lasts across runs, together: the gateway's ledger,
# Firestore's saga logs (exported on Ctrl-C, imported at start) and the initiator's database — by
# default SQLite in the same folder; a run on another DATABASE_URL gets a folder of its own, so its
# ledger and saga logs never mix with another database's.
state_given=${BINPAY_STATE_DIR:-}
if [ -n "$state_given" ]; then
  state=$BINPAY_STATE_DIR
elif [ -n "${DATABASE_URL:-}" ]; then
  state=$root/.run/db-$(printf %s "$DATABASE_URL" | sha256sum | cut -c1-12)
else
  state=$root/.run/local
fi
mkdir -p "$state"
export BINPAY_STATE_DIR=$state
export DATABASE_URL=${DATABASE_URL:-sqlite:///$state/initiator.sqlite3}
# Prometheus metrics: the two web servers' on these ports (docs/observability.md), no other process's.
export INITIATOR_METRICS_PORT=${INITIATOR_METRICS_PORT:-9090} PROCESSOR_METRICS_PORT=${PROCESSOR_METRICS_PORT:-9091}
export METRICS_PORT=0
python devtools/emulators.py --project-id "$PROJECT_ID" --pubsub-port "$PUBSUB_EMULATOR_PORT" \
  --firestore-port "$FIRESTORE_EMULATOR_PORT" --log-dir "$state/emulators" --firestore-data "$state/firestore" &
emulators_pid=$!
stop_emulators() {
  kill -TERM "$emulators_pid" 2>/dev/null || true
  wait "$emulators_pid" 2>/dev/null || true
}
trap stop_emulators EXIT

export PUBSUB_EMULATOR_HOST="127.0.0.1:$PUBSUB_EMULATOR_PORT"
export FIRESTORE_EMULATOR_HOST="127.0.0.1:$FIRESTORE_EMULATOR_PORT"
python devtools/wait_ready.py --timeout 90 "http://$PUBSUB_EMULATOR_HOST/" "http://$FIRESTORE_EMULATOR_HOST/"
python devtools/pubsub_setup.py

# One demo API key per checkout, kept out of git, so the printed curl works across runs.
[ -s "$state/api-key" ] || python -c 'import secrets; print("bp_test_" + secrets.token_urlsafe(24))' >"$state/api-key"
export BINPAY_DEMO_API_KEY
BINPAY_DEMO_API_KEY=$(cat "$state/api-key")
export PAYMENT_GATEWAY_URL=${PAYMENT_GATEWAY_URL:-http://127.0.0.1:$GATEWAY_PORT}
export SANDBOX_DB_PATH=${SANDBOX_DB_PATH:-$state/gateway.sqlite3}
# The sandbox signs its webhooks to the initiator with a secret of this checkout's (Stripe: whsec_...).
[ -s "$state/webhook-secret" ] || python -c 'import secrets; print("whsec_" + secrets.token_hex(24))' >"$state/webhook-secret"
export PAYMENT_GATEWAY_WEBHOOK_SECRET
PAYMENT_GATEWAY_WEBHOOK_SECRET=$(cat "$state/webhook-secret")
export SANDBOX_WEBHOOK_URL=${SANDBOX_WEBHOOK_URL:-http://127.0.0.1:$INITIATOR_PORT/webhooks/stripe}
# The events BinPay's endpoint subscribes to, as it would be registered at the provider.
SANDBOX_WEBHOOK_EVENTS=${SANDBOX_WEBHOOK_EVENTS:-$(python -c 'from binpay_common.gateway import WEBHOOK_EVENTS; print(",".join(WEBHOOK_EVENTS))')}
export SANDBOX_WEBHOOK_EVENTS
# Fault injection is a demo feature (README "Failure demos"); production mode refuses it.
export FAULT_INJECTION_ENABLED=${FAULT_INJECTION_ENABLED:-true}
# Demo timeouts: the processor gives up on an unusable gateway (cancels the charge) after a minute,
# the reconciler settles a stranded payment after two (production: 300 s and 600 s).
export SAGA_TIMEOUT_SECONDS=${SAGA_TIMEOUT_SECONDS:-60} PAYMENT_TIMEOUT_SECONDS=${PAYMENT_TIMEOUT_SECONDS:-120}
export RECONCILE_INTERVAL_SECONDS=${RECONCILE_INTERVAL_SECONDS:-15}
export INITIATOR_URL="http://$BINPAY_HOST:$INITIATOR_PORT" PROCESSOR_URL="http://$BINPAY_HOST:$PROCESSOR_PORT"

# What `devtools/manage.sh` needs to act on this running stack (README "Operating it").
umask 077
{
  for name in BINPAY_STATE_DIR DATABASE_URL PROJECT_ID PUBSUB_EMULATOR_HOST FIRESTORE_EMULATOR_HOST \
    PAYMENT_GATEWAY_URL PAYMENT_GATEWAY_WEBHOOK_SECRET FAULT_INJECTION_ENABLED; do
    printf 'export %s=%q\n' "$name" "${!name}"
  done
} >"$state/stack.env"
umask 022
# The checkout's current run, for manage.sh (a run given its own BINPAY_STATE_DIR is found through it).
[ -n "$state_given" ] || printf '%s\n' "$state" >"$root/.run/active-state"

(cd initiator && python manage.py migrate --noinput && python manage.py seed_demo --api-key "$BINPAY_DEMO_API_KEY")
(cd initiator && python manage.py ensure_console_staff --username operator --password-file "$state/console-password")

# Not exec: the EXIT trap must still stop the emulators once honcho has stopped the rest.
honcho --no-prefix -f Procfile start || true
