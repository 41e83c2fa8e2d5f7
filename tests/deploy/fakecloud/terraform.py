"""The fake `terraform` for terraform/: init, plan, apply, destroy, output, on the same fake project.

The configuration is read with python-hcl2 and evaluated by fakecloud.hcl. Apply creates resources
in dependency order (references and depends_on) and, among resources that do not depend on each
other, in the order least favourable to the configuration (API enablement last), so a resource
that needs an API without depending on its google_project_service fails as it can on a real first
apply. Each resource type creates what gcloud would, so names gcloud already took answer 409.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import hcl2

from fakecloud import cloud, gcloud
from fakecloud.args import parse
from fakecloud.hcl import HclError, Scope, evaluate, parse_value
from fakecloud.platform import PlatformError, UsageError

# The API a resource type's calls go to.
API_OF = {
    "google_artifact_registry_repository": "artifactregistry.googleapis.com",
    "google_artifact_registry_repository_iam_member": "artifactregistry.googleapis.com",
    "google_firestore_database": "firestore.googleapis.com",
    "google_sql_database_instance": "sqladmin.googleapis.com",
    "google_sql_database": "sqladmin.googleapis.com",
    "google_sql_user": "sqladmin.googleapis.com",
    "google_secret_manager_secret": "secretmanager.googleapis.com",
    "google_secret_manager_secret_version": "secretmanager.googleapis.com",
    "google_secret_manager_secret_iam_member": "secretmanager.googleapis.com",
    "google_service_account": "iam.googleapis.com",
    "google_service_account_iam_member": "iam.googleapis.com",
    "google_project_iam_member": "cloudresourcemanager.googleapis.com",
    "google_pubsub_topic": "pubsub.googleapis.com",
    "google_pubsub_subscription": "pubsub.googleapis.com",
    "google_pubsub_topic_iam_member": "pubsub.googleapis.com",
    "google_pubsub_subscription_iam_member": "pubsub.googleapis.com",
    "google_cloud_scheduler_job": "cloudscheduler.googleapis.com",
    "google_logging_metric": "logging.googleapis.com",
    "google_monitoring_alert_policy": "monitoring.googleapis.com",
    "google_monitoring_dashboard": "monitoring.googleapis.com",
    "google_iam_workload_identity_pool": "iam.googleapis.com",
    "google_iam_workload_identity_pool_provider": "iam.googleapis.com",
    "google_project_service": "serviceusage.googleapis.com",
}
REFERENCE = re.compile(r"\b((?:data\.)?(?:google|random|time)_[a-z0-9_]+)\.([a-z0-9_]+)")
LOCAL = re.compile(r"\blocal\.([a-z0-9_]+)")


def run(state: dict, args: list[str], stdin: str, out: list[str], err: list[str]) -> int:
    chdir = next((a.split("=", 1)[1] for a in args if a.startswith("-chdir=")), ".")
    args = [a for a in args if not a.startswith("-chdir=")]
    command, rest = args[0], args[1:]
    directory = Path(chdir).resolve()
    workspace = Workspace(state, directory, out)
    handler = {
        "init": workspace.init,
        "plan": workspace.plan,
        "apply": workspace.apply,
        "destroy": workspace.destroy,
        "output": workspace.output,
        "fmt": lambda rest: 0,
        "validate": lambda rest: 0,
    }.get(command)
    if handler is None:
        raise UsageError(f"terraform {command}")
    state["clock"] += 2
    return handler(rest)


def tf_error(rule: str, summary: str, detail: str = "") -> PlatformError:
    return PlatformError(rule, f"╷\n│ Error: {summary}\n│\n│ {detail}\n╵")


class Workspace:
    def __init__(self, state: dict, directory: Path, out: list[str]) -> None:
        self.state, self.directory, self.out = state, directory, out
        self.documents = [hcl2.load(open(path)) for path in sorted(directory.glob("*.tf"))]
        self.variables: dict = {}
        self.instances: dict[str, dict] = {}
        self.locals_cache: dict = {}

    # -- configuration -------------------------------------------------------------------------

    def blocks(self, kind: str) -> list[tuple[str, str, dict]]:
        """(type, name, body) of every resource/data block, or (name, "", body) of variables."""
        found = []
        for document in self.documents:
            for block in document.get(kind, []):
                for first, inner in block.items():
                    if kind in ("resource", "data"):
                        for name, body in inner.items():
                            found.append((first.strip('"'), name.strip('"'), body))
                    else:
                        found.append((first.strip('"'), "", inner))
        return found

    def local_bodies(self) -> dict:
        merged = {}
        for document in self.documents:
            for block in document.get("locals", []):
                merged.update({k: v for k, v in block.items() if not k.startswith("__")})
        return merged

    def load_variables(self, flags: list[str]) -> None:
        values = {}
        for name, _, body in self.blocks("variable"):
            if "default" in body:
                values[name] = evaluate(parse_value(body["default"]), Scope(self.root))
        tfvars = self.directory / "terraform.tfvars"
        if tfvars.exists():
            for name, raw in hcl2.load(open(tfvars)).items():
                if not name.startswith("__"):
                    values[name] = evaluate(parse_value(raw), Scope(self.root))
        for flag in flags:
            name, _, raw = flag.partition("=")
            values[name] = {"true": True, "false": False}.get(raw, raw)
        missing = [name for name, _, _ in self.blocks("variable") if name not in values]
        if missing:
            raise tf_error("adc-for-terraform", f"No value for required variable {missing[0]}")
        self.variables = values

    def root(self, name: str):
        if name == "var":
            return self.variables
        if name == "local":
            return LocalProxy(self)
        if name == "path":
            return {"module": str(self.directory)}
        if name == "data":
            return DataProxy(self)
        if name.startswith(("google_", "random_", "time_")):
            return ResourceProxy(self, name)
        raise HclError(f"unknown name {name}")

    def project(self) -> dict:
        return cloud.project(self.state, self.variables.get("project_id"), "terraform")

    # -- commands ------------------------------------------------------------------------------

    def backend(self) -> dict:
        marker = self.directory / ".terraform" / "fakecloud-backend.json"
        if not marker.exists():
            raise tf_error("backend-bucket", 'Backend initialization required, please run "terraform init"')
        return json.loads(marker.read_text())

    def require_adc(self) -> None:
        if not self.state["auth"]["adc"]:
            raise tf_error(
                "adc-for-terraform",
                "Failed to get existing workspaces: querying Cloud Storage failed: dialing: google: could not find"
                " default credentials.",
                "See https://cloud.google.com/docs/authentication/external/set-up-adc for more information",
            )

    def init(self, rest: list[str]) -> int:
        parsed = parse(double_dashed(rest), {"reconfigure", "upgrade", "input"})
        self.require_adc()
        bucket = dict(item.split("=", 1) for item in [parsed.get("backend-config", "")] if item).get("bucket")
        found = None
        for project in self.state["projects"].values():
            if project["state"] == "ACTIVE" and bucket in project["r"].get("bucket", {}):
                found = project
        if bucket is None or found is None:
            raise tf_error(
                "backend-bucket",
                "Failed to get existing workspaces: querying Cloud Storage failed: storage: bucket doesn't exist",
            )
        (self.directory / ".terraform").mkdir(exist_ok=True)
        (self.directory / ".terraform" / "fakecloud-backend.json").write_text(json.dumps({"bucket": bucket}))
        self.out.append("Terraform has been successfully initialized!\n")
        return 0

    def tfstate(self) -> dict:
        return self.state.setdefault("tfstate", {}).setdefault(self.backend()["bucket"], {"resources": {}})

    def plan(self, rest: list[str]) -> int:
        parsed = parse(double_dashed(rest), {"destroy", "input", "auto-approve"})
        self.require_adc()
        self.backend()
        self.load_variables(var_flags(rest))
        self.read_data_sources()
        plan_file = parsed.get("out")
        if plan_file:
            (self.directory / plan_file).write_text(json.dumps({"variables": self.variables}))
        self.out.append(f"Plan: {len(self.addresses())} to add, 0 to change, 0 to destroy.\n")
        return 0

    def read_data_sources(self) -> None:
        project_id = self.variables["project_id"]
        quota = self.state["auth"]["adc_quota_project"] or project_id
        for kind, name, body in self.blocks("data"):
            address = f"data.{kind}.{name}"
            if kind == "google_project":
                project = self.project()
                quota_project = self.state["projects"].get(quota, project)
                if "cloudresourcemanager.googleapis.com" not in quota_project["apis"]:
                    raise tf_error(
                        "terraform-project-apis",
                        f'Error when reading or editing Project "{project_id}": googleapi: Error 403: Cloud Resource'
                        f" Manager API has not been used in project {quota_project['number']} before or it is disabled.",
                        "Enable it, then retry. reason: SERVICE_DISABLED",
                    )
                self.instances[address] = {"number": project["number"], "project_id": project_id}
            elif kind == "google_secret_manager_secret":
                project = self.project()
                secret_id = self.value(body["secret_id"])
                if "secretmanager.googleapis.com" not in project["apis"] or secret_id not in project["r"].get(
                    "secret", {}
                ):
                    raise tf_error(
                        "secret-access",
                        f'Error reading SecretManagerSecret "projects/{project_id}/secrets/{secret_id}": googleapi:'
                        " Error 404 (or 403: Secret Manager API disabled)",
                    )
                self.instances[address] = {"secret_id": secret_id, "id": f"projects/{project_id}/secrets/{secret_id}"}
            else:
                raise UsageError(f"data source {kind}")

    def value(self, raw, **names):
        return evaluate(parse_value(raw), Scope(self.root, names))

    def addresses(self) -> list[tuple[str, str, dict]]:
        return [(kind, name, body) for kind, name, body in self.blocks("resource")]

    def dependencies(self) -> dict[str, set[str]]:
        locals_ = self.local_bodies()
        graph = {}
        for kind, name, body in self.addresses():
            text = json.dumps(body)
            seen_locals, pending = set(), LOCAL.findall(text)
            while pending:
                local = pending.pop()
                if local not in seen_locals and local in locals_:
                    seen_locals.add(local)
                    local_text = json.dumps(locals_[local])
                    text += local_text
                    pending += LOCAL.findall(local_text)
            graph[f"{kind}.{name}"] = {
                f"{k}.{n}"
                for k, n in REFERENCE.findall(text)
                if not k.startswith("data.") and f"{k}.{n}" != f"{kind}.{name}"
            }
        return graph

    def order(self, graph: dict[str, set[str]]) -> list[str]:
        done, order = set(), []
        while len(order) < len(graph):
            ready = [a for a in graph if a not in done and graph[a] <= done]
            if not ready:
                raise tf_error("terraform-depends-on-api", "Cycle in the configuration")
            # Least favourable order for independent resources: API enablement last.
            ready.sort(key=lambda a: (a.startswith("google_project_service."), a))
            done.add(ready[0])
            order.append(ready[0])
        return order

    def apply(self, rest: list[str]) -> int:
        self.require_adc()
        self.backend()
        values = {rest[i + 1] for i, a in enumerate(rest[:-1]) if a == "-var"}
        plan = next((a for a in rest if not a.startswith("-") and a not in values), None)
        if plan:
            self.variables = json.loads((self.directory / plan).read_text())["variables"]
        else:
            self.load_variables(var_flags(rest))
        self.read_data_sources()
        tfstate = self.tfstate()
        self.instances.update({a: i["attributes"] for a, i in tfstate["resources"].items()})
        graph = self.dependencies()
        bodies = {f"{k}.{n}": (k, n, b) for k, n, b in self.addresses()}
        added = changed = 0
        for address in self.order(graph):
            kind, name, body = bodies[address]
            for key, each in self.expand(body):
                instance_address = address if key is None else f"{address}[{json.dumps(key)}]"
                names = {"each": each} if each is not None else {}
                attributes = self.evaluate_body(body, names)
                if instance_address in tfstate["resources"]:
                    if self.update(kind, tfstate["resources"][instance_address], attributes):
                        changed += 1
                    continue
                try:
                    computed = self.create(kind, attributes, graph[address], bodies)
                except PlatformError as refusal:
                    self.out.append(f"Apply failed after {added} added.\n")
                    raise refusal
                tfstate["resources"][instance_address] = {"type": kind, "attributes": {**attributes, **computed}}
                self.instances[instance_address] = {**attributes, **computed}
                added += 1
        self.out.append(f"Apply complete! Resources: {added} added, {changed} changed, 0 destroyed.\n")
        return 0

    def expand(self, body: dict) -> list[tuple[object, dict | None]]:
        if "for_each" in body:
            items = self.value(body["for_each"])
            pairs = items.items() if isinstance(items, dict) else ((item, item) for item in items)
            return [(k, {"key": k, "value": v}) for k, v in pairs]
        if "count" in body:
            return [(index, {"index": index}) for index in range(int(self.value(body["count"])))]
        return [(None, None)]

    def evaluate_body(self, body: dict, names: dict) -> dict:
        result = {}
        for key, raw in body.items():
            if key.startswith("__") or key in ("for_each", "count", "depends_on", "lifecycle", "provider"):
                continue
            if key == "dynamic":
                for dynamic in raw:
                    for block_name, spec in dynamic.items():
                        block_name = block_name.strip('"')
                        items = self.value(spec["for_each"], **names)
                        result[block_name] = [
                            self.evaluate_body(spec["content"][0], {**names, block_name: {"value": item}})
                            for item in items
                        ]
            elif isinstance(raw, list) and raw and isinstance(raw[0], dict) and raw[0].get("__is_block__"):
                result[key] = [self.evaluate_body(block, names) for block in raw]
            else:
                result[key] = self.value(raw, **names)
        return result

    def create(self, kind: str, a: dict, depends: set[str], bodies: dict) -> dict:
        project = self.project()
        api = API_OF.get(kind)
        if api and api not in project["apis"]:
            enabling = {address for address, (k, _, _) in bodies.items() if k == "google_project_service"}
            rule = (
                "terraform-depends-on-api"
                if enabling and not transitive(depends, graph_of(bodies, self)) & enabling
                else "api-enabled"
            )
            raise tf_error(
                rule,
                f"Error creating {kind}: googleapi: Error 403: {cloud.API_TITLES.get(api, api)} has not been used in project"
                f" {project['number']} before or it is disabled.",
                "reason: SERVICE_DISABLED (no depends_on on the google_project_service that enables it)",
            )
        return CREATORS.get(kind, unknown_type)(self, project, kind, a)

    def update(self, kind: str, stored: dict, attributes: dict) -> bool:
        previous = stored["attributes"]
        if kind == "google_sql_database_instance" and previous.get("deletion_protection") != attributes.get(
            "deletion_protection"
        ):
            previous["deletion_protection"] = attributes.get("deletion_protection")
            return True
        if kind == "google_firestore_database" and (
            previous.get("deletion_policy"),
            previous.get("delete_protection_state"),
        ) != (
            attributes.get("deletion_policy"),
            attributes.get("delete_protection_state"),
        ):
            previous.update({k: attributes.get(k) for k in ("deletion_policy", "delete_protection_state")})
            project = self.project()
            project["r"]["firestore"][attributes["name"]]["delete_protection"] = (
                attributes.get("delete_protection_state") == "DELETE_PROTECTION_ENABLED"
            )
            return True
        return False

    def destroy(self, rest: list[str]) -> int:
        self.require_adc()
        self.backend()
        self.load_variables(var_flags(rest))
        tfstate = self.tfstate()
        project = self.project()
        graph = self.dependencies()
        destroyed = 0
        for address in reversed(self.order(graph)):
            for instance_address in [
                a for a in list(tfstate["resources"]) if a == address or a.startswith(address + "[")
            ]:
                stored = tfstate["resources"][instance_address]
                DESTROYERS.get(stored["type"], lambda *_: None)(self, project, stored["attributes"])
                del tfstate["resources"][instance_address]
                destroyed += 1
        self.out.append(f"Destroy complete! Resources: {destroyed} destroyed.\n")
        return 0

    def output(self, rest: list[str]) -> int:
        self.backend()
        self.load_variables([])
        self.read_data_sources()
        self.instances.update({a: i["attributes"] for a, i in self.tfstate()["resources"].items()})
        name = [a for a in rest if not a.startswith("-")][0]
        for document in self.documents:
            for block in document.get("output", []):
                for output_name, body in block.items():
                    if output_name.strip('"') == name:
                        self.out.append(str(self.value(body["value"])) + ("" if "-raw" in rest else "\n"))
                        return 0
        raise tf_error("backend-bucket", f'Output "{name}" not found')


def graph_of(bodies: dict, workspace: Workspace) -> dict[str, set[str]]:
    return workspace.dependencies()


def transitive(start: set[str], graph: dict[str, set[str]]) -> set[str]:
    seen, pending = set(), list(start)
    while pending:
        address = pending.pop()
        if address not in seen:
            seen.add(address)
            pending += graph.get(address, ())
    return seen


def double_dashed(rest: list[str]) -> list[str]:
    """Terraform's flags are -name=value: the shared parser reads --name=value."""
    return [("-" + arg) if arg.startswith("-") and not arg.startswith("--") else arg for arg in rest]


