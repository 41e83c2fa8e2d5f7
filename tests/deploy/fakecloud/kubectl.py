"""The fake `kubectl` against a fake GKE cluster: apply (server-side checks), scheduling, Jobs, exec.

Manifests are rendered by the real `kubectl kustomize`; what the API server and the scheduler
would do with them is modelled: namespaces before namespaced objects, PodMonitoring only with
Managed Prometheus, a Job's pod template immutable, pods placed only where requests fit the
nodes' allocatable resources (Autopilot adds nodes), images pulled as the node service account,
Workload Identity and the Cloud SQL Auth Proxy behind each pod's database connection.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import yaml

from fakecloud import app, cloud
from fakecloud.args import parse
from fakecloud.platform import PlatformError, UsageError

REAL_KUBECTL = os.environ.get("FAKECLOUD_REAL_KUBECTL", "/usr/bin/kubectl")
NAMESPACED = {
    "ServiceAccount",
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "Job",
    "CronJob",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
    "PodMonitoring",
}
# GKE Standard node sizes: allocatable CPU (millicores) and memory (MiB) after GKE's reservations
# (https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes).
ALLOCATABLE = {"e2-medium": (940, 2837), "e2-standard-2": (1930, 5944), "e2-standard-4": (3920, 13560)}
# What GKE's own pods request on a Standard cluster with Dataplane V2, Workload Identity and
# Managed Prometheus: DaemonSets on every node, and cluster-wide add-ons placed once. A model of
# typical `kubectl describe node` figures (GKE 1.30-1.33), not a documented constant.
SYSTEM_PER_NODE = (330, 420)
SYSTEM_CLUSTER = (600, 900)
BOOLEANS = {"ignore-not-found", "wait", "all", "stdin", "tty", "i", "t"}


def run(state: dict, args: list[str], stdin: str, out: list[str], err: list[str]) -> int:
    parsed = parse(
        args,
        BOOLEANS,
        short={"f": "filename", "k": "kustomize", "n": "namespace", "l": "selector", "c": "container", "o": "output"},
    )
    verb = parsed.words[0] if parsed.words else ""
    if verb == "kustomize":
        out.append(render_kustomize(parsed.words[1]))
        return 0
    if verb == "create" and parsed.words[1:3] == ["secret", "generic"] and parsed.get("dry-run") == "client":
        out.append(client_secret(args, parsed))
        return 0
    state["clock"] += 2
    cluster, project = current_cluster(state)
    handler = {
        "apply": apply,
        "delete": delete,
        "wait": wait,
        "rollout": rollout,
        "exec": exec_,
        "port-forward": port_forward,
        "get": get,
    }.get(verb)
    if handler is None:
        raise UsageError(f"kubectl {verb}")
    return handler(state, project, cluster, parsed, args, stdin, out, err)


def render_kustomize(directory: str) -> str:
    return subprocess.run([REAL_KUBECTL, "kustomize", directory], capture_output=True, text=True, check=True).stdout


def client_secret(args: list[str], parsed) -> str:
    data = {}
    for arg in args:
        if arg.startswith("--from-literal="):
            key, _, value = arg.removeprefix("--from-literal=").partition("=")
            data[key] = value
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": parsed.words[3], "namespace": parsed.get("namespace")},
        "stringData": data,
    }
    return yaml.safe_dump(secret)


def current_cluster(state: dict) -> tuple[dict, dict]:
    context = state["kube"]["current"]
    entry = state["kube"]["contexts"].get(context) if context else None
    project = state["projects"].get(entry["project"]) if entry else None
    cluster = (project or {}).get("r", {}).get("cluster", {}).get(entry["cluster"]) if entry else None
    if cluster is None or project["state"] != "ACTIVE":
        raise PlatformError(
            "cluster-before-credentials",
            "E0101 00:00:00.000000 memcache.go:265] couldn't get current server API group list: Get"
            ' "http://localhost:8080/api?timeout=32s": dial tcp 127.0.0.1:8080: connect: connection refused\n'
            "The connection to the server localhost:8080 was refused - did you specify the right host or port?",
        )
    project["id"] = entry["project"]
    cluster.setdefault("objects", {})
    return cluster, project


def key(document: dict) -> str:
    meta = document["metadata"]
    return f"{document['kind']}/{meta.get('namespace', '')}/{meta['name']}"


def documents(parsed, stdin: str) -> list[dict]:
    if parsed.has("kustomize"):
        text = render_kustomize(parsed.get("kustomize"))
    elif parsed.get("filename") == "-":
        text = stdin
    elif parsed.has("filename"):
        path = Path(parsed.get("filename"))
        text = "\n---\n".join(p.read_text() for p in sorted(path.glob("*.yaml"))) if path.is_dir() else path.read_text()
    else:
        raise UsageError("apply needs -f or -k")
    found = [d for d in yaml.safe_load_all(text) if d]
    namespace = parsed.get("namespace")
    for document in found:
        if document["kind"] in NAMESPACED and namespace and not document["metadata"].get("namespace"):
            document["metadata"]["namespace"] = namespace
        elif document["kind"] in NAMESPACED and not document["metadata"].get("namespace"):
            document["metadata"]["namespace"] = "default"
    return [d for d in found if selected(d, parsed.get("selector"))]


def selected(document: dict, selector: str | None) -> bool:
    if not selector:
        return True
    labels = document["metadata"].get("labels", {})
    for clause in re.split(r",(?![^(]*\))", selector):
        clause = clause.strip()
        notin = re.fullmatch(r"([\w./-]+)\s+notin\s+\(([^)]*)\)", clause)
        if notin:
            if labels.get(notin.group(1)) in [v.strip() for v in notin.group(2).split(",")]:
                return False
        elif "!=" in clause:
            name, value = clause.split("!=", 1)
            if labels.get(name.strip()) == value.strip():
                return False
        elif "=" in clause:
            name, value = clause.split("=", 1)
            if labels.get(name.strip()) != value.strip():
                return False
        else:
            raise UsageError(f"selector {clause}")
    return True


def apply(state, project, cluster, parsed, args, stdin, out, err) -> int:
    dry_run = parsed.get("dry-run") == "server"
    objects = dict(cluster["objects"])
    for document in documents(parsed, stdin):
        name = key(document)
        namespace = document["metadata"].get("namespace")
        if document["kind"] in NAMESPACED and f"Namespace//{namespace}" not in objects:
            raise PlatformError(
                "namespace-before-objects",
                f'Error from server (NotFound): error when creating "STDIN": namespaces "{namespace}" not found',
            )
        if document["kind"] == "PodMonitoring" and not cluster["managed_prometheus"]:
            raise PlatformError(
                "crd-before-custom-objects",
                f'error: resource mapping not found for name: "{document["metadata"]["name"]}" namespace: "{namespace}":'
                ' no matches for kind "PodMonitoring" in version "monitoring.googleapis.com/v1"\n'
                "ensure CRDs are installed first",
            )
        previous = objects.get(name)
        if document["kind"] == "Job" and previous and previous["spec"]["template"] != document["spec"]["template"]:
            raise PlatformError(
                "job-template-immutable",
                f'The Job "{document["metadata"]["name"]}" is invalid: spec.template: Invalid value:'
                " core.PodTemplateSpec{...}: field is immutable",
            )
        if document["kind"] == "Job":
            # The Job's own status survives a re-apply of the same Job.
            document["status"] = (previous or {}).get("status", {})
        verb = "created" if previous is None else ("unchanged" if previous == document else "configured")
        objects[name] = document
        kind = document["kind"].lower()
        group = {"deployment": "deployment.apps", "job": "job.batch", "cronjob": "cronjob.batch"}.get(kind, kind)
        out.append(f"{group}/{document['metadata']['name']} {verb}{' (server dry run)' if dry_run else ''}\n")
    if not dry_run:
        cluster["objects"] = objects
        schedule(state, project, cluster)
    return 0


def cpu(value) -> int:
    text = str(value)
    return int(float(text[:-1])) if text.endswith("m") else int(float(text) * 1000)


def mem(value) -> int:
    text = str(value)
    units = {"Mi": 1, "Gi": 1024, "Ki": 1 / 1024}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(int(text) / 1024 / 1024)


def pod_spec(document: dict) -> dict:
    if document["kind"] == "CronJob":
        return document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return document["spec"]["template"]["spec"]


def requests(document: dict) -> tuple[int, int]:
    spec = pod_spec(document)
    sidecars = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    total_cpu = total_mem = 0
    for container in spec.get("containers", []) + sidecars:
        wanted = container.get("resources", {}).get("requests", {})
        total_cpu += cpu(wanted.get("cpu", "0"))
        total_mem += mem(wanted.get("memory", "0"))
    return total_cpu, total_mem


def replicas(cluster: dict, document: dict) -> int:
    hpa = cluster["objects"].get(
        f"HorizontalPodAutoscaler/{document['metadata']['namespace']}/{document['metadata']['name']}"
    )
    if "replicas" in document["spec"]:
        return document["spec"]["replicas"]
    return hpa["spec"].get("minReplicas", 1) if hpa else 1


def schedule(state: dict, project: dict, cluster: dict) -> None:
    """Place every pod the objects ask for; record each pod's phase (Running, Pending, ImagePullBackOff)."""
    pods = []
    for name, document in cluster["objects"].items():
        if document["kind"] == "Deployment":
            pods += [(f"{name}#{i}", document) for i in range(replicas(cluster, document))]
        elif document["kind"] == "Job" and not document.setdefault("status", {}).get("done"):
            pods.append((f"{name}#0", document))
    if cluster["autopilot"]:
        free = None
    else:
        node_cpu, node_mem = ALLOCATABLE[cluster["machine"]]
        nodes = max(cluster["nodes"], cluster.get("max_nodes", 0))
        free = [[node_cpu - SYSTEM_PER_NODE[0], node_mem - SYSTEM_PER_NODE[1]] for _ in range(nodes)]
        place(free, SYSTEM_CLUSTER)
    phases = {}
    for pod, document in pods:
        wanted = requests(document)
        if free is not None and not place(free, wanted):
            phases[pod] = "Pending"
            continue
        phases[pod] = "Running" if pullable(project, cluster, document) else "ImagePullBackOff"
    cluster["pods"] = phases
    for name, document in cluster["objects"].items():
        if document["kind"] == "Job" and phases.get(f"{name}#0") == "Running" and not document["status"].get("done"):
            document["status"] = run_job_pod(state, project, cluster, document)


