"""Each lint step passes on the real artifacts and fails on a deliberately broken copy."""

from __future__ import annotations

import shutil

import pytest
from lint_support import Tree

ALL_STEPS = [
    "dockerfiles",
    "shell",
    "yaml",
    "compose",
    "kubernetes",
    "cloudrun",
    "workflows",
    "terraform",
    "checkov",
    "json",
    "common",
    "locks",
    "python",
    "deploy-script",
    "monitoring",
]


def test_unbroken_copy_passes_every_step(tree: Tree) -> None:
    result = tree.lint(*ALL_STEPS)
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ALL_STEPS:
        assert f"== {step}" in result.stdout


def test_unknown_step_is_a_usage_error(tree: Tree) -> None:
    result = tree.lint("dockerfile")
    assert result.returncode == 2
    assert "unknown step" in result.stderr


# (step, file, old text, new text): syntax and semantic breakage per validator.
BREAKAGES = {
    # hadolint
    "dockerfile unknown instruction": (
        "dockerfiles",
        "initiator/Dockerfile",
        "RUN python -m venv",
        "RUNN python -m venv",
    ),
    "dockerfile latest tag, no digest": (
        "dockerfiles",
        "processor/Dockerfile",
        "FROM python:3.11.16-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b",
        "FROM python:latest",
    ),
    "dockerfile apt-get without pins": (
        "dockerfiles",
        "gateway/Dockerfile",
        "FROM base AS build\n",
        "FROM base AS build\nRUN apt-get update && apt-get install -y curl\n",
    ),
    "dockerfile shell-form CMD": (
        "dockerfiles",
        "gateway/Dockerfile",
        'CMD ["gunicorn", "-k", "gthread", "--threads", "32", "app:app"]',
        "CMD gunicorn -k gthread --threads 32 app:app",
    ),
    # bash -n + shellcheck
    "shell unquoted variable": ("shell", "deploy/cloudrun/deploy.sh", 'echo "==> APIs"', 'echo "==> APIs" $REGION'),
    "shell syntax error": (
        "shell",
        "devtools/lint/install-tools.sh",
        'mkdir -p "$TOOLS"',
        'if mkdir -p "$TOOLS"; then',
    ),
    # yamllint
    "yaml duplicate key": ("yaml", "k8s/namespace.yaml", "  name: binpay\n", "  name: binpay\n  name: other\n"),
    "yaml bad indentation": ("yaml", "deploy/cloudrun/processor.yaml", "  name: processor\n", "   name: processor\n"),
    # docker compose config + compose-spec schema
    "compose unknown service key": (
        "compose",
        "docker-compose.yml",
        '    ports:\n      - "127.0.0.1:8090:8090"',
        '    portz:\n      - "127.0.0.1:8090:8090"',
    ),
    "compose bad depends_on condition": (
        "compose",
        "docker-compose.yml",
        "condition: service_completed_successfully",
        "condition: service_done",
    ),
    "compose undefined anchor": (
        "compose",
        "docker-compose.yml",
        "environment: *initiator-env",
        "environment: *initiator-envs",
    ),
    # kubectl kustomize + kubernetes-validate strict + policy
    "k8s removed apiVersion": (
        "kubernetes",
        "k8s/processor.yaml",
        "apiVersion: apps/v1\nkind: Deployment",
        "apiVersion: apps/v1beta1\nkind: Deployment",
    ),
    "k8s unknown container field": (
        "kubernetes",
        "k8s/initiator.yaml",
        "        imagePullPolicy: IfNotPresent\n",
        "        imagePullPolicy: IfNotPresent\n        restartPolicyy: Always\n",
    ),
    "k8s wrong type": ("kubernetes", "k8s/initiator.yaml", "  replicas: 1\n", "  replicas: one\n"),
    # checkov's policies
    "k8s writable root filesystem": (
        "checkov",
        "k8s/processor.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false",
    ),
    "k8s runs as root": (
        "checkov",
        "k8s/processor.yaml",
        "        runAsNonRoot: true\n        runAsUser: 10001\n",
        "        runAsUser: 0\n",
    ),
    "k8s latest image": (
        "checkov",
        "k8s/initiator.yaml",
        "/binpay/initiator:COMMIT_SHA",
        "/binpay/initiator:latest",
    ),
    "terraform Cloud SQL without backups": (
        "checkov",
        "terraform/cloudsql.tf",
        "      enabled                        = true\n",
        "      enabled                        = false\n",
    ),
    "dockerfile runs as root": ("checkov", "gateway/Dockerfile", "\nUSER ", "\n# USER "),
    "workflow write-all token": (
        "checkov",
        ".github/workflows/ci.yml",
        "permissions:\n  contents: read\n",
        "permissions: write-all\n",
    ),
    "k8s kustomization names a missing file": (
        "kubernetes",
        "k8s/kustomization.yaml",
        "  - processor.yaml\n",
        "  - processors.yaml\n",
    ),
    "k8s hard-coded namespace": (
        "kubernetes",
        "k8s/initiator.yaml",
        "  name: initiator-config\n",
        "  name: initiator-config\n  namespace: default\n",
    ),
    "k8s PodMonitoring unknown endpoint field": (
        "kubernetes",
        "k8s/monitoring.yaml",
        "      interval: 30s\n",
        "      intervall: 30s\n",
    ),
    "k8s PodMonitoring without endpoints": (
        "kubernetes",
        "k8s/monitoring.yaml",
        "  endpoints:\n",
        "  endpoint:\n",
    ),
    # gcloud's Cloud Run message parsing
    "cloudrun unknown field": (
        "cloudrun",
        "deploy/cloudrun/processor.yaml",
        "      containerConcurrency: 32",
        "      containerConcurency: 32",
    ),
    "cloudrun wrong type": (
        "cloudrun",
        "deploy/cloudrun/initiator.yaml",
        "      containerConcurrency: 16",
        "      containerConcurrency: sixteen",
    ),
    "cloudrun wrong apiVersion": (
        "cloudrun",
        "deploy/cloudrun/initiator-relay-job.yaml",
        "apiVersion: run.googleapis.com/v1",
        "apiVersion: batch/v1",
    ),
    # actionlint + GitHub workflow schema
    "workflow on: renamed": ("workflows", ".github/workflows/ci.yml", "\non:\n", "\nonn:\n"),
    "workflow unknown event": (
        "workflows",
        ".github/workflows/deploy-gke.yml",
        "  workflow_dispatch:\n",
        "  workflow_dispatched:\n",
    ),
    "workflow bad expression": (
        "workflows",
        ".github/workflows/deploy-cloudrun.yml",
        "${{ github.sha }}",
        "${{ github.shaa }}",
    ),
    "workflow bad permission": ("workflows", ".github/workflows/ci.yml", "  contents: read\n", "  contents: admin\n"),
    "workflow run: script unquoted": (
        "workflows",
        ".github/workflows/deploy-gke.yml",
        'docker push "${registry}/${service}:${TAG}"',
        "docker push ${registry}/${service}:${TAG}",
    ),
    "dependabot bad ecosystem": (
        "workflows",
        ".github/dependabot.yml",
        "package-ecosystem: terraform",
        "package-ecosystem: terraformm",
    ),
    # gcloud's own parser over every command deploy.sh runs
    "deploy.sh misspelled flag": (
        "deploy-script",
        "deploy/cloudrun/deploy.sh",
        "--max-delivery-attempts=",
        "--max-delivery-attempt=",
    ),
    "deploy.sh invalid choice": (
        "deploy-script",
        "deploy/cloudrun/deploy.sh",
        "--repository-format=docker",
        "--repository-format=dockerr",
    ),
    "deploy.sh unknown command": (
        "deploy-script",
        "deploy/cloudrun/deploy.sh",
        'gc run services replace "${RENDERED_DIR}/initiator.yaml"',
        'gc run service replace "${RENDERED_DIR}/initiator.yaml"',
    ),
    "deploy.sh replace misspelled flag": (
        "deploy-script",
        "deploy/cloudrun/deploy.sh",
        'replace "${RENDERED_DIR}/processor.yaml" --region=',
        'replace "${RENDERED_DIR}/processor.yaml" --regions=',
    ),
    # gcloud's own Logging v2 / Monitoring v3 / v1 message parsing
    "monitoring unknown alert field": (
        "monitoring",
        "monitoring/alert-policies/dead-letters.json",
        '"comparison": "COMPARISON_GT"',
        '"comparision": "COMPARISON_GT"',
    ),
    "monitoring bad enum": (
        "monitoring",
        "monitoring/log-metrics/binpay_dead_letters.json",
        '"metricKind": "DELTA"',
        '"metricKind": "SOMETIMES"',
    ),
    "monitoring dashboard wrong type": (
        "monitoring",
        "monitoring/dashboard.json",
        '"columns": 12',
        '"columns": "twelve"',
    ),
    # each k8s file alone: namespace binpay, optional Secrets
    "k8s object without its namespace": (
        "kubernetes",
        "k8s/processor.yaml",
        "  name: processor-config\n  namespace: binpay\n",
        "  name: processor-config\n",
    ),
    "k8s required secret": (
        "kubernetes",
        "k8s/processor.yaml",
        "                optional: true\n",
        "",
    ),
    # HCL parse + references + pins
    "terraform parse error": (
        "terraform",
        "terraform/outputs.tf",
        'output "processor_url" {',
        'output "processor_url" {{',
    ),
    "terraform undeclared variable": (
        "terraform",
        "terraform/cloudsql.tf",
        "var.cloud_sql_tier",
        "var.cloud_sql_tierr",
    ),
    "terraform undeclared resource": (
        "terraform",
        "terraform/cloudrun.tf",
        "google_service_account.scheduler.email",
        "google_service_account.schedulerr.email",
    ),
    "terraform provider range": ("terraform", "terraform/versions.tf", 'version = "6.50.0"', 'version = ">= 6.0"'),
    # JSON Schema metaschema
    "contract schema invalid": (
        "json",
        "contracts/events/payment.completed.schema.json",
        '"type": "object"',
        '"type": 5',
    ),
    # the shared package's generated copies
    "common copy edited by hand": (
        "common",
        "processor/binpay_common/contracts.py",
        "def contracts_dir",
        "def contracts_folder",
    ),
    "common source changed, copies not regenerated": (
        "common",
        "common/binpay_common/contracts.py",
        "def contracts_dir",
        "def contracts_folder",
    ),
    # requirements locks
    "lock without hashes": (
        "locks",
        "initiator/requirements-runtime.txt",
        "    --hash=sha256:",
        "    --checksum=sha256:",
    ),
    "lock edited by hand": ("locks", "processor/requirements-runtime.txt", "\nflask==", "\nrequests\nflask=="),
    "source changed, not re-locked": ("locks", "gateway/requirements-runtime.in", "gunicorn==", "gunicorn==1"),
    # ruff
    "python unused import": ("python", "tests/sample.py", "ANSWER = 42", "import os\n\nANSWER = 42"),
    "python unformatted": ("python", "tests/sample.py", "ANSWER = 42", "ANSWER=42"),
}


@pytest.mark.parametrize("step,relative,old,new", list(BREAKAGES.values()), ids=list(BREAKAGES))
def test_broken_copy_fails_its_step(tree: Tree, step: str, relative: str, old: str, new: str) -> None:
    tree.replace(relative, old, new)
    result = tree.lint(step)
    assert result.returncode == 1, f"{step} passed a broken {relative}:\n{result.stdout}{result.stderr}"
    assert f"FAILED: {step}" in result.stderr


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not installed: lint.sh skips fmt loudly")
def test_unformatted_terraform_fails(tree: Tree) -> None:
    tree.replace("terraform/pubsub.tf", "  name       = each.value\n", "  name = each.value\n")
    result = tree.lint("terraform")
    assert result.returncode == 1
    assert "pubsub.tf" in result.stdout


def test_missing_artifact_fails(tree: Tree) -> None:
    tree.path("gateway/Dockerfile").unlink()
    result = tree.lint("dockerfiles")
    assert result.returncode == 1
    assert "missing: gateway/Dockerfile" in result.stdout
