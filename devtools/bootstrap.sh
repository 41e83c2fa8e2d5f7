#!/usr/bin/env bash
# Create the root virtualenv and install the pinned requirements of every service.
# Re-running is cheap: pip is skipped while no requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash devtools/prerequisites.sh venv
python_bin=${PYTHON:-python3}

venv=.venv
[ -x "$venv/bin/python" ] || "$python_bin" -m venv "$venv"
stamp="$venv/.requirements.sha256"
digest=$(cat requirements-dev.txt initiator/requirements*.txt processor/requirements*.txt gateway/requirements*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$digest" >"$stamp"
fi
