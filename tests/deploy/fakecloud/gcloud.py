"""The fake `gcloud`: the commands docs/deploy.md and the deploy scripts run, answered as Google Cloud would."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fakecloud import app, cloud
from fakecloud.args import Parsed, parse, value_format
from fakecloud.platform import PlatformError, UsageError

BOOLEANS = {
    "quiet",
    "wait",
    "backup",
    "enable-point-in-time-recovery",
    "deletion-protection",
    "allow-unauthenticated",
    "invoker-iam-check",
    "enable-dataplane-v2",
    "enable-managed-prometheus",
    "uniform-bucket-level-access",
    "public-access-prevention",
    "versioning",
    "recursive",
    "async",
    "suppress-logs",
    "delete-protection",
    "enable-autoscaling",
    "dry-run",
    "enabled",
    "no-user-output-enabled",
}
# Seconds each kind of operation takes on the fake clock (order of magnitude of the real ones).
DURATIONS = {"sql-create": 600, "cluster-create": 420, "build": 180, "run-deploy": 30, "job": 40, "default": 2}


def run(state: dict, args: list[str], stdin: str, out: list[str], err: list[str]) -> int:
    parsed = parse(args, BOOLEANS, short={"r": "recursive", "q": "quiet"})
    words = [w for w in parsed.words if w not in ("alpha", "beta")]
    for length in range(min(4, len(words)), 0, -1):
        handler = COMMANDS.get(tuple(words[:length]))
        if handler:
            command = "gcloud." + ".".join(words[:length])
            state["clock"] += DURATIONS["default"]
            context = Context(state, parsed, words[length:], stdin, out, err, command)
            handler(context)
            return 0
    raise UsageError("unknown command")


class Context:
    def __init__(self, state, parsed: Parsed, rest, stdin, out, err, command) -> None:
        self.state, self.parsed, self.rest, self.stdin, self.out, self.err, self.command = (
            state,
            parsed,
            rest,
            stdin,
            out,
            err,
            command,
        )

    @property
    def project_id(self) -> str | None:
        return self.parsed.get("project") or self.state["config"]["project"]

    def project(self, api: str | None = None) -> dict:
        project = cloud.project(self.state, self.project_id, self.command)
        if api:
            cloud.need_api(project, api, self.command)
        return project

    def print(self, text: str) -> None:
        self.out.append(text if text.endswith("\n") else text + "\n")

    def say(self, text: str) -> None:
        self.err.append(text if text.endswith("\n") else text + "\n")

    def arg(self, index: int = 0) -> str:
        if len(self.rest) <= index:
            raise UsageError(f"{self.command} needs a positional argument")
        return self.rest[index]

    def data_file(self) -> str:
        source = self.parsed.need("data-file")
        return self.stdin if source == "-" else Path(source).read_text()

    def formatted(self, record: dict, default: str = "") -> None:
        fmt = self.parsed.get("format")
        if fmt and fmt.startswith("value("):
            self.print(value_format(fmt[6:-1], record))
        elif fmt in ("json",):
            self.print(json.dumps(record))
        elif default:
            self.print(default)


# -- auth, config, projects, billing, services ---------------------------------------------------


def auth_login(c: Context) -> None:
    c.state["auth"]["user"] = "you@example.com"
    c.say("You are now logged in as [you@example.com].")


def adc_login(c: Context) -> None:
    c.state["auth"]["adc"] = True
    c.say("Credentials saved to file: [~/.config/gcloud/application_default_credentials.json]")


def adc_quota_project(c: Context) -> None:
    project = cloud.project(c.state, c.arg(), c.command)
    if not c.state["auth"]["adc"]:
        raise PlatformError(
            "adc-for-terraform", f"ERROR: ({c.command}) Application default credentials have not been set up."
        )
    cloud.need_api(project, "cloudresourcemanager.googleapis.com", c.command)
    c.state["auth"]["adc_quota_project"] = c.arg()
    c.say(
        f'Quota project "{c.arg()}" was added to ADC which can be used by Google client libraries for billing and quota.'
    )


def config_set(c: Context) -> None:
    if c.arg() != "project":
        raise UsageError("only `config set project` is modelled")
    c.state["config"]["project"] = c.arg(1)
    c.say(f"Updated property [core/project] to [{c.arg(1)}].")


def projects_create(c: Context) -> None:
    project_id = c.arg()
    if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", project_id):
        raise PlatformError("project-exists", f"ERROR: ({c.command}) Invalid project id [{project_id}].")
    if project_id in c.state["projects"]:
        cloud.exists_or_409({"r": {"project": {project_id: 1}}}, "project", project_id, "Project", c.command)
    number = str(c.state["next_number"])
    c.state["next_number"] += 1
    c.state["projects"][project_id] = {
        "number": number,
        "state": "ACTIVE",
        "billing": None,
        "apis": {api: c.state["clock"] for api in cloud.DEFAULT_APIS},
        "sa": {},
        "iam": [{"resource": "project", "member": f"user:{c.state['auth']['user']}", "role": "roles/owner"}],
        "r": {},
    }
    c.say(f"Create in progress for [https://cloudresourcemanager.googleapis.com/v1/projects/{project_id}].")


def projects_describe(c: Context) -> None:
    project = cloud.project(c.state, c.arg(), c.command)
    c.formatted({"projectId": c.arg(), "projectNumber": project["number"], "lifecycleState": project["state"]})


def projects_delete(c: Context) -> None:
    project = cloud.project(c.state, c.arg(), c.command)
    project["state"] = "DELETE_REQUESTED"
    c.say(f"Deleted [https://cloudresourcemanager.googleapis.com/v1/projects/{c.arg()}].")


def billing_link(c: Context) -> None:
    project = cloud.project(c.state, c.arg(), c.command)
    account = c.parsed.need("billing-account")
    if account not in c.state["billing_accounts"]:
        raise PlatformError("billing-linked", f"ERROR: ({c.command}) Billing account [{account}] not found.")
    project["billing"] = account
    c.say(f"billingAccountName: billingAccounts/{account}\nbillingEnabled: true")


def services_enable(c: Context) -> None:
    project = c.project()
    cloud.enable(c.state, project, c.rest, c.command)
    c.say(f'Operation "operations/acf.p2-{project["number"]}" finished successfully.')


def services_identity_create(c: Context) -> None:
    project = c.project()
    service = c.parsed.need("service")
    cloud.need_api(project, service, c.command)
    if service == "pubsub.googleapis.com":
        project["pubsub_agent"] = True
    c.say(f"Service identity created: {cloud.pubsub_agent(project)}")


# -- IAM -----------------------------------------------------------------------------------------


def sa_create(c: Context) -> None:
    project = c.project("iam.googleapis.com")
    email = f"{c.arg()}@{c.project_id}.iam.gserviceaccount.com"
    cloud.exists_or_409({"r": {"sa": project["sa"]}}, "sa", email, "Service account", c.command)
    project["sa"][email] = {"created": c.state["clock"]}
    c.say(f"Created service account [{c.arg()}].")


def sa_describe(c: Context) -> None:
    project = c.project("iam.googleapis.com")
    if c.arg() not in project["sa"]:
        raise PlatformError("account-before-binding", f"ERROR: ({c.command}) NOT_FOUND: Unknown service account")
    c.formatted({"email": c.arg()}, f"email: {c.arg()}")


def sa_delete(c: Context) -> None:
    project = c.project("iam.googleapis.com")
    if project["sa"].pop(c.arg(), None) is None:
        raise PlatformError("account-before-binding", f"ERROR: ({c.command}) NOT_FOUND: Unknown service account")
    project["iam"] = [b for b in project["iam"] if b["member"] != f"serviceAccount:{c.arg()}"]
    c.say(f"deleted service account [{c.arg()}]")


def binding(c: Context, resource: str) -> None:
    project = c.project()
    member, role = c.parsed.need("member"), c.parsed.need("role")
    cloud.check_member(c.state, project, member, c.command)
    cloud.grant(project, resource, member, role)
    c.say(f"Updated IAM policy for {resource}.")


def projects_binding(c: Context) -> None:
    # gcloud calls Resource Manager with its own client's quota project: no API to enable here
    # (Terraform, with ADC's quota project, does need it: fakecloud.terraform).
    binding(c, "project")


def sa_binding(c: Context) -> None:
    project = c.project("iam.googleapis.com")
    if not cloud.existing_account(project, c.arg()):
        raise PlatformError(
            "service-agent" if c.arg() == cloud.pubsub_agent(project) else "account-before-binding",
            f"ERROR: ({c.command}) NOT_FOUND: Service account projects/{c.project_id}/serviceAccounts/{c.arg()} does not exist.",
        )
    binding(c, f"sa/{c.arg()}")


def wif_pool_create(c: Context) -> None:
    project = c.project("iam.googleapis.com")
    cloud.need_api(project, "sts.googleapis.com", c.command)
    cloud.exists_or_409(project, "wif_pool", c.arg(), "Workload identity pool", c.command)
    project["r"]["wif_pool"][c.arg()] = {"created": c.state["clock"]}
    c.say(f"Created workload identity pool [{c.arg()}].")


def wif_provider_create(c: Context) -> None:
    project = c.project("iam.googleapis.com")
    pool = c.parsed.need("workload-identity-pool")
    cloud.get(project, "wif_pool", pool, "account-before-binding", f"ERROR: ({c.command}) NOT_FOUND: pool {pool}")
    issuer = c.parsed.need("issuer-uri")
    condition = c.parsed.get("attribute-condition", "")
    mapped = set(re.findall(r"(attribute\.\w+|assertion\.\w+)", condition))
    if issuer == "https://token.actions.githubusercontent.com" and not mapped:
        raise PlatformError(
            "wif-attribute-condition",
            f"ERROR: ({c.command}) INVALID_ARGUMENT: The attribute condition must reference one of the provider's claims."
            " For more information, see https://cloud.google.com/iam/docs/workload-identity-federation-with-deployment-pipelines#conditions",
        )
    key = f"{pool}/{c.arg()}"
    cloud.exists_or_409(project, "wif_provider", key, "Workload identity pool provider", c.command)
    project["r"]["wif_provider"][key] = {
        "issuer": issuer,
        "condition": condition,
        "mapping": c.parsed.get("attribute-mapping"),
    }
    c.say(f"Created workload identity pool provider [{c.arg()}].")


# -- Firestore, Cloud SQL, Secret Manager, Storage -----------------------------------------------


def firestore_create(c: Context) -> None:
    project = c.project("firestore.googleapis.com")
    name = c.parsed.get("database", "(default)")
    if name in project["r"].get("firestore", {}):
        raise PlatformError(
            "already-exists",
            f"ERROR: ({c.command}) ALREADY_EXISTS: Database already exists. Please use another database_id",
        )
    project["r"].setdefault("firestore", {})[name] = {
        "location": c.parsed.need("location"),
        "delete_protection": c.parsed.has("delete-protection"),
    }
    c.say(f"Success! Created database [{name}].")


def firestore_describe(c: Context) -> None:
    project = c.project("firestore.googleapis.com")
    name = c.parsed.get("database", "(default)")
    found = cloud.get(
        project, "firestore", name, "already-exists", f"ERROR: ({c.command}) NOT_FOUND: Database not found."
    )
    c.formatted({"name": name, "locationId": found["location"]}, f"locationId: {found['location']}")


def firestore_update(c: Context) -> None:
    project = c.project("firestore.googleapis.com")
    name = c.parsed.get("database", "(default)")
    found = cloud.get(
        project, "firestore", name, "already-exists", f"ERROR: ({c.command}) NOT_FOUND: Database not found."
    )
    if c.parsed.has("no-delete-protection"):
        found["delete_protection"] = False
    elif c.parsed.has("delete-protection"):
        found["delete_protection"] = True


def firestore_delete(c: Context) -> None:
    project = c.project("firestore.googleapis.com")
    name = c.parsed.get("database", "(default)")
    found = cloud.get(
        project, "firestore", name, "already-exists", f"ERROR: ({c.command}) NOT_FOUND: Database not found."
    )
    if found.get("delete_protection"):
        raise PlatformError(
            "firestore-delete-protection",
            f"ERROR: ({c.command}) FAILED_PRECONDITION: Delete protection is enabled for database '{name}'."
            " Disable it with `gcloud firestore databases update --no-delete-protection`.",
        )
    del project["r"]["firestore"][name]


def sql_create(c: Context) -> None:
    project = c.project("sqladmin.googleapis.com")
    name = c.arg()
    cloud.exists_or_409(project, "sql_instance", name, "Cloud SQL instance", c.command)
    deleted = c.state["deleted"].get(f"{c.project_id}/sql/{name}")
    if deleted is not None and c.state["clock"] - deleted < 7 * 86400:
        raise PlatformError(
            "already-exists",
            f"ERROR: ({c.command}) HTTPError 409: The Cloud SQL instance already exists. When you delete an instance,"
            " you can't reuse the name of the deleted instance until one week from the deletion date.",
        )
    c.state["clock"] += DURATIONS["sql-create"]
    project["r"]["sql_instance"][name] = {
        "region": c.parsed.need("region"),
        "tier": c.parsed.get("tier"),
        "availability": c.parsed.get("availability-type", "ZONAL"),
        "deletion_protection": c.parsed.has("deletion-protection"),
        "connection": f"{c.project_id}:{c.parsed.need('region')}:{name}",
    }
    c.say(f"Created [https://sqladmin.googleapis.com/sql/v1beta4/projects/{c.project_id}/instances/{name}].")


def sql_instance(c: Context, name: str) -> dict:
    project = c.project("sqladmin.googleapis.com")
    return cloud.get(
        project,
        "sql_instance",
        name,
        "already-exists",
        f"ERROR: ({c.command}) HTTPError 404: The Cloud SQL instance does not exist.",
    )


def sql_describe(c: Context) -> None:
    found = sql_instance(c, c.arg())
    c.formatted({"name": c.arg(), "connectionName": found["connection"]}, f"connectionName: {found['connection']}")


def sql_patch(c: Context) -> None:
    found = sql_instance(c, c.arg())
    if c.parsed.has("no-deletion-protection"):
        found["deletion_protection"] = False
    elif c.parsed.has("deletion-protection"):
        found["deletion_protection"] = True


def sql_delete(c: Context) -> None:
    found = sql_instance(c, c.arg())
    if found["deletion_protection"]:
        raise PlatformError(
            "sql-deletion-protection",
            f"ERROR: ({c.command}) HTTPError 400: Invalid request: The instance is protected. Please disable deletion"
            " protection and try again. To disable deletion protection, update the instance settings with"
            " deletionProtectionEnabled set to false.",
        )
    project = c.project()
    del project["r"]["sql_instance"][c.arg()]
    for kind in ("sql_database", "sql_user"):
        for key in [k for k in project["r"].get(kind, {}) if k.startswith(f"{c.arg()}/")]:
            del project["r"][kind][key]
    project.pop("app", None)
    c.state["deleted"][f"{c.project_id}/sql/{c.arg()}"] = c.state["clock"]
    c.say(f"Deleted [https://sqladmin.googleapis.com/sql/v1beta4/projects/{c.project_id}/instances/{c.arg()}].")


def sql_database_create(c: Context) -> None:
    instance = c.parsed.need("instance")
    sql_instance(c, instance)
    project = c.project()
    cloud.exists_or_409(project, "sql_database", f"{instance}/{c.arg()}", "Database", c.command)
    project["r"]["sql_database"][f"{instance}/{c.arg()}"] = {}


def sql_user_create(c: Context) -> None:
    instance = c.parsed.need("instance")
    sql_instance(c, instance)
    project = c.project()
    cloud.exists_or_409(project, "sql_user", f"{instance}/{c.arg()}", "User", c.command)
    project["r"]["sql_user"][f"{instance}/{c.arg()}"] = {"password": c.parsed.need("password")}


def secret_payload(c: Context, name: str) -> dict:
    data = c.data_file()
    if data == "":
        raise PlatformError(
            "secret-not-empty",
            f"ERROR: ({c.command}) INVALID_ARGUMENT: Secret Payload cannot be empty.",
        )
    return {"data": data, "state": "ENABLED", "created": c.state["clock"]}


def secrets_create(c: Context) -> None:
    project = c.project("secretmanager.googleapis.com")
    name = c.arg()
    if name in project["r"].get("secret", {}):
        raise PlatformError(
            "already-exists",
            f"ERROR: ({c.command}) ALREADY_EXISTS: Secret [projects/{project['number']}/secrets/{name}] already exists.",
        )
    versions = [secret_payload(c, name)] if c.parsed.has("data-file") else []
    project["r"].setdefault("secret", {})[name] = {"versions": versions}
    c.say(f"Created secret [{name}].")


def secret(c: Context, name: str) -> dict:
    project = c.project("secretmanager.googleapis.com")
    return cloud.get(
        project,
        "secret",
        name,
        "secret-access",
        f"ERROR: ({c.command}) NOT_FOUND: Secret [projects/{project['number']}/secrets/{name}] not found or has no versions.",
    )


def secrets_versions_add(c: Context) -> None:
    secret(c, c.arg())["versions"].append(secret_payload(c, c.arg()))
    c.say(f"Created version [{len(secret(c, c.arg())['versions'])}] of the secret [{c.arg()}].")


def secrets_versions_access(c: Context) -> None:
    found = secret(c, c.parsed.need("secret"))
    enabled = [v for v in found["versions"] if v["state"] == "ENABLED"]
    if not enabled:
        raise PlatformError("secret-access", f"ERROR: ({c.command}) NOT_FOUND: Secret version [latest] not found.")
    c.out.append(enabled[-1]["data"])


def secrets_describe(c: Context) -> None:
    secret(c, c.arg())
    c.formatted({"name": c.arg()}, f"name: projects/{c.project()['number']}/secrets/{c.arg()}")


def secrets_delete(c: Context) -> None:
    secret(c, c.arg())
    project = c.project()
    del project["r"]["secret"][c.arg()]
    project["iam"] = [b for b in project["iam"] if b["resource"] != f"secret/{c.arg()}"]
    c.say(f"Deleted secret [{c.arg()}].")


def secrets_binding(c: Context) -> None:
    secret(c, c.arg())
    binding(c, f"secret/{c.arg()}")


def bucket_name(url: str) -> str:
    return url.removeprefix("gs://").rstrip("/")


def buckets_create(c: Context) -> None:
    project = c.project("storage.googleapis.com")
    name = bucket_name(c.arg())
    cloud.exists_or_409(project, "bucket", name, "Bucket", c.command)
    project["r"]["bucket"][name] = {"location": c.parsed.get("location"), "versioning": False, "objects": 0}
    c.say(f"Creating gs://{name}/...")


def buckets_update(c: Context) -> None:
    project = c.project("storage.googleapis.com")
    found = cloud.get(
        project, "bucket", bucket_name(c.arg()), "backend-bucket", f"ERROR: ({c.command}) NotFound: 404 bucket"
    )
    found["versioning"] = c.parsed.has("versioning")


def storage_rm(c: Context) -> None:
    project = c.project("storage.googleapis.com")
    name = bucket_name(c.arg())
    cloud.get(
        project,
        "bucket",
        name,
        "backend-bucket",
        f"ERROR: ({c.command}) NotFound: 404 gs://{name} bucket does not exist.",
    )
    if not c.parsed.has("recursive"):
        raise UsageError("storage rm of a bucket needs -r")
    del project["r"]["bucket"][name]


# -- Artifact Registry and Cloud Build -----------------------------------------------------------


def ar_create(c: Context) -> None:
    project = c.project("artifactregistry.googleapis.com")
    cloud.exists_or_409(project, "ar_repo", c.arg(), "Repository", c.command)
    project["r"]["ar_repo"][c.arg()] = {"location": c.parsed.need("location"), "images": []}
    c.say(f"Created repository [{c.arg()}].")


def ar_repo(c: Context, name: str) -> dict:
    project = c.project("artifactregistry.googleapis.com")
    return cloud.get(
        project,
        "ar_repo",
        name,
        "repository-before-push",
        f"ERROR: ({c.command}) NOT_FOUND: Requested entity was not found.",
    )


def ar_describe(c: Context) -> None:
    ar_repo(c, c.arg())
    c.formatted({"name": c.arg()}, f"name: {c.arg()}")


def ar_delete(c: Context) -> None:
    ar_repo(c, c.arg())
    del c.project()["r"]["ar_repo"][c.arg()]


def ar_binding(c: Context) -> None:
    ar_repo(c, c.arg())
    binding(c, f"ar_repo/{c.arg()}")


def image_parts(image: str) -> tuple[str, str]:
    """(repository, NAME:TAG) of REGION-docker.pkg.dev/PROJECT/REPOSITORY/NAME:TAG."""
    match = re.fullmatch(r"[a-z0-9-]+-docker\.pkg\.dev/[^/]+/([^/]+)/(.+)", image)
    if not match:
        raise UsageError(f"image {image} is not an Artifact Registry image")
    return match.group(1), match.group(2)


def builds_submit(c: Context) -> None:
    project = c.project("cloudbuild.googleapis.com")
    tag = c.parsed.need("tag")
    account = c.parsed.get("service-account")
    if account:
        email = account.rsplit("/", 1)[-1]
        if not cloud.existing_account(project, email):
            raise PlatformError(
                "account-before-binding",
                f"ERROR: ({c.command}) INVALID_ARGUMENT: invalid build: service account {email} does not exist",
            )
        if c.parsed.get("default-buckets-behavior") != "regional-user-owned-bucket" and not c.parsed.has("gcs-log-dir"):
            raise PlatformError(
                "build-logs-with-own-account",
                f"ERROR: ({c.command}) INVALID_ARGUMENT: generic::invalid_argument: if 'build.service_account' is"
                " specified, the build must either (a) specify 'build.logs_bucket', (b) use the"
                " REGIONAL_USER_OWNED_BUCKET build.options.default_logs_bucket_behavior option, or (c) use either"
                " CLOUD_LOGGING_ONLY / NONE logging options",
            )
    else:
        email = cloud.compute_account(project)
        if not cloud.existing_account(project, email):
            raise PlatformError(
                "compute-default-account",
                f"ERROR: ({c.command}) FAILED_PRECONDITION: Service account {email} does not exist.",
            )
    repository, name = image_parts(tag)
    c.state["clock"] += DURATIONS["build"]
    repo = project["r"].get("ar_repo", {}).get(repository)
    if repo is None:
        raise PlatformError(
            "repository-before-push",
            f'ERROR: ({c.command}) build failed: step #0: push {tag}: name unknown: Repository "{repository}" not found',
        )
    if not cloud.has_role(
        project, f"serviceAccount:{email}", f"ar_repo/{repository}", ("roles/artifactregistry.writer", "roles/editor")
    ):
        raise PlatformError(
            "repository-before-push",
            f"ERROR: ({c.command}) build failed: step #0: push {tag}: denied: Permission"
            f' "artifactregistry.repositories.uploadArtifacts" denied on resource'
            f' "projects/{c.project_id}/locations/{repo["location"]}/repositories/{repository}" (or it may not exist)',
        )
    if name not in repo["images"]:
        repo["images"].append(name)
    c.say(f"DONE\nID: build-{len(repo['images'])}  IMAGES: {tag}  STATUS: SUCCESS")


# -- Pub/Sub -------------------------------------------------------------------------------------


def topics_create(c: Context) -> None:
    project = c.project("pubsub.googleapis.com")
    cloud.exists_or_409(project, "topic", c.arg(), "Topic", c.command)
    project["r"]["topic"][c.arg()] = {}
    project["pubsub_agent"] = True  # the service agent is provisioned with the first Pub/Sub resource
    c.say(f"Created topic [projects/{c.project_id}/topics/{c.arg()}].")


def topic(c: Context, name: str) -> dict:
    project = c.project("pubsub.googleapis.com")
    name = name.rsplit("/", 1)[-1]
    return cloud.get(
        project,
        "topic",
        name,
        "topic-before-subscription",
        f"ERROR: ({c.command}) NOT_FOUND: Resource not found (resource={name}).",
    )


def topics_describe(c: Context) -> None:
    topic(c, c.arg())
    c.formatted({"name": c.arg()}, f"name: projects/{c.project_id}/topics/{c.arg()}")


def topics_delete(c: Context) -> None:
    topic(c, c.arg())
    del c.project()["r"]["topic"][c.arg()]


def topics_binding(c: Context) -> None:
    topic(c, c.arg())
    binding(c, f"topic/{c.arg()}")


def subscription_settings(c: Context, project: dict) -> dict:
    settings = {}
    for flag in (
        "push-endpoint",
        "push-auth-service-account",
        "push-auth-token-audience",
        "ack-deadline",
        "dead-letter-topic",
        "max-delivery-attempts",
        "message-retention-duration",
    ):
        if c.parsed.has(flag):
            settings[flag] = c.parsed.get(flag)
    if "dead-letter-topic" in settings:
        topic(c, settings["dead-letter-topic"])
    if "push-auth-service-account" in settings and not cloud.existing_account(
        project, settings["push-auth-service-account"]
    ):
        raise PlatformError(
            "account-before-binding",
            f"ERROR: ({c.command}) INVALID_ARGUMENT: Service account {settings['push-auth-service-account']} does not exist.",
        )
    return settings


def subscriptions_create(c: Context) -> None:
    project = c.project("pubsub.googleapis.com")
    topic(c, c.parsed.need("topic"))
    cloud.exists_or_409(project, "subscription", c.arg(), "Subscription", c.command)
    project["r"]["subscription"][c.arg()] = {"topic": c.parsed.need("topic"), **subscription_settings(c, project)}
    c.say(f"Created subscription [projects/{c.project_id}/subscriptions/{c.arg()}].")


def subscription(c: Context, name: str) -> dict:
    project = c.project("pubsub.googleapis.com")
    return cloud.get(
        project,
        "subscription",
        name,
        "topic-before-subscription",
        f"ERROR: ({c.command}) NOT_FOUND: Resource not found (resource={name}).",
    )


def subscriptions_update(c: Context) -> None:
    subscription(c, c.arg()).update(subscription_settings(c, c.project()))


def subscriptions_describe(c: Context) -> None:
    subscription(c, c.arg())
    c.formatted({"name": c.arg()}, f"name: projects/{c.project_id}/subscriptions/{c.arg()}")


def subscriptions_delete(c: Context) -> None:
    subscription(c, c.arg())
    del c.project()["r"]["subscription"][c.arg()]


def subscriptions_binding(c: Context) -> None:
    subscription(c, c.arg())
    binding(c, f"subscription/{c.arg()}")


# -- Cloud Run -----------------------------------------------------------------------------------


def container_env(c: Context, project: dict, container: dict, reader: str, revision: str) -> dict[str, str]:
    env = {}
    for index, entry in enumerate(container.get("env", [])):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = cloud.secret_value(project, ref["name"], reader, revision, index, c.command)
    return env


def check_image(c: Context, project: dict, image: str, revision: str) -> None:
    repository, name = image_parts(image)
    if name not in project["r"].get("ar_repo", {}).get(repository, {}).get("images", []):
        raise PlatformError(
            "image-before-deploy",
            f"ERROR: ({c.command}) Revision '{revision}' is not ready and cannot serve traffic. Image '{image}' not found.",
        )


def check_run_account(c: Context, project: dict, email: str) -> None:
    if not cloud.existing_account(project, email):
        raise PlatformError(
            "account-before-binding",
            f"ERROR: ({c.command}) PERMISSION_DENIED: Permission 'iam.serviceaccounts.actAs' denied on service account"
            f" {email} (or it may not exist).",
        )


def check_cloudsql(c: Context, project: dict, annotations: dict, revision: str) -> None:
    for connection in filter(None, annotations.get("run.googleapis.com/cloudsql-instances", "").split(",")):
        if connection.rsplit(":", 1)[-1] not in project["r"].get("sql_instance", {}):
            raise PlatformError(
                "image-before-deploy",
                f"ERROR: ({c.command}) Revision '{revision}' is not ready and cannot serve traffic. Cloud SQL instance"
                f' "{connection}" is not reachable.',
            )


def deploy_service(c: Context, document: dict) -> None:
    project = c.project("run.googleapis.com")
    name = document["metadata"]["name"]
    template = document["spec"]["template"]
    spec, annotations = template["spec"], template.get("metadata", {}).get("annotations", {})
    service_annotations = document["metadata"].get("annotations", {})
    revision = f"{name}-{len(project['r'].get('run_service', {}).get(name, {}).get('revisions', [])) + 1:05d}-abc"
    account = spec.get("serviceAccountName") or cloud.compute_account(project)
    check_run_account(c, project, account)
    if service_annotations.get("run.googleapis.com/invoker-iam-disabled") == "true" and (
        cloud.REQUIRE_INVOKER_IAM in c.state["org_policies"]
    ):
        raise PlatformError(
            "org-policy-require-invoker-iam",
            f"ERROR: ({c.command}) FAILED_PRECONDITION: The organization policy constraint"
            " constraints/run.managed.requireInvokerIam is enforced: the invoker IAM check cannot be disabled.",
        )
    check_cloudsql(c, project, annotations, revision)
    containers = spec["containers"]
    envs = {}
    for container in containers:
        check_image(c, project, container["image"], revision)
        envs[container["image"]] = env = container_env(c, project, container, account, revision)
        failure = app.start(container["image"], env)
        if failure:
            raise PlatformError(
                "job-before-execute",
                f"ERROR: ({c.command}) Revision '{revision}' is not ready and cannot serve traffic. The user-provided"
                " container failed to start and listen on the port defined provided by the PORT=8080 environment"
                f" variable within the allocated timeout.\nLogs: {failure}",
            )
    c.state["clock"] += DURATIONS["run-deploy"]
    services = project["r"].setdefault("run_service", {})
    revisions = services.get(name, {}).get("revisions", []) + [revision]
    services[name] = {
        "document": document,
        "account": account,
        "env": envs[containers[0]["image"]],
        "image": containers[0]["image"],
        "ingress": service_annotations.get("run.googleapis.com/ingress", "all"),
        "invoker_iam_disabled": service_annotations.get("run.googleapis.com/invoker-iam-disabled") == "true",
        "annotations": annotations,
        "revisions": revisions,
    }
    url = f"https://{name}-{project['number']}.{document['metadata'].get('labels', {}).get('cloud.googleapis.com/location', c.parsed.get('region'))}.run.app"
    c.say(
        f"Service [{name}] revision [{revision}] has been deployed and is serving 100 percent of traffic.\nService URL: {url}"
    )


def load_yaml(c: Context) -> dict:
    import yaml  # only here: most calls need no YAML, and every call is a new process

    return yaml.safe_load(Path(c.arg()).read_text())


def run_services_replace(c: Context) -> None:
    document = load_yaml(c)
    if document.get("kind") != "Service":
        raise UsageError("services replace needs a Service")
    if c.parsed.has("dry-run"):
        project = c.project("run.googleapis.com")
        check_run_account(c, project, document["spec"]["template"]["spec"]["serviceAccountName"])
        c.say("Dry run: the service would be replaced.")
        return
    deploy_service(c, document)


def run_deploy(c: Context) -> None:
    """`gcloud run deploy NAME --image ...`: the same Service a YAML would describe."""
    env = [
        {"name": k, "value": v}
        for k, v in (pair.split("=", 1) for pair in filter(None, c.parsed.get("set-env-vars", "").split(",")))
    ]
    for pair in filter(None, c.parsed.get("set-secrets", "").split(",")):
        variable, reference = pair.split("=", 1)
        secret_name, _, version = reference.partition(":")
        env.append({"name": variable, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": version or "latest"}}})
    service_annotations = {"run.googleapis.com/ingress": c.parsed.get("ingress", "all")}
    if c.parsed.has("no-invoker-iam-check"):
        service_annotations["run.googleapis.com/invoker-iam-disabled"] = "true"
    template_annotations = {
        "autoscaling.knative.dev/minScale": c.parsed.get("min-instances", "0"),
        "autoscaling.knative.dev/maxScale": c.parsed.get("max-instances", "100"),
    }
    document = {
        "metadata": {
            "name": c.arg(),
            "annotations": service_annotations,
            "labels": {"cloud.googleapis.com/location": c.parsed.need("region")},
        },
        "spec": {
            "template": {
                "metadata": {"annotations": template_annotations},
                "spec": {
                    "serviceAccountName": c.parsed.get("service-account"),
                    "containers": [{"image": c.parsed.need("image"), "env": env}],
                },
            }
        },
    }
    deploy_service(c, document)
    if c.parsed.has("allow-unauthenticated"):
        project = c.project()
        try:
            cloud.check_member(c.state, project, "allUsers", c.command)
        except PlatformError:
            # gcloud run deploy only warns: the service is deployed, but not public.
            c.say(
                'WARNING: Setting IAM policy failed, try "gcloud beta run services add-iam-policy-binding --region=... --member=allUsers --role=roles/run.invoker"'
            )
        else:
            cloud.grant(project, f"run_service/{c.arg()}", "allUsers", "roles/run.invoker")


def run_service(c: Context, name: str) -> dict:
    project = c.project("run.googleapis.com")
    return cloud.get(
        project, "run_service", name, "image-before-deploy", f"ERROR: ({c.command}) Cannot find service [{name}]"
    )


def run_services_binding(c: Context) -> None:
    run_service(c, c.arg())
    binding(c, f"run_service/{c.arg()}")


def run_services_update(c: Context) -> None:
    service = run_service(c, c.arg())
    if c.parsed.has("no-invoker-iam-check"):
        if cloud.REQUIRE_INVOKER_IAM in c.state["org_policies"]:
            raise PlatformError(
                "org-policy-require-invoker-iam",
                f"ERROR: ({c.command}) FAILED_PRECONDITION: constraints/run.managed.requireInvokerIam",
            )
        service["invoker_iam_disabled"] = True


def run_services_describe(c: Context) -> None:
    service = run_service(c, c.arg())
    c.formatted({"metadata": {"name": c.arg()}, "status": {"url": service["image"]}}, f"name: {c.arg()}")


def run_services_delete(c: Context) -> None:
    run_service(c, c.arg())
    project = c.project()
    del project["r"]["run_service"][c.arg()]
    project["iam"] = [b for b in project["iam"] if b["resource"] != f"run_service/{c.arg()}"]
    c.say(f"Deleted service [{c.arg()}].")


def run_jobs_replace(c: Context) -> None:
    project = c.project("run.googleapis.com")
    document = load_yaml(c)
    name = document["metadata"]["name"]
    task = document["spec"]["template"]["spec"]["template"]["spec"]
    account = task.get("serviceAccountName") or cloud.compute_account(project)
    check_run_account(c, project, account)
    check_image(c, project, task["containers"][0]["image"], f"{name}-job")
    check_cloudsql(c, project, document["spec"]["template"].get("metadata", {}).get("annotations", {}), name)
    project["r"].setdefault("run_job", {})[name] = {"document": document, "account": account, "executions": 0}
    c.say(f"Job [{name}] has been successfully deployed.")


def run_job(c: Context, name: str) -> dict:
    project = c.project("run.googleapis.com")
    return cloud.get(
        project,
        "run_job",
        name,
        "job-before-execute",
        f"ERROR: ({c.command}) NOT_FOUND: Job [{name}] could not be found.",
    )


def execute_job(state: dict, project: dict, name: str, args: list[str] | None, command: str) -> str:
    """Run one execution of a Cloud Run job to its end (also what Cloud Scheduler's trigger does)."""
    job = project["r"]["run_job"][name]
    document = job["document"]
    task = document["spec"]["template"]["spec"]["template"]["spec"]
    container = task["containers"][0]
    execution = f"{name}-{job['executions'] + 1:05d}"
    job["executions"] += 1
    env = {}
    for index, entry in enumerate(container.get("env", [])):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        else:
            env[entry["name"]] = cloud.secret_value(
                project, entry["valueFrom"]["secretKeyRef"]["name"], job["account"], execution, index, command
            )

    def failed(line: str, rule: str = "job-before-execute") -> PlatformError:
        return PlatformError(
            rule,
            f"ERROR: ({command}) The execution failed.\nView details about this execution by running:\n"
            f"gcloud run jobs executions describe {execution}\nTask {execution}-task0 exited: {line}",
        )

    failure = app.start(container["image"], env)
    if failure:
        raise failed(failure)
    if "DATABASE_URL" in env:
        problem = app.connect(project, env["DATABASE_URL"], "socket")
        if problem:
            raise failed(f"django.db.utils.OperationalError: {problem}")
    command_args = args if args is not None else [*container.get("command", []), *container.get("args", [])]
    state["clock"] += DURATIONS["job"]
    try:
        return app.run_command(
            state,
            project,
            [a for a in command_args if a != "python"],
            env,
            f"serviceAccount:{job['account']}",
            lambda member, resource, roles: cloud.has_role(project, member, resource, roles),
        )
    except PlatformError as exit_:
        raise failed(exit_.message, exit_.rule) from None


def run_jobs_execute(c: Context) -> None:
    run_job(c, c.arg())
    args = c.parsed.get("args")
    printed = execute_job(c.state, c.project(), c.arg(), gcloud_list(args) if args else None, c.command)
    # The container's stdout goes to Cloud Logging, never to the caller.
    c.project()["r"].setdefault("log", []).append(printed)
    c.say(f"Execution [{c.arg()}] has successfully completed.")


def gcloud_list(value: str) -> list[str]:
    """A gcloud list flag: comma-separated, or `^D^` first to split on D instead (gcloud topic escaping)."""
    delimiter = ","
    if value.startswith("^") and value.index("^", 1) > 1:
        delimiter, value = value[1 : value.index("^", 1)], value[value.index("^", 1) + 1 :]
    return value.split(delimiter)


def run_jobs_binding(c: Context) -> None:
    run_job(c, c.arg())
    binding(c, f"run_job/{c.arg()}")


def run_jobs_delete(c: Context) -> None:
    run_job(c, c.arg())
    project = c.project()
    del project["r"]["run_job"][c.arg()]
    project["iam"] = [b for b in project["iam"] if b["resource"] != f"run_job/{c.arg()}"]


# -- Cloud Scheduler, Logging, Monitoring --------------------------------------------------------


def scheduler_upsert(c: Context, create: bool) -> None:
    project = c.project("cloudscheduler.googleapis.com")
    name = c.arg(1) if c.arg() == "http" else c.arg()
    jobs = project["r"].setdefault("scheduler_job", {})
    if create:
        cloud.exists_or_409(project, "scheduler_job", name, "Job", c.command)
    elif name not in jobs:
        raise PlatformError("job-before-execute", f"ERROR: ({c.command}) NOT_FOUND: Job not found.")
    for flag in ("oauth-service-account-email", "oidc-service-account-email"):
        if c.parsed.has(flag) and not cloud.existing_account(project, c.parsed.get(flag)):
            raise PlatformError(
                "account-before-binding",
                f"ERROR: ({c.command}) INVALID_ARGUMENT: Service account {c.parsed.get(flag)} does not exist.",
            )
    jobs[name] = {
        "uri": c.parsed.need("uri"),
        "schedule": c.parsed.need("schedule"),
        **{k: v for k, v in c.parsed.flags.items() if "service-account" in k or "audience" in k},
    }


def scheduler_delete(c: Context) -> None:
    project = c.project("cloudscheduler.googleapis.com")
    cloud.get(
        project, "scheduler_job", c.arg(), "job-before-execute", f"ERROR: ({c.command}) NOT_FOUND: Job not found."
    )
    del project["r"]["scheduler_job"][c.arg()]


def scheduler_describe(c: Context) -> None:
    project = c.project("cloudscheduler.googleapis.com")
    cloud.get(
        project, "scheduler_job", c.arg(), "job-before-execute", f"ERROR: ({c.command}) NOT_FOUND: Job not found."
    )


def metrics_upsert(c: Context, create: bool) -> None:
    project = c.project("logging.googleapis.com")
    metrics = project["r"].setdefault("log_metric", {})
    if create:
        cloud.exists_or_409(project, "log_metric", c.arg(), "Metric", c.command)
        metrics[c.arg()] = {"created": c.state["clock"]}
    elif c.arg() not in metrics:
        raise PlatformError("metric-before-policy", f"ERROR: ({c.command}) NOT_FOUND: Metric {c.arg()} does not exist.")


def metrics_describe(c: Context) -> None:
    project = c.project("logging.googleapis.com")
    cloud.get(
        project,
        "log_metric",
        c.arg(),
        "metric-before-policy",
        f"ERROR: ({c.command}) NOT_FOUND: Metric {c.arg()} does not exist.",
    )


def metrics_delete(c: Context) -> None:
    metrics_describe(c)
    del c.project()["r"]["log_metric"][c.arg()]


METRIC_AVAILABLE_AFTER = 600


def check_policy_metrics(state: dict, project: dict, policy: dict, command: str) -> None:
    for condition in policy.get("conditions", []):
        for name in re.findall(r"logging\.googleapis\.com/user/([A-Za-z0-9_]+)", json.dumps(condition)):
            created = project["r"].get("log_metric", {}).get(name, {}).get("created")
            if created is None or state["clock"] - created < METRIC_AVAILABLE_AFTER:
                raise PlatformError(
                    "metric-before-policy",
                    f"ERROR: ({command}) NOT_FOUND: Cannot find metric(s) that match type ="
                    f' "logging.googleapis.com/user/{name}". If a metric was created recently, it could take up to'
                    " 10 minutes to become available. Please try again soon.",
                )


def policies_create(c: Context) -> None:
    project = c.project("monitoring.googleapis.com")
    policy = json.loads(Path(c.parsed.need("policy-from-file")).read_text())
    check_policy_metrics(c.state, project, policy, c.command)
    policies = project["r"].setdefault("alert_policy", {})
    name = f"projects/{c.project_id}/alertPolicies/{len(policies) + 1}"
    policies[name] = {"displayName": policy["displayName"]}
    c.say(f"Created alert policy [{name}].")


def policies_update(c: Context) -> None:
    project = c.project("monitoring.googleapis.com")
    policy = json.loads(Path(c.parsed.need("policy-from-file")).read_text())
    check_policy_metrics(c.state, project, policy, c.command)
    cloud.get(project, "alert_policy", c.arg(), "metric-before-policy", f"ERROR: ({c.command}) NOT_FOUND: policy")


def named_list(c: Context, kind: str) -> None:
    project = c.project("monitoring.googleapis.com")
    wanted = re.search(r'displayName="(.*)"', c.parsed.get("filter", ""))
    for name, found in project["r"].get(kind, {}).items():
        if not wanted or found["displayName"] == wanted.group(1):
            c.print(name)


def policies_delete(c: Context) -> None:
    project = c.project("monitoring.googleapis.com")
    cloud.get(project, "alert_policy", c.arg(), "metric-before-policy", f"ERROR: ({c.command}) NOT_FOUND: policy")
    del project["r"]["alert_policy"][c.arg()]


def dashboards_create(c: Context) -> None:
    project = c.project("monitoring.googleapis.com")
    config = json.loads(Path(c.parsed.need("config-from-file")).read_text())
    dashboards = project["r"].setdefault("dashboard", {})
    dashboards[f"projects/{project['number']}/dashboards/{len(dashboards) + 1}"] = {
        "displayName": config["displayName"]
    }


def dashboards_update(c: Context) -> None:
    project = c.project("monitoring.googleapis.com")
    cloud.get(project, "dashboard", c.arg(), "metric-before-policy", f"ERROR: ({c.command}) NOT_FOUND: dashboard")


def dashboards_delete(c: Context) -> None:
    dashboards_update(c)
    del c.project()["r"]["dashboard"][c.arg()]


# -- GKE -----------------------------------------------------------------------------------------


def clusters_create(c: Context, autopilot: bool) -> None:
    project = c.project("container.googleapis.com")
    cloud.exists_or_409(project, "cluster", c.arg(), "Cluster", c.command)
    node_account = c.parsed.get("service-account") or cloud.compute_account(project)
    if not cloud.existing_account(project, node_account):
        raise PlatformError(
            "account-before-binding",
            f"ERROR: ({c.command}) ResponseError: code=400, message=The user does not have access to service account"
            f' "{node_account}". Ask a project owner to grant you the iam.serviceAccountUser role on the service account.',
        )
    region, zone = c.parsed.get("region"), c.parsed.get("zone")
    zones = (
        3 if region and not c.parsed.get("node-locations") else len((c.parsed.get("node-locations") or "x").split(","))
    )
    workload_pool = f"{c.project_id}.svc.id.goog" if autopilot else c.parsed.get("workload-pool")
    c.state["clock"] += DURATIONS["cluster-create"]
    project["r"]["cluster"][c.arg()] = {
        "autopilot": autopilot,
        "location": region or zone,
        "regional": bool(region),
        "nodes": 0 if autopilot else int(c.parsed.get("num-nodes", "3")) * zones,
        "max_nodes": int(c.parsed.get("max-nodes", "0")) * zones if c.parsed.has("enable-autoscaling") else 0,
        "machine": c.parsed.get("machine-type", "e2-medium"),
        "workload_pool": workload_pool,
        "node_account": node_account,
        # Managed Prometheus is on for Autopilot and, by default, for new Standard clusters (GKE >= 1.27).
        "managed_prometheus": autopilot or c.parsed.get("no-enable-managed-prometheus") is None,
        "dataplane_v2": autopilot or c.parsed.has("enable-dataplane-v2"),
    }
    if workload_pool:
        project.setdefault("workload_pools", []).append(workload_pool)
    c.say(
        f"Created [https://container.googleapis.com/v1/projects/{c.project_id}/locations/{region or zone}/clusters/{c.arg()}]."
    )


def clusters_get_credentials(c: Context) -> None:
    project = c.project("container.googleapis.com")
    cluster = cloud.get(
        project,
        "cluster",
        c.arg(),
        "cluster-before-credentials",
        f"ERROR: ({c.command}) ResponseError: code=404, message=Not found: cluster {c.arg()}.",
    )
    context = f"gke_{c.project_id}_{cluster['location']}_{c.arg()}"
    c.state["kube"]["contexts"][context] = {"project": c.project_id, "cluster": c.arg()}
    c.state["kube"]["current"] = context
    c.say(f"Fetching cluster endpoint and auth data.\nkubeconfig entry generated for {c.arg()}.")


def clusters_delete(c: Context) -> None:
    project = c.project("container.googleapis.com")
    cloud.get(
        project, "cluster", c.arg(), "cluster-before-credentials", f"ERROR: ({c.command}) Not found: cluster {c.arg()}."
    )
    del project["r"]["cluster"][c.arg()]
    project.pop("kube", None)
    c.state["clock"] += 300
    c.say(f"Deleted [https://container.googleapis.com/v1/projects/{c.project_id}/clusters/{c.arg()}].")


def clusters_list(c: Context) -> None:
    project = c.project("container.googleapis.com")
    wanted = re.search(r"name=([\w-]+)", c.parsed.get("filter", ""))
    for name, cluster in project["r"].get("cluster", {}).items():
        if not wanted or wanted.group(1) == name:
            c.formatted({"name": name, "location": cluster["location"]}, name)


def run_jobs_describe(c: Context) -> None:
    run_job(c, c.arg())
    c.formatted({"metadata": {"name": c.arg()}}, f"name: {c.arg()}")


def noop(c: Context) -> None:
    pass


COMMANDS = {
    ("auth", "login"): auth_login,
    ("auth", "application-default", "login"): adc_login,
    ("auth", "application-default", "set-quota-project"): adc_quota_project,
    ("config", "set"): config_set,
    ("components", "install"): noop,
    ("projects", "create"): projects_create,
    ("projects", "describe"): projects_describe,
    ("projects", "delete"): projects_delete,
    ("projects", "add-iam-policy-binding"): projects_binding,
    ("billing", "projects", "link"): billing_link,
    ("services", "enable"): services_enable,
    ("services", "identity", "create"): services_identity_create,
    ("iam", "service-accounts", "create"): sa_create,
    ("iam", "service-accounts", "describe"): sa_describe,
    ("iam", "service-accounts", "delete"): sa_delete,
    ("iam", "service-accounts", "add-iam-policy-binding"): sa_binding,
    ("iam", "workload-identity-pools", "create"): wif_pool_create,
    ("iam", "workload-identity-pools", "providers", "create-oidc"): wif_provider_create,
    ("firestore", "databases", "create"): firestore_create,
    ("firestore", "databases", "describe"): firestore_describe,
    ("firestore", "databases", "update"): firestore_update,
    ("firestore", "databases", "delete"): firestore_delete,
    ("sql", "instances", "create"): sql_create,
    ("sql", "instances", "describe"): sql_describe,
    ("sql", "instances", "patch"): sql_patch,
    ("sql", "instances", "delete"): sql_delete,
    ("sql", "databases", "create"): sql_database_create,
    ("sql", "users", "create"): sql_user_create,
    ("secrets", "create"): secrets_create,
    ("secrets", "describe"): secrets_describe,
    ("secrets", "delete"): secrets_delete,
    ("secrets", "add-iam-policy-binding"): secrets_binding,
    ("secrets", "versions", "add"): secrets_versions_add,
    ("secrets", "versions", "access"): secrets_versions_access,
    ("storage", "buckets", "create"): buckets_create,
    ("storage", "buckets", "update"): buckets_update,
    ("storage", "rm"): storage_rm,
    ("artifacts", "repositories", "create"): ar_create,
    ("artifacts", "repositories", "describe"): ar_describe,
    ("artifacts", "repositories", "delete"): ar_delete,
    ("artifacts", "repositories", "add-iam-policy-binding"): ar_binding,
    ("builds", "submit"): builds_submit,
    ("pubsub", "topics", "create"): topics_create,
    ("pubsub", "topics", "describe"): topics_describe,
    ("pubsub", "topics", "delete"): topics_delete,
    ("pubsub", "topics", "add-iam-policy-binding"): topics_binding,
    ("pubsub", "subscriptions", "create"): subscriptions_create,
    ("pubsub", "subscriptions", "update"): subscriptions_update,
    ("pubsub", "subscriptions", "describe"): subscriptions_describe,
    ("pubsub", "subscriptions", "delete"): subscriptions_delete,
    ("pubsub", "subscriptions", "add-iam-policy-binding"): subscriptions_binding,
    ("run", "deploy"): run_deploy,
    ("run", "services", "replace"): run_services_replace,
    ("run", "services", "describe"): run_services_describe,
    ("run", "services", "update"): run_services_update,
    ("run", "services", "delete"): run_services_delete,
    ("run", "services", "add-iam-policy-binding"): run_services_binding,
    ("run", "jobs", "replace"): run_jobs_replace,
    ("run", "jobs", "execute"): run_jobs_execute,
    ("run", "jobs", "delete"): run_jobs_delete,
    ("run", "jobs", "add-iam-policy-binding"): run_jobs_binding,
    ("scheduler", "jobs", "create"): lambda c: scheduler_upsert(c, True),
    ("scheduler", "jobs", "update"): lambda c: scheduler_upsert(c, False),
    ("scheduler", "jobs", "describe"): scheduler_describe,
    ("scheduler", "jobs", "delete"): scheduler_delete,
    ("logging", "metrics", "create"): lambda c: metrics_upsert(c, True),
    ("logging", "metrics", "update"): lambda c: metrics_upsert(c, False),
    ("logging", "metrics", "describe"): metrics_describe,
    ("logging", "metrics", "delete"): metrics_delete,
    ("monitoring", "policies", "create"): policies_create,
    ("monitoring", "policies", "update"): policies_update,
    ("monitoring", "policies", "list"): lambda c: named_list(c, "alert_policy"),
    ("monitoring", "policies", "delete"): policies_delete,
    ("monitoring", "dashboards", "create"): dashboards_create,
    ("monitoring", "dashboards", "update"): dashboards_update,
    ("monitoring", "dashboards", "list"): lambda c: named_list(c, "dashboard"),
    ("monitoring", "dashboards", "delete"): dashboards_delete,
    ("container", "clusters", "create"): lambda c: clusters_create(c, False),
    ("container", "clusters", "create-auto"): lambda c: clusters_create(c, True),
    ("container", "clusters", "get-credentials"): clusters_get_credentials,
    ("container", "clusters", "delete"): clusters_delete,
    ("container", "clusters", "list"): clusters_list,
    ("run", "jobs", "describe"): run_jobs_describe,
}
