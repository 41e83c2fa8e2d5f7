"""The fake `curl`: requests to Cloud Run URLs and `kubectl port-forward`s, answered as the platform would.

Cloud Run's front end decides first (service exists, ingress, invoker IAM); a request that reaches
the container is answered from the model of the app (fakecloud.app) and of the wiring between
the services: a payment completes only if every hop of the saga is wired (topics, push or pull
subscriptions, the identities' roles, the gateway the processor is pointed at and its key).
"""

from __future__ import annotations

import json
import re
import uuid

from fakecloud import cloud
from fakecloud.platform import UsageError

BOOLEANS = {"f", "s", "S", "fail", "silent", "show-error", "fsS", "sS", "fs"}


def run(state: dict, args: list[str], stdin: str, out: list[str], err: list[str]) -> int:
    headers, data, method, url, fail = {}, [], None, None, False
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in ("-H", "--header"):
            name, _, value = args[index + 1].partition(":")
            headers[name.strip().lower()] = value.strip()
            index += 1
        elif arg in ("-d", "--data"):
            data.append(args[index + 1])
            index += 1
        elif arg in ("-X", "--request"):
            method = args[index + 1]
            index += 1
        elif arg.startswith("-") and not arg.startswith("--") and set(arg[1:]) <= set("fsSL"):
            fail = fail or "f" in arg
        elif arg.startswith("http"):
            url = arg
        else:
            raise UsageError(f"curl option {arg}")
        index += 1
    method = method or ("POST" if data else "GET")
    status, body = answer(state, method, url, headers, "&".join(data))
    out.append(body + "\n")
    if fail and status >= 400:
        err.append(f"curl: (22) The requested URL returned error: {status}\n")
        return 22
    return 0


def answer(state: dict, method: str, url: str, headers: dict, data: str) -> tuple[int, str]:
    cloud_run = re.fullmatch(r"https://([a-z0-9-]+?)-(\d+)\.([a-z0-9-]+)\.run\.app(/.*)?", url or "")
    local = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/.*)?", url or "")
    if cloud_run:
        name, number, _, path = cloud_run.groups()
        project = next(
            (p for p in state["projects"].values() if p["number"] == number and p["state"] == "ACTIVE"), None
        )
        service = (project or {}).get("r", {}).get("run_service", {}).get(name)
        if service is None:
            return 404, "<html><title>Error 404 (Page not found)</title>Page not found</html>"
        if service["ingress"] != "all":
            return 404, "<html><title>Error 404 (Page not found)</title>Page not found</html>"
        public = (
            service["invoker_iam_disabled"]
            or {"resource": f"run_service/{name}", "member": "allUsers", "role": "roles/run.invoker"} in project["iam"]
        )
        if not public:
            return (
                403,
                "<html><title>403 Forbidden</title>Error: Forbidden Your client does not have permission to get URL from this server.</html>",
            )
        return app_answer(state, project, "cloudrun", method, path or "/", headers)
    if local:
        forward = state.get("forwards", {}).get(local.group(1))
        if forward is None:
            return 0, "curl: (7) Failed to connect to 127.0.0.1 port " + local.group(1) + ": Connection refused"
        project = state["projects"][forward["project"]]
        return app_answer(state, project, "gke", method, local.group(2) or "/", headers)
    raise UsageError(f"curl to {url}")


def app_answer(state: dict, project: dict, platform: str, method: str, path: str, headers: dict) -> tuple[int, str]:
    if path == "/healthz":
        return 200, '{"status": "ok"}'
    database = project.get("app")
    if not database or not database["migrated"]:
        return 500, '{"error": {"code": "internal", "message": "relation \\"core_apikey\\" does not exist"}}'
    key = headers.get("authorization", "").removeprefix("Bearer ").strip()
    if key not in database["api_keys"]:
        return 401, '{"error": {"code": "authentication_failed", "message": "Invalid API key."}}'
    if method == "POST" and path == "/users":
        users = database.setdefault("users", [])
        users.append(state["clock"])
        return 201, json.dumps({"id": len(users), "object": "user"})
    deposit = re.fullmatch(r"/users/(\d+)/deposits", path)
    if method == "POST" and deposit and int(deposit.group(1)) <= len(database.get("users", [])):
        return 201, json.dumps({"id": 1, "object": "deposit", "user_id": int(deposit.group(1))})
    if method == "POST" and path == "/initiate-payment":
        payment = str(uuid.uuid4())
        database["payments"][payment] = {"created": state["clock"]}
        return 202, json.dumps({"id": payment, "status": "pending"})
    found = re.fullmatch(r"/payments/([0-9a-f-]+)", path)
    if method == "GET" and found and found.group(1) in database["payments"]:
        missing = saga_gap(state, project, platform)
        status = "completed" if missing is None else "pending"
        body = {"id": found.group(1), "status": status}
        if missing:
            body["fakecloud_why_pending"] = missing
        return 200, json.dumps(body)
    return 404, '{"error": {"code": "not_found", "message": "Not found."}}'