def var_flags(rest: list[str]) -> list[str]:
    flags = []
    for index, arg in enumerate(rest):
        if arg == "-var":
            flags.append(rest[index + 1])
        elif arg.startswith("-var="):
            flags.append(arg[5:])
    return flags


class LocalProxy(dict):
    def __init__(self, workspace: Workspace) -> None:
        super().__init__()
        self.workspace = workspace

    def __contains__(self, name) -> bool:
        return name in self.workspace.local_bodies()

    def __getitem__(self, name):
        cache = self.workspace.locals_cache
        if name not in cache:
            bodies = self.workspace.local_bodies()
            if name not in bodies:
                raise HclError(f"no local {name}")
            cache[name] = self.workspace.value(bodies[name])
        return cache[name]


class ResourceProxy(dict):
    """`google_x` in an expression: its named resources, each an object, a map (for_each) or a list (count)."""

    def __init__(self, workspace: Workspace, kind: str) -> None:
        super().__init__()
        self.workspace, self.kind = workspace, kind

    def __contains__(self, name) -> bool:
        return True

    def __getitem__(self, name):
        prefix = f"{self.kind}.{name}"
        instances = self.workspace.instances
        if prefix in instances:
            return instances[prefix]
        keyed = {json.loads(a[len(prefix) + 1 : -1]): v for a, v in instances.items() if a.startswith(prefix + "[")}
        if not keyed:
            raise HclError(f"{prefix} has not been created")
        if all(isinstance(k, int) for k in keyed):
            return [keyed[i] for i in sorted(keyed)]
        return keyed