def place(free: list[list[int]], wanted: tuple[int, int]) -> bool:
    for node in free:
        if node[0] >= wanted[0] and node[1] >= wanted[1]:
            node[0] -= wanted[0]
            node[1] -= wanted[1]
            return True
    return False


def pullable(project: dict, cluster: dict, document: dict) -> bool:
    reader = f"serviceAccount:{cluster['node_account']}"
    for container in pod_spec(document).get("containers", []):
        image = container["image"]
        if "-docker.pkg.dev/" not in image:
            continue
        _, _, repository, name = image.split("/", 3)
        images = project["r"].get("ar_repo", {}).get(repository, {}).get("images", [])
        roles = ("roles/artifactregistry.reader", "roles/artifactregistry.writer", "roles/editor")
        if name not in images or not cloud.has_role(project, reader, f"ar_repo/{repository}", roles):
            return False
    return True


def pod_env(cluster: dict, document: dict, container: dict) -> dict[str, str]:
    namespace = document["metadata"]["namespace"]
    env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            found = cluster["objects"].get(f"ConfigMap/{namespace}/{source['configMapRef']['name']}")
            env.update((found or {}).get("data", {}))
        if "secretRef" in source:
            found = cluster["objects"].get(f"Secret/{namespace}/{source['secretRef']['name']}")
            env.update((found or {}).get("stringData", {}))
    env.update({e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e})
    return env


