"""The fake platform's state, clock, preconditions (each with its source page) and call record.

State is one JSON file in $FAKECLOUD_HOME (a walk's own folder); every call of a fake tool loads
it, acts, saves it and appends the call and its answer to calls.jsonl. Time is fake: each call
advances the clock by what the operation takes, and the fake `sleep` advances it instead of waiting,
so "a metric some minutes before a policy" is checked without waiting minutes.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Precondition:
    what: str
    page: str


# Every rule the fake enforces, with the page that documents it. Tests refer to them by name.
PRECONDITIONS: dict[str, Precondition] = {
    "api-enabled": Precondition(
        "A Google API is enabled in the project before anything uses it.",
        "https://cloud.google.com/service-usage/docs/enable-disable",
    ),
    "project-exists": Precondition(
        "A project exists, and is not being deleted, before anything is created in it.",
        "https://cloud.google.com/resource-manager/docs/creating-managing-projects",
    ),
    "wif-attribute-condition": Precondition(
        "A Workload Identity provider for GitHub's shared issuer needs an attribute condition on"
        " the token's claims (repository, branch), so other repositories' tokens are refused.",
        "https://cloud.google.com/iam/docs/workload-identity-federation-with-deployment-pipelines",
    ),
    "billing-linked": Precondition(
        "Billable APIs (Cloud SQL, Compute, GKE, Cloud Run, ...) need a billing account linked to the project.",
        "https://cloud.google.com/billing/docs/how-to/modify-project",
    ),
    "account-before-binding": Precondition(
        "A service account exists before a role is granted to it or on it.",
        "https://cloud.google.com/iam/docs/service-accounts-create",
    ),
    "service-agent": Precondition(
        "Some Google-managed service agents (Pub/Sub's among them) are created on demand, not when"
        " the API is enabled; `gcloud beta services identity create` creates one before a binding names it.",
        "https://cloud.google.com/iam/docs/create-service-agents",
    ),
    "compute-default-account": Precondition(
        "The Compute Engine default service account exists only once the Compute Engine API is enabled;"
        " Cloud Build runs as it by default in new projects.",
        "https://cloud.google.com/compute/docs/access/service-accounts#default_service_account",
    ),
    "build-logs-with-own-account": Precondition(
        "A build that runs as a user-specified service account must say where its logs go"
        " (CLOUD_LOGGING_ONLY, or a logs bucket).",
        "https://cloud.google.com/build/docs/securing-builds/configure-user-specified-service-accounts",
    ),
    "repository-before-push": Precondition(
        "An Artifact Registry repository exists before an image is pushed to it, and the pushing"
        " account holds roles/artifactregistry.writer on it.",
        "https://cloud.google.com/artifact-registry/docs/docker/pushing-and-pulling",
    ),
    "image-before-deploy": Precondition(
        "A Cloud Run service or job (or a pod) names an image that exists.",
        "https://cloud.google.com/run/docs/deploying",
    ),
    "secret-access": Precondition(
        "A Cloud Run revision that reads a secret needs the secret, an enabled version, and"
        " roles/secretmanager.secretAccessor for its service account.",
        "https://cloud.google.com/run/docs/configuring/services/secrets",
    ),
    "secret-not-empty": Precondition(
        "Secret Manager refuses an empty secret payload.",
        "https://cloud.google.com/secret-manager/docs/add-secret-version",
    ),
    "already-exists": Precondition(
        "Creating a resource whose name is taken answers 409 ALREADY_EXISTS (gcloud and Terraform alike).",
        "https://cloud.google.com/apis/design/errors#handling_errors",
    ),
    "org-policy-allusers": Precondition(
        "Under domain restricted sharing (iam.allowedPolicyMemberDomains, enforced by default in"
        " organisations created since May 2024) a policy naming allUsers is refused; disabling the"
        " Cloud Run invoker IAM check is the documented way to a public service there.",
        "https://cloud.google.com/run/docs/authenticating/public",
    ),
    "org-policy-require-invoker-iam": Precondition(
        "Under run.managed.requireInvokerIam the invoker IAM check cannot be disabled.",
        "https://cloud.google.com/run/docs/securing/managing-access#invoker_check",
    ),
    "metric-before-policy": Precondition(
        "An alert policy on a new log-based metric is refused (404) until the metric is available in"
        " Cloud Monitoring, up to 10 minutes after it was created.",
        "https://cloud.google.com/logging/docs/logs-based-metrics/troubleshooting",
    ),
    "job-template-immutable": Precondition(
        "A Kubernetes Job's pod template cannot change once the Job exists (only scheduling"
        " directives may); apply a changed one and the API server refuses it.",
        "https://kubernetes.io/docs/concepts/workloads/controllers/job/#mutable-scheduling-directives",
    ),
    "node-capacity": Precondition(
        "A pod is scheduled only on a node whose allocatable resources (capacity minus GKE's"
        " reservations and what other pods request) cover its requests; Autopilot adds nodes"
        " for the pods' requests.",
        "https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes",
    ),
    "namespace-before-objects": Precondition(
        "A namespaced object is created only in a namespace that exists.",
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/",
    ),
    "crd-before-custom-objects": Precondition(
        "PodMonitoring objects need Managed Service for Prometheus (on by default on Autopilot"
        " and new Standard clusters), whose collectors run in gke-gmp-system.",
        "https://cloud.google.com/stackdriver/docs/managed-prometheus/setup-managed",
    ),
    "workload-identity-pool": Precondition(
        "A binding to PROJECT.svc.id.goog[NAMESPACE/KSA] needs a cluster with Workload Identity"
        " in the project (the pool exists from then on).",
        "https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity",
    ),
    "node-image-pull": Precondition(
        "Nodes pull images as the node service account, which needs roles/artifactregistry.reader"
        " (and roles/container.defaultNodeServiceAccount); in organisations that disable automatic"
        " grants the Compute default account has neither.",
        "https://cloud.google.com/artifact-registry/docs/integrate-gke",
    ),
    "adc-for-terraform": Precondition(
        "Terraform's Google provider and GCS backend authenticate with Application Default"
        " Credentials (gcloud auth application-default login), not gcloud's own login.",
        "https://cloud.google.com/docs/authentication/provide-credentials-adc",
    ),
    "backend-bucket": Precondition(
        "The GCS backend's bucket exists before terraform init.",
        "https://developer.hashicorp.com/terraform/language/backend/gcs",
    ),
    "terraform-project-apis": Precondition(
        "The Google provider reads the project through the Cloud Resource Manager API and enables"
        " services through the Service Usage API, both enabled in the ADC quota project.",
        "https://cloud.google.com/docs/terraform/basic-commands",
    ),
    "terraform-depends-on-api": Precondition(
        "Terraform creates resources that do not depend on each other in any order, so a resource"
        " that needs an API must depend on the google_project_service that enables it.",
        "https://developer.hashicorp.com/terraform/language/meta-arguments/depends_on",
    ),
    "sql-deletion-protection": Precondition(
        "A Cloud SQL instance with deletion protection (gcloud --deletion-protection, or Terraform's"
        " deletion_protection) is not deleted until protection is turned off.",
        "https://cloud.google.com/sql/docs/postgres/deletion-protection",
    ),
    "firestore-delete-protection": Precondition(
        "A Firestore database with delete protection is not deleted until protection is turned off.",
        "https://cloud.google.com/firestore/docs/manage-databases#delete_protection",
    ),
    "job-before-execute": Precondition(
        "A Cloud Run job exists before it is executed, and an execution succeeds only when its"
        " container exits 0 (the app exits non-zero when a required setting is missing).",
        "https://cloud.google.com/run/docs/execute/jobs",
    ),
    "cpu-outside-requests": Precondition(
        "With request-based billing Cloud Run takes the CPU away once the response is sent: work"
        " started on a background thread after it (an outbox publish) does not run until a later"
        " request lands on that instance.",
        "https://cloud.google.com/run/docs/tips/general#avoid_background_activities",
    ),
    "topic-before-subscription": Precondition(
        "A subscription, and its dead-letter topic, need existing topics.",
        "https://cloud.google.com/pubsub/docs/create-subscription",
    ),
    "cloud-run-ingress": Precondition(
        "A service with internal ingress answers requests from the internet with 404;"
        " a service that checks invoker IAM answers 403 to callers without roles/run.invoker.",
        "https://cloud.google.com/run/docs/securing/ingress",
    ),
    "cluster-before-credentials": Precondition(
        "kubectl needs credentials of an existing, running cluster (gcloud container clusters get-credentials).",
        "https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl",
    ),
    "project-delete": Precondition(
        "Deleting a project stops its billing and shuts its resources down; it can be restored for 30 days.",
        "https://cloud.google.com/resource-manager/docs/creating-managing-projects#shutting_down_projects",
    ),
}


class PlatformError(Exception):
    """The platform refused the call: `message` is what the tool prints, `rule` the precondition."""

    def __init__(self, rule: str, message: str, exit_code: int = 1) -> None:
        assert rule in PRECONDITIONS, rule
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.exit_code = exit_code


class UsageError(Exception):
    """A command the fake does not model: the walk fails loudly rather than guess."""


def home() -> Path:
    return Path(os.environ["FAKECLOUD_HOME"])


def empty_state() -> dict:
    return {
        "clock": 0.0,
        "org_policies": [],
        "auth": {"user": None, "adc": False, "adc_quota_project": None},
        "config": {"project": None},
        "billing_accounts": ["0X0X0X-0X0X0X-0X0X0X"],
        "projects": {},
        # Names recently deleted, with when: Cloud SQL keeps an instance's name for a week.
        "deleted": {},
        "kube": {"current": None, "contexts": {}},
        "next_number": 100000000001,
    }


@contextmanager
def locked_state():
    """Load the state under a lock (a backgrounded `kubectl port-forward &` may overlap), save it after."""
    path = home() / "state.json"
    with open(home() / "state.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text()) if path.exists() else empty_state()
        try:
            yield state
        finally:
            path.write_text(json.dumps(state, indent=1, sort_keys=True))


def record(tool: str, args: list[str], exit_code: int, out: str, err: str, rule: str | None, clock: float) -> None:
    with open(home() / "calls.jsonl", "a") as calls:
        calls.write(
            json.dumps(
                {
                    "tool": tool,
                    "args": args,
                    "exit": exit_code,
                    "stdout": out[-2000:],
                    "stderr": err[-2000:],
                    "rule": rule,
                    "clock": clock,
                }
            )
            + "\n"
        )


def main(argv: list[str]) -> int:
    tool, args = argv[0], argv[1:]
    if tool == "sleep":
        seconds = float(args[0].rstrip("s")) if args else 0.0
        with locked_state() as state:
            state["clock"] += seconds
            clock = state["clock"]
        record("sleep", args, 0, "", "", None, clock)
        return 0
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    out: list[str] = []
    err: list[str] = []
    rule = None
    with locked_state() as state:
        try:
            # Only the tool asked for is imported: the fake terraform's HCL parser is slow to load.
            code = importlib.import_module(f"fakecloud.{tool}").run(state, args, stdin, out, err)
        except PlatformError as refusal:
            code, rule = refusal.exit_code, refusal.rule
            err.append(refusal.message.rstrip("\n") + "\n")
        except UsageError as unknown:
            code = 99
            err.append(f"fakecloud: {tool} {' '.join(args)}: not modelled: {unknown}\n")
        clock = state["clock"]
    stdout, stderr = "".join(out), "".join(err)
    record(tool, args, code, stdout, stderr, rule, clock)
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return code