class DataProxy(dict):
    def __init__(self, workspace: Workspace) -> None:
        super().__init__()
        self.workspace = workspace

    def __contains__(self, name) -> bool:
        return True

    def __getitem__(self, kind):
        workspace = self.workspace

        class Named(dict):
            def __contains__(self, name) -> bool:
                return True

            def __getitem__(self, name):
                address = f"data.{kind}.{name}"
                if address not in workspace.instances:
                    raise HclError(f"{address} not read")
                return workspace.instances[address]

        return Named()


# -- what each resource type does to the project -------------------------------------------------


def unknown_type(workspace, project, kind, a):
    raise UsageError(f"resource type {kind} not modelled")


def one_block(a: dict, name: str) -> dict:
    blocks = a.get(name) or [{}]
    return blocks[0]


def create_or_409(project, kind, name, label, record):
    if name in project["r"].setdefault(kind, {}):
        raise tf_error(
            "already-exists", f"Error creating {label}: googleapi: Error 409: {label} [{name}] already exists."
        )
    project["r"][kind][name] = record


def check_member(workspace, project, member):
    try:
        cloud.check_member(workspace.state, project, member, "terraform")
    except PlatformError as refusal:
        raise tf_error(refusal.rule, "Error applying IAM policy", refusal.message.splitlines()[-1]) from None