def has(project: dict, email: str | None, resource: str, *roles: str) -> bool:
    return bool(email) and cloud.has_role(project, f"serviceAccount:{email}", resource, roles)


def saga_gap(state: dict, project: dict, platform: str) -> str | None:
    """The first hop of the saga the platform's wiring breaks; None when a payment completes."""
    r = project["r"]
    if "(default)" not in r.get("firestore", {}):
        return "no Firestore database"
    if platform == "cloudrun":
        services = r.get("run_service", {})
        initiator, processor = services.get("initiator"), services.get("processor")
        if not initiator or not processor:
            return "initiator or processor service missing"
        initiator_sa, processor_sa = initiator["account"], processor["account"]
        throttled = initiator["annotations"].get("run.googleapis.com/cpu-throttling", "true") != "false"
        if throttled and initiator["env"].get("OUTBOX_PUBLISH_IN_REQUEST") != "true":
            return "cpu-outside-requests: payment.initiated is left to a background thread that Cloud Run throttles"
        wiring = [
            ("initiator-sub", "binpay-initiation", processor, "processor"),
            ("completion-sub", "binpay-completion", initiator, "initiator"),
        ]
        for subscription, topic, target, name in wiring:
            found = r.get("subscription", {}).get(subscription)
            audience = target["env"].get("PUBSUB_PUSH_AUDIENCE")
            if not found or found.get("topic") != topic or found.get("push-endpoint") != audience:
                return f"{subscription} does not push {topic} to {audience}"
            pusher = found.get("push-auth-service-account")
            if not target["invoker_iam_disabled"] and not has(
                project, pusher, f"run_service/{name}", "roles/run.invoker"
            ):
                return f"{pusher} may not invoke {name}"
        gateway_env = processor["env"]
    else:
        cluster = next(iter(r.get("cluster", {}).values()), None)
        pods = (cluster or {}).get("pods", {})
        for deployment in ("initiator-relay", "initiator-consumer", "processor-worker"):
            if not any(
                p.startswith(f"Deployment/binpay/{deployment}#") and phase == "Running" for p, phase in pods.items()
            ):
                return f"{deployment} has no running pod"
        for subscription, topic in (("initiator-sub", "binpay-initiation"), ("completion-sub", "binpay-completion")):
            if r.get("subscription", {}).get(subscription, {}).get("topic") != topic:
                return f"pull subscription {subscription} on {topic} missing"
        from fakecloud.kubectl import google_identity, pod_env, pod_spec

        objects = cluster["objects"]
        initiator_sa = google_identity(project, cluster, objects["Deployment/binpay/initiator-relay"])
        worker = objects["Deployment/binpay/processor-worker"]
        processor_sa = google_identity(project, cluster, worker)
        gateway_env = pod_env(cluster, worker, pod_spec(worker)["containers"][0])
        if not has(project, processor_sa, "subscription/initiator-sub", "roles/pubsub.subscriber"):
            return "the processor may not pull initiator-sub"
        if not has(project, initiator_sa, "subscription/completion-sub", "roles/pubsub.subscriber"):
            return "the initiator may not pull completion-sub"
    if not has(project, initiator_sa, "topic/binpay-initiation", "roles/pubsub.publisher"):
        return "the initiator may not publish to binpay-initiation"
    if not has(project, processor_sa, "topic/binpay-completion", "roles/pubsub.publisher"):
        return "the processor may not publish to binpay-completion"
    for email in (initiator_sa, processor_sa):
        if not has(project, email, "project", "roles/datastore.user"):
            return f"{email} may not write Firestore"
    return gateway_gap(state, project, gateway_env)


def gateway_gap(state: dict, project: dict, env: dict) -> str | None:
    url, key = env.get("PAYMENT_GATEWAY_URL", ""), env.get("PAYMENT_GATEWAY_API_KEY", "")
    if url == "https://api.stripe.com":
        return None if re.fullmatch(r"sk_(test|live)_\w+", key) else "Stripe refuses the key"
    sandbox = re.fullmatch(r"https://([a-z0-9-]+?)-(\d+)\.[a-z0-9-]+\.run\.app", url)
    if not sandbox or sandbox.group(2) != project["number"]:
        return f"gateway {url} unreachable"
    service = project["r"].get("run_service", {}).get(sandbox.group(1))
    if service is None or service["ingress"] != "all":
        return f"gateway service {sandbox.group(1)} missing"
    if (
        not service["invoker_iam_disabled"]
        and {"resource": f"run_service/{sandbox.group(1)}", "member": "allUsers", "role": "roles/run.invoker"}
        not in project["iam"]
    ):
        return "the gateway answers 403 (invoker IAM): the processor's API key never reaches it"
    if service["env"].get("PAYMENT_GATEWAY_API_KEY") != key:
        return "the gateway refuses the processor's key"
    return None
