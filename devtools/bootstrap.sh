#!/usr/bin/env bash
# Create the root virtualenv and install the locked requirements of every service (requirements-dev.txt).
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
  # requirements-dev.txt is a lock (`make lock`): every package pinned with its hashes, nothing else installed.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.txt
  echo "$digest" >"$stamp"
fi
# The shared package's source (common/) is importable in the root virtualenv, for the cross-service
# tools and suites (devtools/, tests/); each service imports its own generated copy first.
"$venv/bin/python" - <<'PY'
import pathlib, site, sys
root = pathlib.Path.cwd()
pathlib.Path(site.getsitepackages()[0], "binpay_common_source.pth").write_text(f"{root / 'common'}\n")
PY