def sa_email(project_id: str, value: str) -> str:
    return value.rsplit("/", 1)[-1]


def c_project_service(workspace, project, kind, a):
    try:
        cloud.enable(workspace.state, project, [a["service"]], "terraform")
    except PlatformError as refusal:
        raise tf_error(refusal.rule, "Error enabling service", refusal.message) from None
    return {"id": f"{project['id']}/{a['service']}"}


def c_repository(workspace, project, kind, a):
    create_or_409(project, "ar_repo", a["repository_id"], "Repository", {"location": a["location"], "images": []})
    return {
        "name": a["repository_id"],
        "id": f"projects/{project['id']}/locations/{a['location']}/repositories/{a['repository_id']}",
    }


def c_firestore(workspace, project, kind, a):
    if a["name"] in project["r"].get("firestore", {}):
        raise tf_error(
            "already-exists",
            "Error creating Database: googleapi: Error 409: Database already exists. Please use another database_id",
        )
    project["r"].setdefault("firestore", {})[a["name"]] = {
        "location": a["location_id"],
        "delete_protection": a.get("delete_protection_state") == "DELETE_PROTECTION_ENABLED",
    }
    return {}


def c_sql_instance(workspace, project, kind, a):
    workspace.state["clock"] += gcloud.DURATIONS["sql-create"]
    settings = one_block(a, "settings")
    create_or_409(
        project,
        "sql_instance",
        a["name"],
        "Cloud SQL instance",
        {
            "region": a["region"],
            "tier": settings.get("tier"),
            "availability": settings.get("availability_type", "ZONAL"),
            "deletion_protection": bool(settings.get("deletion_protection_enabled")),
            "connection": f"{project['id']}:{a['region']}:{a['name']}",
        },
    )
    return {"connection_name": f"{project['id']}:{a['region']}:{a['name']}"}


