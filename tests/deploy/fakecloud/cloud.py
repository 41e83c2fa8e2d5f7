"""The Google Cloud project model shared by the fake gcloud, terraform, kubectl and curl.

Resources live in state["projects"][ID]["r"][KIND][NAME]; IAM bindings in ["iam"] as
{resource, member, role}. Every create/delete here is what both gcloud and Terraform do, so a
resource made one way and then again the other way gets the platform's 409.
"""

from __future__ import annotations

from fakecloud.platform import PlatformError

API_TITLES = {
    "run.googleapis.com": "Cloud Run Admin API",
    "pubsub.googleapis.com": "Cloud Pub/Sub API",
    "firestore.googleapis.com": "Cloud Firestore API",
    "sqladmin.googleapis.com": "Cloud SQL Admin API",
    "secretmanager.googleapis.com": "Secret Manager API",
    "artifactregistry.googleapis.com": "Artifact Registry API",
    "cloudbuild.googleapis.com": "Cloud Build API",
    "cloudscheduler.googleapis.com": "Cloud Scheduler API",
    "iam.googleapis.com": "Identity and Access Management (IAM) API",
    "iamcredentials.googleapis.com": "IAM Service Account Credentials API",
    "sts.googleapis.com": "Security Token Service API",
    "logging.googleapis.com": "Cloud Logging API",
    "monitoring.googleapis.com": "Cloud Monitoring API",
    "container.googleapis.com": "Kubernetes Engine API",
    "compute.googleapis.com": "Compute Engine API",
    "cloudresourcemanager.googleapis.com": "Cloud Resource Manager API",
    "serviceusage.googleapis.com": "Service Usage API",
    "cloudtrace.googleapis.com": "Cloud Trace API",
    "storage.googleapis.com": "Cloud Storage API",
}
# Enabled in every new project (the Service Usage default set); Cloud Resource Manager is not.
DEFAULT_APIS = ("serviceusage.googleapis.com", "storage.googleapis.com", "logging.googleapis.com")
# Enabling one enables these too (Service Usage dependencies).
API_DEPENDENCIES = {
    "container.googleapis.com": ("compute.googleapis.com",),
    "run.googleapis.com": (),
    "cloudbuild.googleapis.com": (),
}
NEEDS_BILLING = {
    "run.googleapis.com",
    "sqladmin.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "secretmanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "pubsub.googleapis.com",
}
DRS = "iam.allowedPolicyMemberDomains"
REQUIRE_INVOKER_IAM = "run.managed.requireInvokerIam"
NO_DEFAULT_GRANTS = "iam.automaticIamGrantsForDefaultServiceAccounts"


def project(state: dict, project_id: str | None, command: str) -> dict:
    if not project_id:
        raise PlatformError(
            "project-exists",
            f"ERROR: ({command}) The required property [project] is not currently set.\n"
            "You may set it for your current workspace by running:\n\n  $ gcloud config set project VALUE",
        )
    found = state["projects"].get(project_id)
    if found is None or found["state"] != "ACTIVE":
        raise PlatformError(
            "project-exists",
            f"ERROR: ({command}) [{state['auth']['user']}] does not have permission to access projects instance"
            f" [{project_id}] (or it may not exist): The caller does not have permission",
        )
    found["id"] = project_id
    return found


def need_api(project: dict, api: str, command: str) -> None:
    if api not in project["apis"]:
        number = project["number"]
        raise PlatformError(
            "api-enabled",
            f"ERROR: ({command}) PERMISSION_DENIED: {API_TITLES.get(api, api)} has not been used in project"
            f" {number} before or it is disabled. Enable it by visiting"
            f" https://console.developers.google.com/apis/api/{api}/overview?project={number} then retry."
            " If you enabled this API recently, wait a few minutes for the action to propagate to our"
            " systems and retry.\n- '@type': type.googleapis.com/google.rpc.ErrorInfo\n  reason: SERVICE_DISABLED",
        )


def compute_account(project: dict) -> str:
    return f"{project['number']}-compute@developer.gserviceaccount.com"


def pubsub_agent(project: dict) -> str:
    return f"service-{project['number']}@gcp-sa-pubsub.iam.gserviceaccount.com"


def enable(state: dict, project: dict, apis: list[str], command: str) -> None:
    for api in apis:
        if api not in API_TITLES:
            raise PlatformError("api-enabled", f"ERROR: ({command}) Service {api} not found or permission denied.")
    if project.get("billing") is None and set(apis) & NEEDS_BILLING:
        raise PlatformError(
            "billing-linked",
            f"ERROR: ({command}) FAILED_PRECONDITION: Billing account for project '{project['number']}' is not found."
            f" Billing must be enabled for activation of service(s) '{','.join(sorted(set(apis) & NEEDS_BILLING))}'"
            " to proceed.",
        )
    for api in apis:
        for each in (api, *API_DEPENDENCIES.get(api, ())):
            project["apis"].setdefault(each, state["clock"])
    if "compute.googleapis.com" in project["apis"] and compute_account(project) not in project["sa"]:
        # Created with the Compute Engine API; Editor on the project unless the organisation disables it.
        project["sa"][compute_account(project)] = {"created": state["clock"], "default": True}
        if NO_DEFAULT_GRANTS not in state["org_policies"]:
            grant(project, "project", f"serviceAccount:{compute_account(project)}", "roles/editor")


def existing_account(project: dict, email: str) -> bool:
    if email == pubsub_agent(project):
        return bool(project.get("pubsub_agent"))
    return email in project["sa"]


