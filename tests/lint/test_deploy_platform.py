"""What the platform does with the deploy artifacts, modelled offline.

Each test reads the artifacts the way Google Cloud or Kubernetes would use them: the commands
deploy.sh runs and the Cloud Run YAML it renders and applies (its --dry-run), the Terraform
resources, each k8s file alone, and the GKE workflow's render step run for real on a copy.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lint_support import REPO, TOOLS

PLACEHOLDERS = (REPO / "deploy" / "placeholders.txt").read_text().split()
IAM = json.loads((REPO / "deploy" / "iam.json").read_text())
SHA = "0123456789abcdef0123456789abcdef01234567"


# -- deploy.sh, as the commands it runs and the Cloud Run YAML it renders and applies ----------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> tuple[list[list[str]], dict[str, dict]]:
    """deploy.sh --dry-run: the gcloud commands it runs, and each deploy/cloudrun/*.yaml as it renders it."""
    rendered = tmp_path_factory.mktemp("rendered")
    env = {
        **os.environ,
        "PROJECT_ID": "binpay-test",
        "SANDBOX_GATEWAY": "true",
        "TAG": SHA,
        "RENDERED_DIR": str(rendered),
    }
    env.pop("PAYMENT_GATEWAY_URL", None)
    result = subprocess.run(
        ["bash", str(REPO / "deploy" / "cloudrun" / "deploy.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    commands = [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ gcloud ")]
    return commands, {path.name: yaml.safe_load(path.read_text()) for path in rendered.glob("*.yaml")}


@pytest.fixture(scope="module")
def deploy_commands(deployment) -> list[list[str]]:
    return deployment[0]


@pytest.fixture(scope="module")
def rendered(deployment) -> dict[str, dict]:
    return deployment[1]


def flags(command: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in command if arg.startswith("--") and "=" in arg)


def seconds(duration: str) -> int:
    return int(duration.removesuffix("s"))


def pod_spec(document: dict) -> dict:
    spec = document["spec"]["template"]["spec"]
    return spec["template"]["spec"] if document["kind"] == "Job" else spec


def env_of(document: dict) -> dict[str, str]:
    """The container's plain env values (secrets are Secret Manager references, not values)."""
    return {e["name"]: e["value"] for e in pod_spec(document)["containers"][0]["env"] if "value" in e}


def secret_env_names(document: dict) -> set[str]:
    return {e["name"] for e in pod_spec(document)["containers"][0]["env"] if "valueFrom" in e}


def test_deploy_sh_applies_every_rendered_file_with_no_placeholder_left(deploy_commands, rendered):
    assert set(rendered) == {path.name for path in (REPO / "deploy" / "cloudrun").glob("*.yaml")}
    replaced = {Path(c[-2]).name for c in deploy_commands if "replace" in c}
    assert replaced == set(rendered)
    for name, document in rendered.items():
        text = yaml.safe_dump(document)
        assert not [p for p in PLACEHOLDERS if p in text], name
        image = pod_spec(document)["containers"][0]["image"]
        assert image.startswith("us-central1-docker.pkg.dev/binpay-test/binpay/") and image.endswith(f":{SHA}"), image
    # Migrations finish before either BinPay service rolls out (the sandbox gateway may come first).
    replaces = [(i, Path(c[-2]).name) for i, c in enumerate(deploy_commands) if "replace" in c]
    first = [i for i, name in replaces if name != "sandbox-gateway.yaml"][0]
    assert Path(deploy_commands[first][-2]).name == "initiator-migrate-job.yaml"
    assert deploy_commands[first + 1][3:7] == ["run", "jobs", "execute", "initiator-migrate"]


RENDER_VALUES = {
    "PROJECT_ID": "binpay-prod",
    "PROJECT_NUMBER": "42",
    "TAG": SHA,
    "PAYMENT_GATEWAY_URL": "https://gateway.example.org",
    "REGION": "europe-west1",
}


def render(out, values: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / "deploy" / "cloudrun" / "render.sh"), str(out)],
        env={"PATH": os.environ["PATH"], **values},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("bad", ["TAG=latest", "PAYMENT_GATEWAY_URL=https://a.test/#x", "PROJECT_NUMBER=", "REGION=x"])
def test_render_refuses_a_value_it_cannot_fill_in(tmp_path, bad):
    name, value = bad.split("=", 1)
    result = render(tmp_path / "out", RENDER_VALUES | {name: value})
    assert result.returncode != 0 and name in result.stderr, result.stderr


def test_render_fills_the_region_repository_and_cloud_sql_instance(tmp_path):
    result = render(tmp_path, RENDER_VALUES | {"REPOSITORY": "images", "CLOUD_SQL_INSTANCE": "pg-main"})
    assert result.returncode == 0, result.stderr
    initiator = yaml.safe_load((tmp_path / "initiator.yaml").read_text())
    template = initiator["spec"]["template"]
    assert (
        template["metadata"]["annotations"]["run.googleapis.com/cloudsql-instances"]
        == "binpay-prod:europe-west1:pg-main"
    )
    assert (
        template["spec"]["containers"][0]["image"] == f"europe-west1-docker.pkg.dev/binpay-prod/images/initiator:{SHA}"
    )
    assert env_of(initiator)["PUBSUB_PUSH_AUDIENCE"] == "https://initiator-42.europe-west1.run.app/pubsub/push"
    assert env_of(initiator)["PAYMENT_GATEWAY_URL"] == "https://gateway.example.org"
    assert "us-central1" not in (tmp_path / "initiator.yaml").read_text()


def test_scheduler_attempt_deadline_fits_the_request_timeout(deploy_commands, rendered):
    initiator = rendered["initiator.yaml"]
    scheduler = [c for c in deploy_commands if "binpay-reconcile" in c and "http" in c][0]
    timeout = pod_spec(initiator)["timeoutSeconds"]

    assert seconds(flags(scheduler)["attempt-deadline"]) <= timeout
    assert int(env_of(initiator)["RECONCILE_TIME_BUDGET_SECONDS"]) < timeout
    assert int(env_of(initiator)["RECONCILE_BATCH_SIZE"]) > 0

    # Terraform's schedule reads the same timeout from the same YAML.
    main_tf = (REPO / "terraform" / "main.tf").read_text()
    assert 'initiator_service = yamldecode(file("${path.module}/../deploy/cloudrun/initiator.yaml"))' in main_tf
    assert "initiator_timeout_seconds = local.initiator_service.spec.template.spec.timeoutSeconds" in main_tf
    cloudrun_tf = (REPO / "terraform" / "cloudrun.tf").read_text()
    assert 'attempt_deadline = "${local.initiator_timeout_seconds}s"' in cloudrun_tf


def test_the_processor_starts_with_the_push_timeouts_it_is_deployed_with(deploy_commands, rendered):
    """Cloud Run's request timeout is the processor's PUSH_REQUEST_TIMEOUT_SECONDS, the processor accepts
    it (room to wait out a crashed delivery's lease, then handle), and Pub/Sub waits longer for the answer."""
    processor = rendered["processor.yaml"]
    timeout = pod_spec(processor)["timeoutSeconds"]
    env = env_of(processor)
    assert int(env["PUSH_REQUEST_TIMEOUT_SECONDS"]) == timeout
    subscriptions = [c for c in deploy_commands if "subscriptions" in c and ("create" in c or "update" in c)]
    assert subscriptions and all(seconds(flags(c)["ack-deadline"]) > timeout for c in subscriptions)
    variables_tf = (REPO / "terraform" / "variables.tf").read_text()
    ack_deadline = variables_tf[variables_tf.index('variable "ack_deadline_seconds"') :]
    assert int(re.search(r"default\s+=\s+(\d+)", ack_deadline).group(1)) > timeout
    assert "ack_deadline_seconds = var.ack_deadline_seconds" in (REPO / "terraform" / "pubsub.tf").read_text()

    secrets = {name: f"value-of-{name}" for name in secret_env_names(processor)}
    started = subprocess.run(
        [
            sys.executable,
            "-c",
            "from binpay_processor.config import Settings; Settings.from_env(environ=dict(__import__('os').environ))",
        ],
        cwd=REPO / "processor",
        env={**os.environ, **env, **secrets},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr


@pytest.mark.parametrize("name", ["initiator.yaml", "initiator-migrate-job.yaml", "initiator-relay-job.yaml"])
def test_the_initiator_starts_with_the_environment_it_is_deployed_with(rendered, name, tmp_path):
    document = rendered[name]
    secrets = {key: f"value-of-{key}" for key in secret_env_names(document)}
    result = start_service("initiator", ["manage.py", "check"], env_of(document) | secrets, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def start_service(service: str, command: list[str], env: dict[str, str], home) -> subprocess.CompletedProcess:
    """Run a service's start-up check with exactly the environment a deployment gives it."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), **env}
    if "DATABASE_URL" in env:
        env["DATABASE_URL"] = "postgres://binpay:password@127.0.0.1:5432/binpay"
    return subprocess.run(
        [sys.executable, *command],
        cwd=REPO / service,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_push_and_scheduler_tokens_never_open_each_others_endpoint(deploy_commands, rendered):
    initiator_env = env_of(rendered["initiator.yaml"])
    processor = rendered["processor.yaml"]
    scheduler = flags([c for c in deploy_commands if "binpay-reconcile" in c and "http" in c][0])
    push_audiences = {
        flags(c)["push-auth-token-audience"]
        for c in deploy_commands
        if "subscriptions" in c and any(a.startswith("--push-auth-token-audience") for a in c)
    }

    assert scheduler["oidc-token-audience"] == initiator_env["RECONCILE_AUDIENCE"] == scheduler["uri"]
    assert scheduler["oidc-service-account-email"] == initiator_env["RECONCILE_SERVICE_ACCOUNT"]
    assert scheduler["oidc-token-audience"] not in push_audiences
    assert scheduler["oidc-service-account-email"] != initiator_env["PUBSUB_PUSH_SERVICE_ACCOUNT"]
    assert initiator_env["PUBSUB_PUSH_AUDIENCE"] in push_audiences
    assert env_of(processor)["PUBSUB_PUSH_AUDIENCE"] in push_audiences
    # Cloud Run strips the signature only where it checks IAM: the private processor, not the public initiator.
    invokers = {
        (c[c.index("add-iam-policy-binding") + 1], flags(c)["member"])
        for c in deploy_commands
        if "services" in c and "add-iam-policy-binding" in c
    }
    # The initiator is public with the invoker check disabled (no allUsers binding, which domain
    # restricted sharing refuses); the processor keeps it, and binds only the push account.
    assert not {member for _, member in invokers} & {"allUsers", "allAuthenticatedUsers"}
    assert invokers == {("processor", f"serviceAccount:{initiator_env['PUBSUB_PUSH_SERVICE_ACCOUNT']}")}
    assert rendered["initiator.yaml"]["metadata"]["annotations"]["run.googleapis.com/invoker-iam-disabled"] == "true"
    assert "run.googleapis.com/invoker-iam-disabled" not in processor["metadata"]["annotations"]
    assert processor["metadata"]["annotations"]["run.googleapis.com/ingress"] == "internal"
    assert env_of(processor)["BEHIND_CLOUD_RUN_IAM"] == "true"
    assert "BEHIND_CLOUD_RUN_IAM" not in initiator_env

    main_tf = (REPO / "terraform" / "main.tf").read_text()
    assert 'reconcile_url = "https://${local.initiator_host}/internal/reconcile"' in main_tf
    cloudrun_tf = (REPO / "terraform" / "cloudrun.tf").read_text()
    reconcile_job = cloudrun_tf[cloudrun_tf.index('"google_cloud_scheduler_job" "reconcile"') :]
    assert "service_account_email = google_service_account.scheduler.email" in reconcile_job
    assert "audience              = local.reconcile_url" in reconcile_job


# -- k8s: each of the seed's files alone --------------------------------------------------------


@pytest.mark.parametrize("name", ["initiator.yaml", "processor.yaml"])
def test_each_seed_manifest_applies_alone_into_its_namespace(name):
    for resource in yaml.safe_load_all((REPO / "k8s" / name).read_text()):
        assert resource["metadata"].get("namespace") == "binpay", f"{resource['kind']}/{resource['metadata']['name']}"
        spec = resource.get("spec") or {}
        pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    # A required Secret that is missing is CreateContainerConfigError; optional, the app says what it lacks.
                    assert source["secretRef"].get("optional") is True, container["name"]
            assert not container["image"].endswith(":latest"), container["image"]


# -- the GKE workflow's render step, run for real on a copy ------------------------------------


def render_step() -> str:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "deploy-gke.yml").read_text())
    [step] = [s for s in workflow["jobs"]["deploy"]["steps"] if s.get("name", "").startswith("Render")]
    return step["run"]


@pytest.mark.parametrize(
    "left",
    [None, "PAYMENT_GATEWAY_URL", "PUBLIC_HOST", "PROJECT_ID"],
    ids=["all-set", "gateway-url", "public-host", "project"],
)
def test_gke_render_refuses_every_placeholder(tmp_path, left):
    shutil.copytree(REPO / "k8s", tmp_path / "repo" / "k8s")
    shutil.copytree(REPO / "deploy", tmp_path / "repo" / "deploy")
    (tmp_path / "runner").mkdir()
    values = {
        "PROJECT_ID": "binpay-prod",
        "REGION": "europe-west1",
        "CLOUD_SQL_INSTANCE": "binpay-pg",
        "TAG": SHA,
        "PAYMENT_GATEWAY_URL": "https://gateway.example.org",
        "PUBLIC_HOST": "api.example.org",
    }
    placeholder_values = {
        "PAYMENT_GATEWAY_URL": "https://your-payment-gateway.com",
        "PUBLIC_HOST": "api.binpay.example.com",
        "PROJECT_ID": "your-gcp-project-id",
    }
    if left:
        values[left] = placeholder_values[left]
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", render_step()],
        cwd=tmp_path / "repo",
        env={**os.environ, **values, "RUNNER_TEMP": str(tmp_path / "runner")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    if left is None:
        assert result.returncode == 0, result.stderr
        rendered = (tmp_path / "runner" / "binpay.yaml").read_text()
        assert not [p for p in PLACEHOLDERS if p in rendered]
        assert f"europe-west1-docker.pkg.dev/binpay-prod/binpay/initiator:{SHA}" in rendered
    else:
        assert result.returncode != 0, f"{left} left as a placeholder was not refused:\n{result.stdout}"


# -- IAM: one table, the same in docs/deploy.md, Terraform and deploy.sh ----------------------


def pairs(identities: dict) -> set[tuple[str, str]]:
    return {(identity, grant["role"]) for identity, grants in identities.items() for grant in grants}


def identity_of_email(email: str) -> str:
    if "@gcp-sa-pubsub." in email:
        return "pubsub-service-agent"
    return email.split("@", 1)[0]


def test_iam_table_is_the_same_in_docs_terraform_and_deploy_sh(deploy_commands):
    table = pairs(IAM["identities"])
    documented = set(re.findall(r"^\| `([^`]+)` \| `(roles/[^`]+)` \|", (REPO / "docs/deploy.md").read_text(), re.M))
    assert documented == table, f"docs/deploy.md differs: {documented ^ table}"

    granted = set()
    for command in deploy_commands:
        if "add-iam-policy-binding" in command:
            member = flags(command)["member"].removeprefix("serviceAccount:")
            granted.add((identity_of_email(member), flags(command)["role"]))
    # deploy.sh is Cloud Run's: neither the GKE identities nor the deploy workflows' own.
    gke_or_ci = ("deployer", "binpay-gke-nodes")
    runtime = {pair for pair in table if pair[0] not in gke_or_ci and not pair[0].startswith("k8s:")}
    assert granted == runtime, f"deploy.sh differs: {granted ^ runtime}"

    # The invoker grants on the Cloud Run services and jobs are deploy.sh's, which creates them, and
    # the sandbox gateway is deploy.sh's alone (SANDBOX_GATEWAY=true).
    on_cloud_run = {(identity, "roles/run.invoker") for identity in ("binpay-pubsub-push", "binpay-scheduler")}
    expected = {pair for pair in table if pair[0] != "binpay-sandbox-gateway"} - on_cloud_run
    terraform = terraform_grants()
    assert terraform == expected, f"terraform differs: {terraform ^ expected}"


MEMBERS = {
    "${google_service_account.initiator.member}": "binpay-initiator",
    "${google_service_account.processor.member}": "binpay-processor",
    "${google_service_account.pubsub_push.member}": "binpay-pubsub-push",
    "${google_service_account.scheduler.member}": "binpay-scheduler",
    "${google_service_account.build.member}": "binpay-build",
    "${google_service_account.gke_nodes[0].member}": "binpay-gke-nodes",
    "${google_service_account.deployer[0].member}": "deployer",
    "${local.pubsub_agent}": "pubsub-service-agent",
}


def terraform_grants() -> set[tuple[str, str]]:
    """(identity, role) of every *_iam_member resource, for_each expanded (parsed by python-hcl2)."""
    script = "import hcl2, json, pathlib, sys; print(json.dumps([hcl2.load(open(p)) for p in sorted(pathlib.Path(sys.argv[1]).glob('*.tf'))]))"
    output = subprocess.run(
        [str(TOOLS / "venv" / "bin" / "python"), "-c", script, str(REPO / "terraform")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    grants = set()
    for document in json.loads(output):
        for resource in document.get("resource", []):
            for kind, named in resource.items():
                if not kind.strip('"').endswith("_iam_member"):
                    continue
                for body in named.values():
                    roles = [body["role"].strip('"')]
                    if roles == ["${each.value}"]:
                        roles = re.findall(r'"(roles/[^"]+)"', body["for_each"])
                    member = body["member"]
                    if member.startswith('"principalSet://'):
                        # GitHub's workflows (the provider's repository) act as binpay-deployer.
                        identities = ["deployer"]
                    elif "svc.id.goog" in member:
                        identities = [
                            f"k8s:binpay/{name}"
                            for name in re.findall(r"(\w+) = google_service_account", body["for_each"])
                        ]
                    elif member == "${each.value}":
                        identities = [MEMBERS[value] for value in body["for_each"].values()]
                    else:
                        identities = [MEMBERS[member]]
                    grants |= {(identity, role) for identity in identities for role in roles}
    return grants


# -- GKE: the pods' environment (ConfigMap + the Secret k8s/prepare.sh creates) starts each service --


def secret_keys(secret: str) -> list[str]:
    """The keys `k8s/prepare.sh` puts into one Secret (its `kubectl create secret generic` command)."""
    script = (REPO / "k8s" / "prepare.sh").read_text()
    command = script[script.index(f"create secret generic {secret}") :].split("| kubectl apply")[0]
    return re.findall(r"--from-literal=(\w+)=", command)


@pytest.mark.parametrize(
    ("manifest", "secret", "command", "cwd"),
    [
        ("initiator.yaml", "initiator-secrets", ["manage.py", "check"], "initiator"),
        (
            "processor.yaml",
            "processor-secrets",
            ["-c", "from binpay_processor.config import Settings; Settings.from_env()"],
            "processor",
        ),
    ],
)
def test_gke_pod_environment_starts_each_service(manifest, secret, command, cwd, tmp_path):
    [config] = [r for r in yaml.safe_load_all((REPO / "k8s" / manifest).read_text()) if r["kind"] == "ConfigMap"]
    keys = secret_keys(secret)
    assert keys, f"k8s/prepare.sh creates no {secret}"
    result = start_service(cwd, command, config["data"] | {key: f"value-of-{key}" for key in keys}, tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]