def c_sql_database(workspace, project, kind, a):
    create_or_409(project, "sql_database", f"{a['instance']}/{a['name']}", "Database", {})
    return {}


def c_sql_user(workspace, project, kind, a):
    create_or_409(project, "sql_user", f"{a['instance']}/{a['name']}", "User", {"password": a["password"]})
    return {}


def c_random_password(workspace, project, kind, a):
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return {"result": "".join(secrets.choice(alphabet) for _ in range(int(a["length"])))}


def c_secret(workspace, project, kind, a):
    if a["secret_id"] in project["r"].get("secret", {}):
        raise tf_error(
            "already-exists",
            f"Error creating Secret: googleapi: Error 409: Secret [projects/{project['number']}/secrets/{a['secret_id']}] already exists.",
        )
    project["r"].setdefault("secret", {})[a["secret_id"]] = {"versions": []}
    return {
        "id": f"projects/{project['id']}/secrets/{a['secret_id']}",
        "name": f"projects/{project['number']}/secrets/{a['secret_id']}",
    }


def secret_name(value: str) -> str:
    return value.rsplit("/", 1)[-1]


def c_secret_version(workspace, project, kind, a):
    secret = project["r"]["secret"][secret_name(a["secret"])]
    if a["secret_data"] == "":
        raise tf_error(
            "secret-not-empty", "Error creating SecretVersion: googleapi: Error 400: Secret Payload cannot be empty."
        )
    secret["versions"].append({"data": a["secret_data"], "state": "ENABLED", "created": workspace.state["clock"]})
    return {}


