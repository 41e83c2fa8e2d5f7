"""The real BinPay processes as a test stack: the e2e and chaos suites drive it.

Each delivery mode gets its own stack, in its own emulator project and database: the gateway,
the processor (gunicorn web; in pull mode also its worker), the initiator (gunicorn web, outbox
relay; in pull mode also its outcome consumer). In push mode the Pub/Sub emulator pushes to the
services' /pubsub/push endpoints instead of the workers pulling. The sandbox gateway signs its
webhooks to the initiator's /webhooks/stripe. Tests talk to the stack only through HTTP, the
emulators and the provider (through the gateway port).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import check_invariants
import emulators
import psycopg
import pubsub_setup
import requests
from binpay_common.gateway import WEBHOOK_EVENTS
from binpay_common.gateway.stripe_api import StripeGateway
from binpay_common.steps import PATHS
from wait_ready import wait

ROOT = Path(__file__).resolve().parent.parent

GATEWAY_KEY = "sk_test_e2e"
WEBHOOK_SECRET = "whsec_e2e_" + secrets.token_hex(8)
# Stripe's test card that always succeeds: every user the tests create pays with it.
PAYMENT_METHOD = "pm_card_visa"


@dataclass(frozen=True)
class Money:
    """What the provider holds for one payment (every intent whose metadata names it)."""

    intents: int
    succeeded: int
    declined: int
    refunds: int
    amount_charged: int
    amount_refunded: int

    @property
    def standing(self) -> int:
        return self.amount_charged - self.amount_refunded


@dataclass
class Stack:
    mode: str
    env: dict[str, str]
    initiator_url: str
    processor_url: str
    gateway_url: str
    api_key: str
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], str, dict[str, str]]] = field(default_factory=dict)
    # What the tests deposited per user id, in minor units: the invariant checker's own record.
    deposits: dict[int, int] = field(default_factory=dict)
    # Each long-running process's metrics server (METRICS_PORT) by process name, set by build_stack.
    metrics_urls: dict[str, str] = field(default_factory=dict)

    def api(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.api_key}"
        return session

    def gateway(self) -> requests.Session:
        """Raw HTTP to the sandbox gateway (its /_sandbox knobs and clock)."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {GATEWAY_KEY}"
        return session

    def provider(self) -> StripeGateway:
        """The gateway port on the stack's sandbox."""
        return StripeGateway(api_base=self.gateway_url, api_key=GATEWAY_KEY, connect_timeout=5, read_timeout=30)

    def start(self, name: str, command: list[str], cwd: str, extra_env: dict[str, str] | None = None) -> None:
        self.commands[name] = (command, cwd, extra_env or {})
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            command,
            cwd=ROOT / cwd,
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def restart(self, name: str) -> None:
        """Start a stopped (or killed) process again with the command it was first started with."""
        command, cwd, extra_env = self.commands[name]
        self.start(name, command, cwd, extra_env)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def dead(self) -> list[str]:
        return [name for name, process in self.processes.items() if process.poll() is not None]

    def logs(self, name: str, tail: int = 4000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def invariant_sources(self) -> check_invariants.Sources:
        return check_invariants.Sources(
            self.initiator_url, self.api_key, self.gateway_url, GATEWAY_KEY, self.env["PROJECT_ID"]
        )

    # --- helpers the tests share -------------------------------------------------------------

    def create_funded_user(self, amount: str = "1000.00") -> dict:
        api = self.api()
        response = api.post(
            f"{self.initiator_url}/users",
            json={"email": f"{uuid.uuid4().hex}@e2e.test", "name": "E2E", "default_payment_method": PAYMENT_METHOD},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        user = response.json()
        deposit = api.post(
            f"{self.initiator_url}/users/{user['id']}/deposits",
            json={"amount": amount},
            headers={"Idempotency-Key": uuid.uuid4().hex},
            timeout=10,
        )
        assert deposit.status_code == 201, deposit.text
        self.deposits[user["id"]] = self.deposits.get(user["id"], 0) + int(Decimal(amount) * 100)
        return api.get(f"{self.initiator_url}/users/{user['id']}", timeout=10).json()

    def wait_terminal(self, payment_ids: list[str], timeout: float = 90) -> dict[str, dict]:
        api = self.api()
        done: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while len(done) < len(payment_ids) and time.monotonic() < deadline:
            for payment_id in payment_ids:
                if payment_id in done:
                    continue
                try:
                    payment = api.get(f"{self.initiator_url}/payments/{payment_id}", timeout=10).json()
                except requests.RequestException:  # the initiator's web server is restarting
                    break
                # Settled once the initiator's own saga step (delivered after its commit) is logged too.
                settled_by = PATHS.final_status.get(payment["status"], {}).get("settled_by")
                steps = [step["step"] for step in (payment.get("saga_log") or {}).get("steps") or []]
                if settled_by in steps:
                    done[payment_id] = payment
            if len(done) < len(payment_ids):
                time.sleep(0.25)
        missing = [pid for pid in payment_ids if pid not in done]
        assert not missing, f"{len(missing)} payment(s) not settled after {timeout}s, e.g. {missing[:3]}; " + (
            f"dead processes: {self.dead()}"
        )
        return done

    def log_lines(self, name: str) -> list[dict]:
        """A process's JSON log lines (the rest of its output skipped)."""
        path = self.log_dir / f"{name}.log"
        lines = []
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
        return lines

    def money(self, payment_id: str) -> Money:
        """Every intent the provider holds for the payment (the stack's search has no lag) and its refunds."""
        provider = self.provider()
        intents = provider.search_intents(payment_id)
        refunds = [refund for intent in intents for refund in provider.refunds_of(intent.id)]
        given = [refund for refund in refunds if refund.gives_money_back]
        return Money(
            intents=len(intents),
            succeeded=sum(1 for intent in intents if intent.captured),
            declined=sum(1 for intent in intents if intent.declined or intent.decline_code),
            refunds=len(given),
            amount_charged=sum(intent.captured for intent in intents),
            amount_refunded=sum(refund.amount for refund in given),
        )


def _database_url(mode: str, tmp: Path) -> str:
    """A fresh database per stack: on DATABASE_URL's PostgreSQL server if given, else SQLite."""
    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith("postgres"):
        return f"sqlite:///{tmp / 'initiator.sqlite3'}"
    name = f"binpay_e2e_{mode}_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + "/" + name


def _run(command: list[str], cwd: str, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=ROOT / cwd, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


METRICS_PROCESSES = ("initiator-web", "processor-web", "processor-worker", "initiator-consumer")


def build_stack(
    mode: str,
    emulator_env: dict[str, str],
    tmp: Path,
    extra_env: dict[str, str] | None = None,
    ack_deadline_seconds: int = 30,
) -> Stack:
    ports = {
        name: emulators.free_port()
        for name in ("initiator", "processor", "gateway", *(f"{process}-metrics" for process in METRICS_PROCESSES))
    }
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    project = f"binpay-e2e-{mode}-{secrets.token_hex(3)}"
    env = {
        **os.environ,
        **emulator_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        # gunicorn 27 binds a control socket at one fixed path per user: several servers would clash.
        "GUNICORN_CMD_ARGS": "--no-control-socket",
        "PROJECT_ID": project,
        "BINPAY_ENV": "development",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": _database_url(mode, tmp),
        "PAYMENT_GATEWAY_URL": urls["gateway"],
        "PAYMENT_GATEWAY_API_KEY": GATEWAY_KEY,
        "SANDBOX_DB_PATH": str(tmp / "gateway.sqlite3"),
        "SANDBOX_TIMEOUT_SECONDS": "4",
        "SANDBOX_LATENCY_MS": "300",
        "SANDBOX_SEARCH_LAG_SECONDS": "0",
        "SANDBOX_WEBHOOK_URL": f"{urls['initiator']}/webhooks/stripe",
        "SANDBOX_WEBHOOK_EVENTS": ",".join(WEBHOOK_EVENTS),
        "PAYMENT_GATEWAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS": "2",
        "FAULT_INJECTION_ENABLED": "true",
        "SAGA_TIMEOUT_SECONDS": "300",
        "OUTBOX_RELAY_INTERVAL_SECONDS": "1",
        # Metrics servers on free ports, one per process of METRICS_PROCESSES (below); none elsewhere.
        "METRICS_PORT": "0",
        # The bench and the fault suite push hundreds of payments a second through one key and address.
        "RATE_LIMIT_ENABLED": "false",
        **(extra_env or {}),
    }
    for key in ("PUBSUB_PUSH_AUDIENCE", "PUBSUB_PUSH_SERVICE_ACCOUNT"):
        env.pop(key, None)
    api_key = "bp_test_" + secrets.token_urlsafe(18)
    stack = Stack(mode, env, urls["initiator"], urls["processor"], urls["gateway"], api_key, tmp)
    stack.metrics_urls = {process: f"{urls[f'{process}-metrics']}/metrics" for process in METRICS_PROCESSES}

    pubsub_setup.ensure(
        pubsub_setup.Topology.from_env(env),
        push_processor=f"{urls['processor']}/pubsub/push" if mode == "push" else None,
        push_initiator=f"{urls['initiator']}/pubsub/push" if mode == "push" else None,
        ack_deadline_seconds=ack_deadline_seconds,
    )
    _run([sys.executable, "manage.py", "migrate", "--noinput"], "initiator", env)
    _run([sys.executable, "manage.py", "seed_demo", "--api-key", api_key], "initiator", env)

    gunicorn = [sys.executable, "-m", "gunicorn", "--workers", "2", "--timeout", "60"]
    stack.start(
        "gateway",
        [*gunicorn[:3], "-k", "gthread", "--threads", "32", "-b", f"127.0.0.1:{ports['gateway']}", "app:app"],
        "gateway",
    )
    stack.start(
        "processor-web",
        [*gunicorn, "-b", f"127.0.0.1:{ports['processor']}", "app:app"],
        "processor",
        {"METRICS_PORT": str(ports["processor-web-metrics"])},
    )
    stack.start(
        "initiator-web",
        [*gunicorn, "-b", f"127.0.0.1:{ports['initiator']}", "binpay_initiator.wsgi:application"],
        "initiator",
        {"METRICS_PORT": str(ports["initiator-web-metrics"])},
    )
    stack.start("initiator-relay", [sys.executable, "manage.py", "relay_outbox"], "initiator")
    if mode == "pull":
        stack.start(
            "processor-worker",
            [sys.executable, "-m", "binpay_processor.worker"],
            "processor",
            {"METRICS_PORT": str(ports["processor-worker-metrics"])},
        )
        stack.start(
            "initiator-consumer",
            [sys.executable, "manage.py", "consume_outcomes"],
            "initiator",
            {"METRICS_PORT": str(ports["initiator-consumer-metrics"])},
        )
    pending = wait([f"{urls['initiator']}/readyz", f"{urls['processor']}/readyz", f"{urls['gateway']}/healthz"], 60)
    if pending or stack.dead():
        logs = "\n".join(f"--- {name}\n{stack.logs(name)}" for name in stack.processes)
        stack.stop_all()
        raise RuntimeError(f"stack not ready: {pending} dead={stack.dead()}\n{logs}")
    return stack
