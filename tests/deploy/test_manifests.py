"""What the deploy files themselves must say, each test failing on files that do not say it.

The GKE workflow's rollout runs for real (its `run:` steps, extracted from the workflow) against
the fake cluster of fakecloud; configure.sh runs for real on a copy; the rest reads the files the
way the platform would use them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import walk
import yaml

REPO = walk.REPO
SHA1, SHA2 = "1" * 40, "2" * 40


def documents(path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((REPO / path).read_text()) if d]


def cloud_run(name: str) -> dict:
    return yaml.safe_load((REPO / "deploy" / "cloudrun" / name).read_text())


def pod_specs(document: dict) -> list[dict]:
    spec = document.get("spec") or {}
    if document["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if "template" in spec and "spec" in spec["template"]:
        inner = spec["template"]["spec"]
        return [inner["template"]["spec"]] if "template" in inner else [inner]
    return []


# -- k8s/configure.sh: every run renders the requested tag ------------------------------------------


def configure(tree: Path, tag: str, *target: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ["PATH"],
        "PROJECT_ID": "binpay-prod",
        "TAG": tag,
        "PAYMENT_GATEWAY_URL": "https://api.stripe.com",
        "PUBLIC_HOST": "api.example.org",
    }
    return subprocess.run(
        ["bash", str(tree / "k8s" / "configure.sh"), *target], env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    return tmp_path


def test_configure_in_place_twice_with_a_new_tag_is_refused_not_a_silent_success(tree):
    assert configure(tree, SHA1).returncode == 0
    again = configure(tree, SHA2)
    text = (tree / "k8s" / "initiator.yaml").read_text()
    assert again.returncode != 0 and "filled before" in again.stderr, (again.stdout, again.stderr)
    assert f"initiator:{SHA1}" in text and f"initiator:{SHA2}" not in text


def test_configure_into_a_folder_renders_each_tag_from_the_templates(tree):
    out = tree / "rendered"
    for tag in (SHA1, SHA2):
        result = configure(tree, tag, str(out))
        assert result.returncode == 0, result.stderr
        text = (out / "initiator.yaml").read_text()
        assert f"initiator:{tag}" in text and "COMMIT_SHA" not in text
    assert "COMMIT_SHA" in (tree / "k8s" / "initiator.yaml").read_text(), "the templates were edited"


# -- the GKE workflow re-deploys within a day of the last one -----------------------------------------


def workflow_steps() -> dict[str, str]:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "deploy-gke.yml").read_text())
    return {step["name"]: step["run"] for step in workflow["jobs"]["deploy"]["steps"] if "run" in step}


def test_the_gke_workflow_redeploys_a_new_tag_while_the_last_migration_job_is_kept(tmp_path):
    """The finished Job is kept 24 h (ttlSecondsAfterFinished) and its pod template is immutable."""
    steps = workflow_steps()
    rollout = [name for name in steps if name.startswith(("Render", "Server-side", "Migrate", "Roll out"))]
    assert len(rollout) == 4, list(steps)
    path = "gke-autopilot"
    doc = (REPO / "docs" / "deploy.md").read_text()
    setup = []
    for block in walk.blocks_of(path, doc):
        if "create_api_key" in block.code:
            break
        setup.append(block)
    deploy = []
    for number, tag_expression in enumerate(
        ('"$(git rev-parse HEAD)"', '"$(git rev-parse HEAD~0 | tr 0-9a-f 1-9a-f0)"')
    ):
        env = (
            f"export TAG={tag_expression} RUNNER_TEMP=$PWD/.run/runner-{number} CLOUD_SQL_INSTANCE=binpay-pg "
            'PUBLIC_HOST=api.example.org\nmkdir -p "$RUNNER_TEMP"\n'
            'for service in initiator processor; do gcloud builds submit "$service" '
            '--tag="${REGION}-docker.pkg.dev/${PROJECT_ID}/binpay/${service}:${TAG}" --region="$REGION" '
            '--service-account="projects/${PROJECT_ID}/serviceAccounts/binpay-build@${SA_DOMAIN}" '
            "--default-buckets-behavior=regional-user-owned-bucket --suppress-logs; done"
        )
        deploy.append(walk.Block(0, 0, [], env))
        deploy += [walk.Block(0, 0, [], steps[name]) for name in rollout]
    result = walk.run(path, tmp_path, chosen=setup + deploy)
    assert result.returncode == 0, f"{result.last_refusal()}\n{result.stderr[-3000:]}"
    jobs = [c for c in result.calls() if c["tool"] == "kubectl" and "job/initiator-migrate" in c["args"]]
    assert len(jobs) == 3 and all(c["exit"] == 0 for c in jobs), jobs  # the walk's wait + two rollouts


# -- Cloud Run sizing and identity (items 6, 8) -------------------------------------------------------


def gunicorn_threads(args: list[str], default_workers: int) -> int:
    workers = int(args[args.index("-w") + 1]) if "-w" in args else default_workers
    return workers * 8  # GUNICORN_THREADS' default in both services' gunicorn.conf.py


@pytest.mark.parametrize(("name", "default_workers"), [("initiator.yaml", 2), ("processor.yaml", 4)])
def test_cloud_run_admits_no_more_requests_than_gunicorn_has_threads(name, default_workers):
    spec = cloud_run(name)["spec"]["template"]["spec"]
    args = spec["containers"][0]["args"]
    assert spec["containerConcurrency"] == gunicorn_threads(args, default_workers)


def test_the_initiator_at_max_scale_stays_under_cloud_sqls_connection_limit():
    """One connection per thread; db-custom-1-3840 (3.75 GB) allows 100 (Cloud SQL's max_connections default)."""
    service = cloud_run("initiator.yaml")
    max_scale = int(service["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/maxScale"])
    threads = gunicorn_threads(service["spec"]["template"]["spec"]["containers"][0]["args"], 2)
    jobs = len(list((REPO / "deploy" / "cloudrun").glob("initiator-*-job.yaml")))
    assert max_scale * threads + jobs < 100 - 3  # PostgreSQL keeps 3 for superusers


def test_cloud_run_publishes_the_outbox_within_the_request():
    env = {
        e["name"]: e.get("value")
        for e in cloud_run("initiator.yaml")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    throttled = cloud_run("initiator.yaml")["spec"]["template"]["metadata"]["annotations"].get(
        "run.googleapis.com/cpu-throttling", "true"
    )
    assert env.get("OUTBOX_PUBLISH_IN_REQUEST") == "true" or throttled == "false"


def test_the_runtime_accounts_may_write_traces():
    iam = json.loads((REPO / "deploy" / "iam.json").read_text())["identities"]
    for account in ("binpay-initiator", "binpay-processor"):
        assert {"role": "roles/cloudtrace.agent", "on": "project"} in iam[account], account


def test_the_processor_has_memory_for_its_gunicorn_workers():
    """~80 MiB of imports per worker plus threads: 4 workers do not fit 512 MiB with room for a burst."""
    container = cloud_run("processor.yaml")["spec"]["template"]["spec"]["containers"][0]
    workers = int(container["args"][container["args"].index("-w") + 1])
    limit = container["resources"]["limits"]["memory"]
    mib = int(limit[:-2]) * (1024 if limit.endswith("Gi") else 1)
    assert mib >= workers * 80 * 2


def test_the_sandbox_ledger_lives_on_one_instance_that_never_scales_to_zero():
    annotations = cloud_run("sandbox-gateway.yaml")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/minScale"] == annotations["autoscaling.knative.dev/maxScale"] == "1"


# -- GKE --------------------------------------------------------------------------------------------


def test_no_replicas_beside_a_horizontal_pod_autoscaler():
    for manifest in ("k8s/initiator.yaml", "k8s/processor.yaml"):
        found = documents(manifest)
        scaled = {d["spec"]["scaleTargetRef"]["name"] for d in found if d["kind"] == "HorizontalPodAutoscaler"}
        for d in found:
            if d["kind"] == "Deployment" and d["metadata"]["name"] in scaled:
                assert "replicas" not in d["spec"], d["metadata"]["name"]


def test_the_processor_worker_has_a_liveness_probe():
    [worker] = [
        d
        for d in documents("k8s/processor.yaml")
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "processor-worker"
    ]
    assert "livenessProbe" in pod_specs(worker)[0]["containers"][0]


def test_third_party_images_are_pinned_by_digest():
    for manifest in ("k8s/initiator.yaml", "k8s/processor.yaml"):
        for document in documents(manifest):
            for spec in pod_specs(document):
                for container in spec.get("initContainers", []) + spec.get("containers", []):
                    image = container["image"]
                    if "your-gcp-project-id" not in image:  # BinPay's own: by commit SHA (or the workflow's digest)
                        assert re.search(r"@sha256:[0-9a-f]{64}$", image), image


def test_pod_monitoring_scrapes_the_metrics_port_in_the_binpay_namespace():
    for monitor in documents("k8s/monitoring.yaml"):
        assert monitor["metadata"].get("namespace") == "binpay", monitor["metadata"]["name"]
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


def test_the_proxy_health_port_and_the_metrics_port_do_not_collide():
    for document in documents("k8s/initiator.yaml"):
        for spec in pod_specs(document):
            ports = [
                p["containerPort"]
                for c in spec.get("initContainers", []) + spec["containers"]
                for p in c.get("ports", [])
            ]
            assert len(ports) == len(set(ports)), (document["metadata"]["name"], ports)


# NetworkPolicy, evaluated as Kubernetes does: a pod selected by any policy for a direction admits
# only what one of those policies allows (https://kubernetes.io/docs/concepts/services-networking/network-policies/).
def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def admitted(source: tuple[str, dict], target: dict, port: int) -> bool:
    namespace, labels = source
    policies = [
        p
        for p in documents("k8s/network-policies.yaml")
        if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], target)
    ]
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = [entry["port"] for entry in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            peers = rule.get("from")
            if peers is None:
                return True
            for peer in peers:
                if "ipBlock" in peer:
                    continue
                in_namespace = (
                    selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace})
                    if "namespaceSelector" in peer
                    else namespace == "binpay"
                )
                if in_namespace and selects(peer.get("podSelector") or {}, labels):
                    return True
    return not policies