def c_service_account(workspace, project, kind, a):
    email = f"{a['account_id']}@{project['id']}.iam.gserviceaccount.com"
    if email in project["sa"]:
        raise tf_error(
            "already-exists",
            f"Error creating service account: googleapi: Error 409: Service account {a['account_id']} already exists within project projects/{project['id']}.",
        )
    project["sa"][email] = {"created": workspace.state["clock"]}
    return {
        "email": email,
        "member": f"serviceAccount:{email}",
        "name": f"projects/{project['id']}/serviceAccounts/{email}",
        "id": f"projects/{project['id']}/serviceAccounts/{email}",
    }


def iam_member(resource_of):
    def create(workspace, project, kind, a):
        check_member(workspace, project, a["member"])
        cloud.grant(project, resource_of(project, a), a["member"], a["role"])
        return {}

    return create


def c_topic(workspace, project, kind, a):
    create_or_409(project, "topic", a["name"], "Topic", {})
    project["pubsub_agent"] = True
    return {"id": f"projects/{project['id']}/topics/{a['name']}"}


def c_subscription(workspace, project, kind, a):
    push = one_block(a, "push_config")
    record = {"topic": a["topic"].rsplit("/", 1)[-1], "ack-deadline": a.get("ack_deadline_seconds")}
    if push:
        oidc = one_block(push, "oidc_token")
        record.update(
            {
                "push-endpoint": push["push_endpoint"],
                "push-auth-service-account": oidc.get("service_account_email"),
                "push-auth-token-audience": oidc.get("audience"),
            }
        )
    dead_letter = one_block(a, "dead_letter_policy")
    if dead_letter:
        record["dead-letter-topic"] = dead_letter["dead_letter_topic"].rsplit("/", 1)[-1]
    create_or_409(project, "subscription", a["name"], "Subscription", record)
    return {"id": f"projects/{project['id']}/subscriptions/{a['name']}"}


