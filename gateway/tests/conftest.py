"""Fixtures that run the real gateway as a separate process and talk to it over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

GATEWAY_DIR = Path(__file__).resolve().parent.parent
API_KEY = "sk_test_gateway_suite"
STARTUP_SECONDS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_command(port: int) -> list[str]:
    # The production command line, bound to loopback on a free port.
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    return [gunicorn, "-k", "gthread", "--threads", "32", "-b", f"127.0.0.1:{port}", "app:app"]


@dataclass
class GatewayProcess:
    """One running gateway: `python app.py` or gunicorn, in its own process group."""

    db_path: Path
    log_path: Path
    command: str = "dev"
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayProcess:
        self.port = free_port()
        env = {
            **os.environ,
            "BINPAY_ENV": "development",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "PAYMENT_GATEWAY_API_KEY": API_KEY,
            "SANDBOX_DB_PATH": str(self.db_path),
            "SANDBOX_TIMEOUT_SECONDS": "1.5",
            "SANDBOX_LATENCY_MS": "1500",
            "SANDBOX_ALLOW_CONFIG": "false",
            # Keep parallel gunicorns (other suites) off the shared ~/.gunicorn control socket.
            "GUNICORN_CMD_ARGS": "--no-control-socket",
            **self.env,
        }
        argv = gunicorn_command(self.port) if self.command == "gunicorn" else [sys.executable, "app.py"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, cwd=GATEWAY_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway not ready after {STARTUP_SECONDS}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text()


class Client:
    """A thin protocol client: one method per call, each returning the raw `requests` response."""

    def __init__(self, base_url: str, api_key: str = API_KEY) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def charge(self, amount: int, reference: str, key: str, *, currency: str = "USD", timeout: float = 10, **extra):
        body = {"amount": amount, "currency": currency, "reference": reference, **extra}
        return self.post("/v1/charges", json=body, key=key, timeout=timeout)

    def refund(self, charge_id: str, key: str, *, body: dict | None = None, timeout: float = 10):
        return self.post(
            f"/v1/charges/{charge_id}/refunds", json={} if body is None else body, key=key, timeout=timeout
        )

    def post(self, path: str, *, key: str | None = None, timeout: float = 10, **kwargs):
        headers = dict(self.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        return requests.post(self.base_url + path, headers=headers, timeout=timeout, **kwargs)

    def get(self, path: str, **params):
        return requests.get(self.base_url + path, headers=self.headers, params=params, timeout=10)

    def ledger(self, reference: str) -> dict:
        response = self.get("/v1/ledger", reference=reference)
        assert response.status_code == 200, response.text
        [entry] = response.json()["data"]
        return entry

    def charges(self, reference: str) -> list[dict]:
        response = self.get("/v1/charges", reference=reference)
        assert response.status_code == 200, response.text
        return response.json()["data"]


@pytest.fixture(scope="session")
def start_gateway(tmp_path_factory) -> Iterator:
    """Factory: start_gateway(command="dev"|"gunicorn", db_path=None, **env) -> running GatewayProcess."""
    started: list[GatewayProcess] = []

    def start(command: str = "dev", db_path: Path | None = None, **env: str) -> GatewayProcess:
        folder = tmp_path_factory.mktemp("gateway")
        gateway = GatewayProcess(
            db_path=db_path or folder / "sandbox.sqlite3", log_path=folder / "gateway.log", command=command, env=env
        )
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="session")
def shared_gateway(start_gateway) -> GatewayProcess:
    """The default dev-server gateway; tests keep apart through unique references and keys."""
    return start_gateway("dev")


@pytest.fixture
def client(shared_gateway) -> Client:
    return Client(shared_gateway.url)


@pytest.fixture
def reference() -> str:
    return str(uuid.uuid4())


def new_key() -> str:
    return f"key-{uuid.uuid4()}"