def google_identity(project: dict, cluster: dict, document: dict) -> str | None:
    """The Google service account a pod acts as through Workload Identity, if the binding exists."""
    namespace = document["metadata"]["namespace"]
    ksa = pod_spec(document).get("serviceAccountName", "default")
    annotated = (
        cluster["objects"].get(f"ServiceAccount/{namespace}/{ksa}", {}).get("metadata", {}).get("annotations", {})
    )
    email = annotated.get("iam.gke.io/gcp-service-account")
    member = f"serviceAccount:{cluster['workload_pool']}[{namespace}/{ksa}]"
    if email and cloud.has_role(project, member, f"sa/{email}", ("roles/iam.workloadIdentityUser",)):
        return email
    return None


def database_problem(project: dict, cluster: dict, document: dict, env: dict) -> str | None:
    identity = google_identity(project, cluster, document)
    if identity is None:
        return "cloud-sql-proxy: failed to get token: the pod's Kubernetes service account is not bound to a Google one (Workload Identity)"
    if not cloud.has_role(project, f"serviceAccount:{identity}", "project", ("roles/cloudsql.client",)):
        return f"cloud-sql-proxy: failed to connect: {identity} lacks roles/cloudsql.client"
    return app.connect(project, env.get("DATABASE_URL", ""), "proxy")


