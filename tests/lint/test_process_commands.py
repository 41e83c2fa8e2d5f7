"""The process commands the images and manifests start are the project's real commands, and they run.

Part 1 reads every place a command is written down (Dockerfile CMD, docker-compose.yml,
k8s/*.yaml, deploy/cloudrun/*.yaml) and checks each against
the fixed process commands, so a typo in a manifest fails here. Part 2 runs those exact command
lines from each service folder against the real Pub/Sub and Firestore emulators (SQLite for the
initiator's database): web processes answer /healthz, one-shot commands exit 0, long-running
workers start and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lint_support import REPO

sys.path.insert(0, str(REPO / "devtools"))

# The fixed process commands (the team's preamble); web servers bind $PORT, so no -b here.
COMMANDS = {
    "initiator": {
        "web": "gunicorn binpay_initiator.wsgi:application",
        "migrate": "python manage.py migrate --noinput",
        "consumer": "python manage.py consume_outcomes",
        "relay": "python manage.py relay_outbox",
        "relay-once": "python manage.py relay_outbox --once",
        "reconcile": "python manage.py reconcile",
        "reconcile-loop": "python manage.py reconcile --loop",
        # Retention: scheduled on every platform; it runs in tests once the command lands.
        "purge": "python manage.py purge_expired",
    },
    "processor": {
        "web": "gunicorn -w 4 app:app",
        "worker": "python -m binpay_processor.worker",
        "pubsub-setup": "python /devtools/pubsub_setup.py",
    },
    "gateway": {"web": "gunicorn -k gthread --threads 32 app:app"},
}


def dockerfile_cmd(service: str) -> str:
    text = (REPO / service / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert match, f"{service}/Dockerfile has no exec-form CMD"
    return " ".join(json.loads(match.group(1)))


def image_service(image: str) -> str | None:
    for service in COMMANDS:
        if re.search(rf"(^|/|binpay-|sandbox-){service}(:|@|$)", image):
            return service
    return None


def written_commands() -> list[tuple[str, str, str]]:
    """(where, service, command) for every command line written in an artifact."""
    found = [(f"{s}/Dockerfile CMD", s, dockerfile_cmd(s)) for s in COMMANDS]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    for name, spec in compose["services"].items():
        service = image_service(spec.get("image", ""))
        if service:
            command = " ".join(spec["command"]) if "command" in spec else dockerfile_cmd(service)
            found.append((f"compose {name}", service, command))
    for manifest in ("initiator", "processor"):
        for doc in yaml.safe_load_all((REPO / "k8s" / f"{manifest}.yaml").read_text(encoding="utf-8")):
            spec = doc.get("spec") or {}
            if doc["kind"] == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            template = spec.get("template") or {}
            for container in (template.get("spec") or {}).get("containers", []):
                service = image_service(container["image"])
                command = " ".join(container.get("command", []) + container.get("args", [])) or dockerfile_cmd(service)
                found.append((f"k8s {doc['kind']}/{doc['metadata']['name']}", service, command))
    for path in sorted((REPO / "deploy" / "cloudrun").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = doc["spec"]["template"]["spec"]
        spec = spec["template"]["spec"] if doc["kind"] == "Job" else spec
        for container in spec["containers"]:
            service = image_service(container["image"])
            found.append(
                (
                    f"deploy/cloudrun/{path.name}",
                    service,
                    " ".join(container.get("command", []) + container.get("args", [])) or dockerfile_cmd(service),
                )
            )
    return found


def test_every_written_command_is_a_real_process_command() -> None:
    found = written_commands()
    assert len(found) > 20
    wrong = [
        f"{where}: {service}: {command!r}"
        for where, service, command in found
        if command not in COMMANDS[service].values()
    ]
    assert not wrong, "\n".join(wrong)


def test_each_deployment_runs_every_process_it_needs() -> None:
    found = written_commands()

    def commands_in(prefix: str) -> set[str]:
        return {command for where, _, command in found if where.startswith(prefix)}

    initiator, processor = COMMANDS["initiator"], COMMANDS["processor"]
    assert {initiator[k] for k in ("web", "migrate", "consumer", "relay", "reconcile-loop")} | {
        processor["web"],
        processor["worker"],
    } <= commands_in("compose")
    assert {initiator[k] for k in ("web", "migrate", "consumer", "relay", "reconcile")} | {
        processor["web"],
        processor["worker"],
    } <= commands_in("k8s")
    # Cloud Run: the YAML deploy.sh applies is the one place its commands are written.
    cloud_run = commands_in("deploy/cloudrun")
    assert {initiator["web"], initiator["migrate"], initiator["relay-once"], processor["web"]} <= cloud_run
    # Retention runs on both platforms.
    assert initiator["purge"] in commands_in("k8s") and initiator["purge"] in cloud_run


# ---- part 2: run them ------------------------------------------------------------------------


def free_port() -> int:
    import emulators

    return emulators.free_port()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Real emulators with BinPay's topics and subscriptions; env for every process."""
    import emulators
    import pubsub_setup

    running = emulators.start()
    try:
        env = {**os.environ, **running.env(), "BINPAY_ENV": "development", "LOG_LEVEL": "INFO"}
        # The Pub/Sub client in this process finds the emulator through os.environ.
        with pytest.MonkeyPatch.context() as patch:
            for key, value in running.env().items():
                patch.setenv(key, value)
            pubsub_setup.ensure(pubsub_setup.Topology.from_env(env))
        env["DATABASE_URL"] = f"sqlite:///{tmp_path_factory.mktemp('initiator') / 'db.sqlite3'}"
        env["SANDBOX_DB_PATH"] = str(tmp_path_factory.mktemp("gateway") / "sandbox.sqlite3")
        env.pop("PORT", None)
        yield env
    finally:
        running.stop()