def c_scheduler(workspace, project, kind, a):
    target = one_block(a, "http_target")
    for token in ("oauth_token", "oidc_token"):
        email = one_block(target, token).get("service_account_email")
        if email and not cloud.existing_account(project, email):
            raise tf_error(
                "account-before-binding",
                f"Error creating Job: googleapi: Error 400: Service account {email} does not exist.",
            )
    create_or_409(project, "scheduler_job", a["name"], "Job", {"uri": target.get("uri"), "schedule": a["schedule"]})
    return {}


def c_log_metric(workspace, project, kind, a):
    create_or_409(project, "log_metric", a["name"], "Metric", {"created": workspace.state["clock"]})
    return {}


def c_alert_policy(workspace, project, kind, a):
    conditions = [{"filter": one_block(c, "condition_threshold").get("filter", "")} for c in a.get("conditions", [])]
    try:
        gcloud.check_policy_metrics(workspace.state, project, {"conditions": conditions}, "terraform")
    except PlatformError as refusal:
        raise tf_error(
            refusal.rule, "Error creating AlertPolicy: googleapi: Error 404", refusal.message.split(") ", 1)[-1]
        ) from None
    policies = project["r"].setdefault("alert_policy", {})
    name = f"projects/{project['id']}/alertPolicies/{len(policies) + 1}"
    policies[name] = {"displayName": a["display_name"]}
    return {"name": name}


def c_dashboard(workspace, project, kind, a):
    dashboards = project["r"].setdefault("dashboard", {})
    name = f"projects/{project['number']}/dashboards/{len(dashboards) + 1}"
    dashboards[name] = {"displayName": json.loads(a["dashboard_json"])["displayName"]}
    return {"id": name}


def c_time_sleep(workspace, project, kind, a):
    workspace.state["clock"] += float(str(a.get("create_duration", "0s")).rstrip("s"))
    return {}


def c_wif_pool(workspace, project, kind, a):
    create_or_409(project, "wif_pool", a["workload_identity_pool_id"], "Workload identity pool", {})
    return {
        "name": f"projects/{project['number']}/locations/global/workloadIdentityPools/{a['workload_identity_pool_id']}",
        "workload_identity_pool_id": a["workload_identity_pool_id"],
    }


def c_wif_provider(workspace, project, kind, a):
    issuer = one_block(a, "oidc").get("issuer_uri")
    if issuer == "https://token.actions.githubusercontent.com" and not a.get("attribute_condition"):
        raise tf_error(
            "wif-attribute-condition",
            "Error creating WorkloadIdentityPoolProvider: googleapi: Error 400: The attribute condition must reference one of the provider's claims.",
        )
    key = f"{a['workload_identity_pool_id']}/{a['workload_identity_pool_provider_id']}"
    create_or_409(
        project,
        "wif_provider",
        key,
        "Workload identity pool provider",
        {"condition": a.get("attribute_condition"), "issuer": issuer},
    )
    return {
        "name": f"projects/{project['number']}/locations/global/workloadIdentityPools/{key.replace('/', '/providers/')}"
    }