def run_job_pod(state: dict, project: dict, cluster: dict, document: dict) -> dict:
    container = pod_spec(document)["containers"][0]
    env = pod_env(cluster, document, container)
    failure = app.start(container["image"], env) or database_problem(project, cluster, document, env)
    if failure:
        return {"done": True, "failed": failure}
    try:
        app.run_command(
            state, project, [a for a in container.get("args", []) if a != "python"], env, "", lambda *a: False
        )
    except PlatformError as exit_:
        return {"done": True, "failed": exit_.message}
    return {"done": True, "complete": True}


def running_pod(cluster: dict, target: str, namespace: str) -> tuple[str, dict]:
    kind, _, name = target.partition("/")
    kind = {"deploy": "Deployment", "deployment": "Deployment", "svc": "Service", "service": "Service"}.get(kind, kind)
    if kind == "Service":
        service = cluster["objects"].get(f"Service/{namespace}/{name}")
        if service is None:
            raise PlatformError(
                "namespace-before-objects", f'Error from server (NotFound): services "{name}" not found'
            )
        selector = service["spec"]["selector"]
        matches = [
            k
            for k, d in cluster["objects"].items()
            if d["kind"] == "Deployment"
            and all(d["spec"]["template"]["metadata"]["labels"].get(a) == b for a, b in selector.items())
        ]
        name_key = matches[0] if matches else None
    else:
        name_key = f"Deployment/{namespace}/{name}" if f"Deployment/{namespace}/{name}" in cluster["objects"] else None
    if name_key is None:
        raise PlatformError(
            "namespace-before-objects", f'Error from server (NotFound): deployments.apps "{name}" not found'
        )
    phases = [phase for pod, phase in cluster.get("pods", {}).items() if pod.startswith(name_key + "#")]
    if "Running" not in phases:
        raise PlatformError(
            "node-capacity" if "Pending" in phases else "node-image-pull",
            f"error: unable to forward port because pod is not running. Current status={phases[0] if phases else 'Pending'}",
        )
    return name_key, cluster["objects"][name_key]


def delete(state, project, cluster, parsed, args, stdin, out, err) -> int:
    if parsed.has("kustomize") or parsed.has("filename"):
        for document in documents(parsed, stdin):
            cluster["objects"].pop(key(document), None)
        schedule(state, project, cluster)
        return 0
    kind, name = parsed.words[1], parsed.words[2]
    namespace = parsed.get("namespace", "default")
    if kind == "namespace":
        cluster["objects"] = {
            k: v for k, v in cluster["objects"].items() if k.split("/")[1] != name and k != f"Namespace//{name}"
        }
    else:
        kind = {"job": "Job", "deployment": "Deployment"}[kind]
        if cluster["objects"].pop(f"{kind}/{namespace}/{name}", None) is None and not parsed.has("ignore-not-found"):
            raise PlatformError(
                "namespace-before-objects", f'Error from server (NotFound): jobs.batch "{name}" not found'
            )
    schedule(state, project, cluster)
    out.append(f'{kind} "{name}" deleted\n')
    return 0