INITIATOR_WEB = {
    "app.kubernetes.io/name": "initiator",
    "app.kubernetes.io/component": "web",
    "app.kubernetes.io/part-of": "binpay",
}
PROCESSOR_WEB = {
    "app.kubernetes.io/name": "processor",
    "app.kubernetes.io/component": "web",
    "app.kubernetes.io/part-of": "binpay",
}
PROCESSOR_WORKER = {
    "app.kubernetes.io/name": "processor",
    "app.kubernetes.io/component": "worker",
    "app.kubernetes.io/part-of": "binpay",
}


def test_the_internet_facing_initiator_pods_reach_neither_the_processor_nor_any_metrics_port():
    initiator = ("binpay", INITIATOR_WEB)
    assert not admitted(initiator, PROCESSOR_WEB, 8080), "processor /transactions open to the initiator pods"
    for target in (INITIATOR_WEB, PROCESSOR_WEB, PROCESSOR_WORKER):
        assert not admitted(initiator, target, 9090), target


@pytest.mark.parametrize("namespace", ["gke-gmp-system", "gmp-system"])
def test_managed_prometheus_scrapes_every_metrics_port(namespace):
    collector = (namespace, {"app.kubernetes.io/name": "collector"})
    for target in (INITIATOR_WEB, PROCESSOR_WEB, PROCESSOR_WORKER):
        assert admitted(collector, target, 9090), (namespace, target)
        assert not admitted(collector, PROCESSOR_WEB, 8080)


