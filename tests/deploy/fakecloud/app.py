"""What BinPay's own images do when the platform starts them: the part of the walk that is not Google's.

Only what docs/deploy.md states about the images, so the walk can tell a container that starts from
one that exits: the settings each refuses to start without in production, that the migration job
creates the schema, that `create_api_key --secret-id` writes a key as a secret version (and
`seed_demo` refuses production), and how a payment moves once the platform wires the services
together. The saga itself is tested for real by tests/e2e; here it is a model of the wiring only.
"""

from __future__ import annotations

import re
import secrets
import urllib.parse

from fakecloud.platform import PlatformError

# docs/deploy.md, "The images": BINPAY_ENV=production refuses to start without these.
REQUIRED_SETTINGS = {
    "initiator": ("DJANGO_SECRET_KEY", "DATABASE_URL", "PAYMENT_GATEWAY_API_KEY"),
    "processor": ("PAYMENT_GATEWAY_API_KEY",),
    "sandbox-gateway": ("PAYMENT_GATEWAY_API_KEY",),
}


def image_name(image: str) -> str:
    """initiator, processor or sandbox-gateway, from REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]


def start(image: str, env: dict[str, str]) -> str | None:
    """None when the container starts; else the line it exits with."""
    missing = [name for name in REQUIRED_SETTINGS.get(image_name(image), ()) if not env.get(name)]
    if env.get("BINPAY_ENV", "production") == "production" and missing:
        return f"BINPAY_ENV=production requires {', '.join(missing)} to be set explicitly"
    return None


def connect(project: dict, database_url: str, via: str) -> str | None:
    """Cloud SQL's answer to the DATABASE_URL a container holds: None when it connects.

    via: "socket" (Cloud Run's /cloudsql mount) or "proxy" (the Auth Proxy sidecar on 127.0.0.1).
    """
    url = urllib.parse.urlsplit(database_url)
    host = urllib.parse.unquote(url.hostname or "") if "%2F" not in database_url else ""
    socket = urllib.parse.unquote(database_url.split("@", 1)[-1].split("/", 1)[0]) if "%2F" in database_url else ""
    instances = project["r"].get("sql_instance", {})
    if via == "socket":
        match = re.fullmatch(r"/cloudsql/([^:]+):([^:]+):(.+)", socket)
        if not match or match.group(3) not in instances:
            return f'could not connect to server: No such file or directory (socket "{socket or host}")'
        instance = match.group(3)
    else:
        if host not in ("127.0.0.1", "localhost"):
            return f'could not translate host name "{host}" to address'
        if len(instances) != 1:
            return "connection refused (the Auth Proxy serves one instance)"
        instance = next(iter(instances))
    user = urllib.parse.unquote(url.username or "")
    password = urllib.parse.unquote(url.password or "")
    users = project["r"].get("sql_user", {})
    if users.get(f"{instance}/{user}", {}).get("password") != password:
        return f'FATAL: password authentication failed for user "{user}"'
    database = url.path.lstrip("/")
    if f"{instance}/{database}" not in project["r"].get("sql_database", {}):
        return f'FATAL: database "{database}" does not exist'
    return None


def run_command(state: dict, project: dict, args: list[str], env: dict[str, str], identity: str, grants) -> str:
    """A one-off command in the initiator image (a Cloud Run job execution or `kubectl exec`).

    Returns what it prints; raises PlatformError when it exits non-zero.
    """
    command = " ".join(args)
    database = project.setdefault("app", {"migrated": False, "api_keys": {}, "payments": {}})
    if "migrate" in args:
        database["migrated"] = True
        return "Operations to perform: ... Applying migrations ... OK\n"
    if not database["migrated"]:
        raise PlatformError(
            "job-before-execute", 'django.db.utils.ProgrammingError: relation "core_apikey" does not exist'
        )
    if "seed_demo" in args:
        raise PlatformError(
            "job-before-execute", "CommandError: seed_demo refuses BINPAY_ENV=production (use create_api_key)"
        )
    if "create_api_key" in args:
        if "--secret-id" not in args:
            raise PlatformError(
                "job-before-execute",
                "CommandError: stdout is not a terminal: pass --secret-id SECRET or --output FILE",
            )
        secret_id = args[args.index("--secret-id") + 1]
        secret = project["r"].get("secret", {}).get(secret_id)
        if secret is None:
            raise PlatformError(
                "secret-access", f"NotFound: 404 Secret [projects/{project['number']}/secrets/{secret_id}] not found"
            )
        if not grants(
            identity, f"secret/{secret_id}", ("roles/secretmanager.secretVersionAdder", "roles/secretmanager.admin")
        ):
            raise PlatformError(
                "secret-access",
                f"PermissionDenied: 403 Permission 'secretmanager.versions.add' denied for resource"
                f" 'projects/{project['number']}/secrets/{secret_id}' ({identity})",
            )
        key = "bpk_" + secrets.token_urlsafe(32)
        secret["versions"].append({"data": key, "state": "ENABLED", "created": state["clock"]})
        database["api_keys"][key] = {"command": command}
        return f"created API key {key[:12]}… (id {len(database['api_keys'])}) as a new version of secret {secret_id}\n"
    raise PlatformError("job-before-execute", f"Unknown command: {command!r}")