def timeout_of(parsed) -> float:
    return float(parsed.get("timeout", "30s").rstrip("s"))


def wait(state, project, cluster, parsed, args, stdin, out, err) -> int:
    condition = parsed.need("for").removeprefix("condition=")
    target = parsed.words[1]
    name = target.split("/", 1)[1]
    namespace = parsed.get("namespace", "default")
    job = cluster["objects"].get(f"Job/{namespace}/{name}")
    status = (job or {}).get("status", {})
    if job and (
        (condition == "complete" and status.get("complete")) or (condition == "failed" and status.get("failed"))
    ):
        out.append(f"job.batch/{name} condition met\n")
        return 0
    state["clock"] += timeout_of(parsed)
    phase = cluster.get("pods", {}).get(f"Job/{namespace}/{name}#0")
    reason = status.get("failed") or (f"pod {phase}" if phase else "no such Job")
    rule = (
        "node-capacity"
        if phase == "Pending"
        else "node-image-pull"
        if phase == "ImagePullBackOff"
        else "job-before-execute"
    )
    raise PlatformError(rule, f"error: timed out waiting for the condition on jobs/{name}\n(fakecloud: {reason})")


def rollout(state, project, cluster, parsed, args, stdin, out, err) -> int:
    target = parsed.words[2]
    name = target.split("/", 1)[1]
    namespace = parsed.get("namespace", "default")
    key_ = f"Deployment/{namespace}/{name}"
    phases = [phase for pod, phase in cluster.get("pods", {}).items() if pod.startswith(key_ + "#")]
    document = cluster["objects"].get(key_)
    if document and phases and all(p == "Running" for p in phases):
        container = pod_spec(document)["containers"][0]
        failure = app.start(container["image"], pod_env(cluster, document, container))
        if not failure:
            out.append(f'deployment "{name}" successfully rolled out\n')
            return 0
        phases = ["CrashLoopBackOff"]
    state["clock"] += timeout_of(parsed)
    ready = sum(1 for p in phases if p == "Running")
    rule = (
        "node-capacity"
        if "Pending" in phases
        else "node-image-pull"
        if "ImagePullBackOff" in phases
        else "job-before-execute"
    )
    raise PlatformError(
        rule,
        f'Waiting for deployment "{name}" rollout to finish: {ready} of {len(phases)} updated replicas are available...\n'
        f"error: timed out waiting for the condition\n(fakecloud: pods {phases})",
    )


def exec_(state, project, cluster, parsed, args, stdin, out, err) -> int:
    namespace = parsed.get("namespace", "default")
    _, document = running_pod(cluster, parsed.words[1], namespace)
    command = args[args.index("--") + 1 :]
    container = next(c for c in pod_spec(document)["containers"] if c["name"] == parsed.get("container", c["name"]))
    env = pod_env(cluster, document, container)
    problem = database_problem(project, cluster, document, env)
    if problem:
        raise PlatformError(
            "job-before-execute", f"django.db.utils.OperationalError: {problem}\ncommand terminated with exit code 1"
        )
    identity = google_identity(project, cluster, document)
    try:
        out.append(
            app.run_command(
                state,
                project,
                [a for a in command if a != "python"],
                env,
                f"serviceAccount:{identity}",
                lambda member, resource, roles: cloud.has_role(project, member, resource, roles),
            )
        )
    except PlatformError as exit_:
        raise PlatformError(exit_.rule, exit_.message + "\ncommand terminated with exit code 1") from None
    return 0


def port_forward(state, project, cluster, parsed, args, stdin, out, err) -> int:
    namespace = parsed.get("namespace", "default")
    name_key, _ = running_pod(cluster, parsed.words[1], namespace)
    local = parsed.words[2].split(":", 1)[0]
    state.setdefault("forwards", {})[local] = {"project": project["id"], "deployment": name_key}
    out.append(f"Forwarding from 127.0.0.1:{local} -> 8080\n")
    return 0


def get(state, project, cluster, parsed, args, stdin, out, err) -> int:
    out.append(json.dumps(cluster.get("pods", {}), indent=1) + "\n")
    return 0
