#!/usr/bin/env bash
# The initiator's `manage.py` on the stack `make run` is running: its database, emulators and
# gateway (e.g. `bash devtools/manage.sh create_api_key --name app --user 1`). `cd initiator &&
# python manage.py ...` acts on whatever the environment and initiator/.env say instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${BINPAY_STATE_DIR:-$(cat "$root/.run/active-state" 2>/dev/null || true)}
if [ -z "$state" ] || [ ! -s "$state/stack.env" ]; then
  echo "manage.sh: no 'make run' stack found${state:+ in $state}: start one with 'make run' (or set BINPAY_STATE_DIR to its folder)" >&2
  exit 2
fi
# shellcheck source=/dev/null
source "$state/stack.env"
cd "$root/initiator"
exec "$root/.venv/bin/python" manage.py "$@"