def check_member(state: dict, project: dict, member: str, command: str) -> None:
    """The member of a binding must be something IAM knows (the platform's own messages)."""
    if member in ("allUsers", "allAuthenticatedUsers") and DRS in state["org_policies"]:
        raise PlatformError(
            "org-policy-allusers",
            f"ERROR: ({command}) FAILED_PRECONDITION: One or more users named in the policy do not belong to a"
            " permitted customer, perhaps due to an organization policy.",
        )
    kind, _, email = member.partition(":")
    if kind == "serviceAccount":
        if email.endswith(".svc.id.goog]") or ".svc.id.goog[" in email:
            pool = email.split("[", 1)[0]
            if pool not in project.get("workload_pools", []):
                raise PlatformError(
                    "workload-identity-pool",
                    f"ERROR: ({command}) INVALID_ARGUMENT: Identity Pool does not exist ({pool}). Please check that"
                    " you specified a valid resource name as returned in the `name` attribute in the configuration"
                    " API.",
                )
            return
        if not existing_account(project, email):
            rule = {compute_account(project): "compute-default-account", pubsub_agent(project): "service-agent"}.get(
                email, "account-before-binding"
            )
            raise PlatformError(
                rule,
                'ERROR: Policy modification failed. For a binding with condition, run "gcloud alpha iam policies'
                f' lint-condition" to identify issues in condition.\nERROR: ({command}) INVALID_ARGUMENT: Service'
                f" account {email} does not exist.",
            )
    elif member.startswith("principalSet://") or member.startswith("principal://"):
        pool = member.split("/workloadIdentityPools/", 1)[-1].split("/", 1)[0]
        if pool not in project["r"].get("wif_pool", {}):
            raise PlatformError(
                "account-before-binding",
                f"ERROR: ({command}) INVALID_ARGUMENT: Identity Pool does not exist ({pool}).",
            )


def grant(project: dict, resource: str, member: str, role: str) -> None:
    binding = {"resource": resource, "member": member, "role": role}
    if binding not in project["iam"]:
        project["iam"].append(binding)


def has_role(project: dict, member: str, resource: str, roles: tuple[str, ...]) -> bool:
    """True if `member` holds one of `roles` on `resource` or on the project (or is an owner/editor there)."""
    for binding in project["iam"]:
        if binding["member"] != member:
            continue
        if binding["resource"] in (resource, "project") and binding["role"] in roles:
            return True
        if binding["resource"] == "project" and binding["role"] == "roles/owner":
            return True
    return False


def exists_or_409(project: dict, kind: str, name: str, label: str, command: str) -> None:
    if name in project["r"].setdefault(kind, {}):
        raise PlatformError(
            "already-exists",
            f"ERROR: ({command}) ALREADY_EXISTS: {label} [{name}] already exists.",
            exit_code=1,
        )


def get(project: dict, kind: str, name: str, rule: str, message: str) -> dict:
    found = project["r"].get(kind, {}).get(name)
    if found is None:
        raise PlatformError(rule, message)
    return found


def secret_value(project: dict, name: str, reader: str, revision: str, index: int, command: str) -> str:
    """A Cloud Run container's secret env value, with Cloud Run's refusal when it cannot read it."""
    secret = project["r"].get("secret", {}).get(name)
    versions = [v for v in (secret or {}).get("versions", []) if v["state"] == "ENABLED"]
    readable = has_role(
        project,
        f"serviceAccount:{reader}",
        f"secret/{name}",
        ("roles/secretmanager.secretAccessor", "roles/secretmanager.admin"),
    )
    if secret is None or not versions or not readable:
        why = "Permission denied on secret" if secret is not None and versions else "Secret not found"
        raise PlatformError(
            "secret-access",
            f"ERROR: ({command}) Revision '{revision}' is not ready and cannot serve traffic."
            f" spec.template.spec.containers[0].env[{index}].value_from.secret_key_ref.name: {why}:"
            f" projects/{project['number']}/secrets/{name}/versions/latest for Revision service account {reader}."
            " The service account used must be granted the 'Secret Manager Secret Accessor' role"
            " (roles/secretmanager.secretAccessor) at the secret, project or higher level.",
        )
    return versions[-1]["data"]


def billable(project: dict) -> list[str]:
    """What still costs money in a project: what teardown must leave empty (or delete the project)."""
    if project["state"] != "ACTIVE":
        return []
    left = []
    r = project["r"]
    left += [f"Cloud SQL instance {name}" for name in r.get("sql_instance", {})]
    left += [f"GKE cluster {name}" for name in r.get("cluster", {})]
    left += [f"Cloud Run service {name}" for name in r.get("run_service", {})]
    left += [f"Cloud Run job {name}" for name in r.get("run_job", {})]
    left += [f"Cloud Scheduler job {name}" for name in r.get("scheduler_job", {})]
    left += [f"Artifact Registry repository {name}" for name in r.get("ar_repo", {})]
    left += [f"Cloud Storage bucket {name}" for name in r.get("bucket", {})]
    left += [f"Firestore database {name}" for name in r.get("firestore", {})]
    left += [f"Secret Manager secret {name}" for name in r.get("secret", {})]
    left += [f"Pub/Sub topic {name}" for name in r.get("topic", {})]
    left += [f"Pub/Sub subscription {name}" for name in r.get("subscription", {})]
    left += [f"alert policy {name}" for name in r.get("alert_policy", {})]
    return left
