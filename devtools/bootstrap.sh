#!/usr/bin/env bash
# Create the root virtualenv and install the locked requirements of every service (requirements-dev.txt).
# Re-running is cheap: pip is skipped while no requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=${PYTHON:-python3}
if ! command -v "$python_bin" >/dev/null; then
  echo "bootstrap: $python_bin not found: install Python 3.11 or newer" >&2
  exit 2
fi
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: Python 3.11+ is required, $python_bin is $("$python_bin" -V 2>&1)" >&2
  exit 2
fi
if ! "$python_bin" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "bootstrap: the venv module is missing: apt-get install python3-venv" >&2
  exit 2
fi

venv=.venv
[ -x "$venv/bin/python" ] || "$python_bin" -m venv "$venv"
stamp="$venv/.requirements.sha256"
digest=$(cat requirements-dev.txt initiator/requirements*.txt processor/requirements*.txt gateway/requirements*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  # requirements-dev.txt is a lock (`make lock`): every package pinned with its hashes, nothing else installed.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.txt
  echo "$digest" >"$stamp"
fi