CREATORS = {
    "google_project_service": c_project_service,
    "google_artifact_registry_repository": c_repository,
    "google_firestore_database": c_firestore,
    "google_sql_database_instance": c_sql_instance,
    "google_sql_database": c_sql_database,
    "google_sql_user": c_sql_user,
    "random_password": c_random_password,
    "google_secret_manager_secret": c_secret,
    "google_secret_manager_secret_version": c_secret_version,
    "google_service_account": c_service_account,
    "google_project_iam_member": iam_member(lambda p, a: "project"),
    "google_service_account_iam_member": iam_member(lambda p, a: f"sa/{sa_email(p['id'], a['service_account_id'])}"),
    "google_pubsub_topic_iam_member": iam_member(lambda p, a: f"topic/{a['topic'].rsplit('/', 1)[-1]}"),
    "google_pubsub_subscription_iam_member": iam_member(
        lambda p, a: f"subscription/{a['subscription'].rsplit('/', 1)[-1]}"
    ),
    "google_secret_manager_secret_iam_member": iam_member(lambda p, a: f"secret/{secret_name(a['secret_id'])}"),
    "google_artifact_registry_repository_iam_member": iam_member(
        lambda p, a: f"ar_repo/{a['repository'].rsplit('/', 1)[-1]}"
    ),
    "google_pubsub_topic": c_topic,
    "google_pubsub_subscription": c_subscription,
    "google_cloud_scheduler_job": c_scheduler,
    "google_logging_metric": c_log_metric,
    "google_monitoring_alert_policy": c_alert_policy,
    "google_monitoring_dashboard": c_dashboard,
    "time_sleep": c_time_sleep,
    "google_iam_workload_identity_pool": c_wif_pool,
    "google_iam_workload_identity_pool_provider": c_wif_provider,
}


def d_sql_instance(workspace, project, a):
    if a.get("deletion_protection", True):
        raise tf_error(
            "sql-deletion-protection",
            "Error, failed to delete instance because deletion_protection is set to true. Set it to false to proceed with instance deletion",
        )
    if project["r"].get("sql_instance", {}).get(a["name"], {}).get("deletion_protection"):
        raise tf_error(
            "sql-deletion-protection", "Error deleting instance: googleapi: Error 400: The instance is protected."
        )
    project["r"].get("sql_instance", {}).pop(a["name"], None)
    workspace.state["deleted"][f"{project['id']}/sql/{a['name']}"] = workspace.state["clock"]
    project.pop("app", None)


def d_firestore(workspace, project, a):
    if a.get("deletion_policy", "ABANDON") == "ABANDON":
        return  # Terraform forgets it; the database (and its bill) stays
    if project["r"].get("firestore", {}).get(a["name"], {}).get("delete_protection"):
        raise tf_error(
            "firestore-delete-protection",
            "Error deleting Database: googleapi: Error 400: Delete protection is enabled.",
        )
    project["r"].get("firestore", {}).pop(a["name"], None)


def dropper(kind: str, key):
    def destroy(workspace, project, a):
        project["r"].get(kind, {}).pop(key(a), None)

    return destroy


def d_iam(workspace, project, a):
    project["iam"] = [b for b in project["iam"] if not (b["member"] == a["member"] and b["role"] == a["role"])]


DESTROYERS = {
    "google_sql_database_instance": d_sql_instance,
    "google_firestore_database": d_firestore,
    "google_artifact_registry_repository": dropper("ar_repo", lambda a: a["repository_id"]),
    "google_secret_manager_secret": dropper("secret", lambda a: a["secret_id"]),
    "google_pubsub_topic": dropper("topic", lambda a: a["name"]),
    "google_pubsub_subscription": dropper("subscription", lambda a: a["name"]),
    "google_cloud_scheduler_job": dropper("scheduler_job", lambda a: a["name"]),
    "google_logging_metric": dropper("log_metric", lambda a: a["name"]),
    "google_monitoring_alert_policy": dropper("alert_policy", lambda a: a["name"]),
    "google_monitoring_dashboard": dropper("dashboard", lambda a: a["id"]),
    "google_iam_workload_identity_pool": dropper("wif_pool", lambda a: a["workload_identity_pool_id"]),
    "google_service_account": lambda w, p, a: p["sa"].pop(a["email"], None),
    "google_project_iam_member": d_iam,
    "google_service_account_iam_member": d_iam,
    "google_pubsub_topic_iam_member": d_iam,
    "google_pubsub_subscription_iam_member": d_iam,
    "google_secret_manager_secret_iam_member": d_iam,
    "google_artifact_registry_repository_iam_member": d_iam,
}
