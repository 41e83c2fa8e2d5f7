"""What the platform does with the deploy artifacts, modelled offline (issue 11).

Each test reads the artifacts the way Google Cloud or Kubernetes would use them: the commands
deploy.sh runs (its --dry-run), the Terraform resources, the Cloud Run YAML, each k8s file alone,
and the GKE workflow's render step run for real on a copy.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml
from lint_support import REPO, TOOLS

PLACEHOLDERS = (REPO / "deploy" / "placeholders.txt").read_text().split()
IAM = json.loads((REPO / "deploy" / "iam.json").read_text())
SHA = "0123456789abcdef0123456789abcdef01234567"


# -- deploy.sh, as the commands it runs -------------------------------------------------------


@pytest.fixture(scope="module")
def deploy_commands() -> list[list[str]]:
    env = {**os.environ, "PROJECT_ID": "binpay-test", "PAYMENT_GATEWAY_URL": "https://gateway.test", "TAG": SHA}
    result = subprocess.run(
        ["bash", str(REPO / "deploy" / "cloudrun" / "deploy.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ gcloud ")]


def flags(command: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in command if arg.startswith("--") and "=" in arg)


def find(commands: list[list[str]], *words: str) -> list[str]:
    [command] = [c for c in commands if all(word in c for word in words)]
    return command


def env_of(command: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in flags(command)["set-env-vars"].split(","))


def seconds(duration: str) -> int:
    return int(duration.removesuffix("s"))


def test_scheduler_attempt_deadline_fits_the_request_timeout(deploy_commands):
    initiator = find(deploy_commands, "deploy", "initiator")
    scheduler = [c for c in deploy_commands if "binpay-reconcile" in c and "http" in c][0]
    timeout = seconds(flags(initiator)["timeout"])

    assert seconds(flags(scheduler)["attempt-deadline"]) <= timeout
    assert int(env_of(initiator)["RECONCILE_TIME_BUDGET_SECONDS"]) < timeout
    assert int(env_of(initiator)["RECONCILE_BATCH_SIZE"]) > 0

    terraform = (REPO / "terraform" / "cloudrun.tf").read_text()
    assert 'attempt_deadline = "${local.initiator_timeout_seconds}s"' in terraform
    assert 'timeout                          = "${local.initiator_timeout_seconds}s"' in terraform
    knative = yaml.safe_load((REPO / "deploy" / "cloudrun" / "initiator.yaml").read_text())
    knative_env = {e["name"]: e.get("value") for e in knative["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert int(knative_env["RECONCILE_TIME_BUDGET_SECONDS"]) < knative["spec"]["template"]["spec"]["timeoutSeconds"]


def test_the_processor_starts_with_the_push_timeouts_it_is_deployed_with(deploy_commands):
    """Cloud Run's request timeout is the processor's PUSH_REQUEST_TIMEOUT_SECONDS, the processor accepts
    it (room to wait out a crashed delivery's lease, then handle), and Pub/Sub waits longer for the answer."""
    processor = find(deploy_commands, "deploy", "processor")
    timeout = seconds(flags(processor)["timeout"])
    env = env_of(processor)
    assert int(env["PUSH_REQUEST_TIMEOUT_SECONDS"]) == timeout
    knative = yaml.safe_load((REPO / "deploy" / "cloudrun" / "processor.yaml").read_text())
    spec = knative["spec"]["template"]["spec"]
    knative_env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert spec["timeoutSeconds"] == int(knative_env["PUSH_REQUEST_TIMEOUT_SECONDS"]) == timeout
    terraform = (REPO / "terraform" / "cloudrun.tf").read_text() + (REPO / "terraform" / "main.tf").read_text()
    assert f'timeout = "{timeout}s"' in terraform and f'PUSH_REQUEST_TIMEOUT_SECONDS = "{timeout}"' in terraform
    subscriptions = [c for c in deploy_commands if "subscriptions" in c and ("create" in c or "update" in c)]
    assert subscriptions and all(seconds(flags(c)["ack-deadline"]) > timeout for c in subscriptions)

    started = subprocess.run(
        [
            sys.executable,
            "-c",
            "from binpay_processor.config import Settings; Settings.from_env(environ=dict(__import__('os').environ))",
        ],
        cwd=REPO / "processor",
        env={**os.environ, **env, "PAYMENT_GATEWAY_API_KEY": "sk_test_deployed"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr


def test_push_and_scheduler_tokens_never_open_each_others_endpoint(deploy_commands):
    initiator_env = env_of(find(deploy_commands, "deploy", "initiator"))
    processor = find(deploy_commands, "deploy", "processor")
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
    # Cloud Run strips the signature only where it checks IAM: the private processor, not the public initiator.
    assert "--no-allow-unauthenticated" in processor and env_of(processor)["BEHIND_CLOUD_RUN_IAM"] == "true"
    assert "--allow-unauthenticated" in find(deploy_commands, "deploy", "initiator")
    assert "BEHIND_CLOUD_RUN_IAM" not in initiator_env

    main_tf = (REPO / "terraform" / "main.tf").read_text()
    assert re.search(r"RECONCILE_AUDIENCE\s+= local.reconcile_url", main_tf)
    assert re.search(r'BEHIND_CLOUD_RUN_IAM = "true"', main_tf)
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
    if email.endswith("-compute@developer.gserviceaccount.com"):
        return "cloud-build"
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
    runtime = {pair for pair in table if pair[0] not in {"deployer", "allUsers"} and not pair[0].startswith("k8s:")}
    assert granted == runtime, f"deploy.sh differs: {granted ^ runtime}"

    terraform = terraform_grants()
    assert terraform == {pair for pair in table if pair[0] != "deployer"}, f"terraform differs: {terraform ^ table}"


MEMBERS = {
    "${google_service_account.initiator.member}": "binpay-initiator",
    "${google_service_account.processor.member}": "binpay-processor",
    "${google_service_account.pubsub_push.member}": "binpay-pubsub-push",
    "${google_service_account.scheduler.member}": "binpay-scheduler",
    "${local.pubsub_agent}": "pubsub-service-agent",
    "${local.build_agent}": "cloud-build",
    '"allUsers"': "allUsers",
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
                    if "svc.id.goog" in member:
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
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **config["data"]}
    env |= {key: f"value-of-{key}" for key in keys}
    if "DATABASE_URL" in keys:
        env["DATABASE_URL"] = "postgres://binpay:password@127.0.0.1:5432/binpay"

    result = subprocess.run(
        [sys.executable, *command],
        cwd=REPO / cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]


# -- Cloud Run: the Knative YAML, deploy.sh and Terraform define the same two services ----------


@pytest.fixture(scope="module")
def placeholder_deploy_commands() -> list[list[str]]:
    """deploy.sh run with the placeholders the Knative YAML carries, so both read the same."""
    env = {
        **os.environ,
        "PROJECT_ID": "your-gcp-project-id",
        "PAYMENT_GATEWAY_URL": "https://your-payment-gateway.com",
        "TAG": SHA,
    }
    result = subprocess.run(
        ["bash", str(REPO / "deploy" / "cloudrun" / "deploy.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ gcloud ")]


def terraform_env_names(service: str) -> set[str]:
    main_tf = (REPO / "terraform" / "main.tf").read_text()
    common = main_tf[main_tf.index("common_env = {") :].split("}", 1)[0]
    own = main_tf[main_tf.index(f"{service}_env = merge(local.common_env, {{") :].split("})", 1)[0]
    names = set(re.findall(r"^\s+([A-Z_]+)\s+=", common + own, re.M))
    if service == "initiator":
        secrets = main_tf[main_tf.index("initiator_secrets = {") :].split("}", 1)[0]
        names |= set(re.findall(r"^\s+([A-Z_]+)\s+=", secrets, re.M))
    else:
        names.add("PAYMENT_GATEWAY_API_KEY")  # cloudrun.tf's one secret env of the processor
    return names


@pytest.mark.parametrize("service", ["initiator", "processor"])
def test_cloud_run_service_is_defined_alike_in_yaml_deploy_sh_and_terraform(placeholder_deploy_commands, service):
    knative = yaml.safe_load((REPO / "deploy" / "cloudrun" / f"{service}.yaml").read_text())
    template = knative["spec"]["template"]
    container = template["spec"]["containers"][0]
    yaml_env = {
        e["name"]: e["value"] if "value" in e else "{name}:{key}".format(**e["valueFrom"]["secretKeyRef"])
        for e in container["env"]
    }
    command = find(placeholder_deploy_commands, "deploy", service)
    script = flags(command)
    script_env = env_of(command) | dict(pair.split("=", 1) for pair in script["set-secrets"].split(","))

    assert yaml_env == script_env, f"differs: {set(yaml_env.items()) ^ set(script_env.items())}"
    assert template["spec"]["timeoutSeconds"] == seconds(script["timeout"])
    assert template["spec"]["containerConcurrency"] == int(script["concurrency"])
    assert template["spec"]["serviceAccountName"] == script["service-account"]
    assert knative["metadata"]["annotations"]["run.googleapis.com/ingress"] == script["ingress"]
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/maxScale"] == script["max-instances"]
    assert set(yaml_env) == terraform_env_names(service)