def test_the_public_api_stays_open():
    assert admitted(("ingress-nginx", {}), INITIATOR_WEB, 8080)


# -- the GKE workflow and the deploy identity ----------------------------------------------------------


@pytest.mark.parametrize("workflow", ["deploy-cloudrun.yml", "deploy-gke.yml"])
def test_production_deploys_run_only_from_main(workflow):
    document = yaml.safe_load((REPO / ".github" / "workflows" / workflow).read_text())
    triggers = document[True] if True in document else document["on"]
    assert set(triggers) == {"workflow_dispatch"}, triggers
    job = document["jobs"]["deploy"]
    assert job["if"] == "github.ref == 'refs/heads/main'" and job["environment"] == "production"


def test_the_production_environment_admits_protected_branches_only():
    environment = json.loads((REPO / "deploy" / "github" / "production-environment.json").read_text())
    assert environment["deployment_branch_policy"] == {"protected_branches": True, "custom_branch_policies": False}
    assert environment["prevent_self_review"] is True


def test_the_deploy_identity_holds_no_administration_role():
    roles = {
        grant["role"] for grant in json.loads((REPO / "deploy" / "iam.json").read_text())["identities"]["deployer"]
    }
    administration = {
        "roles/resourcemanager.projectIamAdmin",
        "roles/iam.serviceAccountAdmin",
        "roles/secretmanager.admin",
        "roles/cloudsql.admin",
        "roles/pubsub.admin",
        "roles/storage.admin",
        "roles/artifactregistry.admin",
        "roles/owner",
        "roles/editor",
    }
    assert not roles & administration, roles & administration


def test_the_workload_identity_provider_admits_one_repository_and_branch():
    github = (REPO / "terraform" / "github.tf").read_text()
    condition = re.search(r'attribute_condition\s*=\s*"(.*)"', github).group(1)
    assert "assertion.sub == 'repo:${var.github_repository}:environment:production'" in condition
    assert "assertion.ref == '${var.github_deploy_ref}'" in condition
    assert 'default     = "refs/heads/main"' in (REPO / "terraform" / "variables.tf").read_text()


# -- repository hygiene and the local stack -------------------------------------------------------------


def test_terraform_lock_file_is_committed_and_plans_are_ignored():
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "terraform/.terraform.lock.hcl"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.strip() == "terraform/.terraform.lock.hcl"
    for plan in ("terraform/binpay.plan", "terraform/binpay.tfplan"):
        ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", plan], check=False)
        assert ignored.returncode == 0, f"{plan} (it holds every secret in clear text) is not ignored"
    lock = (REPO / "terraform" / ".terraform.lock.hcl").read_text()
    versions = (REPO / "terraform" / "versions.tf").read_text()
    for source, version in re.findall(r'source\s*=\s*"([^"]+)"\s*\n\s*version\s*=\s*"([^"]+)"', versions):
        block = re.search(rf'provider "registry.terraform.io/{source}" {{\n  version     = "{version}"', lock)
        assert block, f"{source} {version} not in the lock file"


def test_compose_publishes_every_port_on_loopback_only():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            host = str(mapping).rsplit(":", 2)[0] if str(mapping).count(":") == 2 else "0.0.0.0"
            assert ipaddress.ip_address(host).is_loopback, f"{name} publishes {mapping}"