def argv(command: str) -> list[str]:
    """The command line as written, with its program taken from this virtualenv."""
    program, *rest = command.split()
    local = Path(sys.executable).parent / program
    return [str(local) if local.exists() else program, *rest]


def start(service: str, command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv(command),
        cwd=REPO / service,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = process.stdout.read().decode("utf-8", "replace") if process.stdout else ""
    return process.returncode, output


def wait_healthy(process: subprocess.Popen[bytes], port: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                return response.status
        except OSError:
            time.sleep(0.3)
    return 0


def run_once(service: str, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv(command), cwd=REPO / service, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("service", list(COMMANDS))
def test_web_command_serves_healthz_on_port(stack: dict[str, str], service: str) -> None:
    port = free_port()
    process = start(service, COMMANDS[service]["web"], {**stack, "PORT": str(port)})
    try:
        status = wait_healthy(process, port)
    finally:
        code, output = stop(process)
    assert status == 200, f"{COMMANDS[service]['web']} (exit {code}):\n{output[-3000:]}"
    assert code == 0, output[-3000:]


def test_initiator_one_shot_commands_exit_zero(stack: dict[str, str]) -> None:
    for key in ("migrate", "relay-once", "reconcile"):
        result = run_once("initiator", COMMANDS["initiator"][key], stack)
        assert result.returncode == 0, f"{COMMANDS['initiator'][key]}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"


@pytest.mark.parametrize(
    ("service", "key"),
    [("initiator", "consumer"), ("initiator", "relay"), ("initiator", "reconcile-loop"), ("processor", "worker")],
)
def test_worker_command_starts_and_stops_on_sigterm(stack: dict[str, str], service: str, key: str) -> None:
    run_once("initiator", COMMANDS["initiator"]["migrate"], stack)
    process = start(service, COMMANDS[service][key], stack)
    try:
        # Started means: still running once it has had time to connect (a crash exits at once).
        process.wait(timeout=8)
    except subprocess.TimeoutExpired:
        pass
    alive = process.poll() is None
    code, output = stop(process)
    assert alive, f"{COMMANDS[service][key]} exited early ({code}):\n{output[-3000:]}"
    assert code in (0, -signal.SIGTERM), f"{COMMANDS[service][key]} did not stop cleanly ({code}):\n{output[-3000:]}"
