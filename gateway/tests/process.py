"""Start the real sandbox as a separate process (``python app.py`` or gunicorn) on a free loopback port.

Used by gateway/tests and by the provider-contract suite (tests/provider loads this file by path).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

GATEWAY_DIR = Path(__file__).resolve().parent.parent
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
    """One running sandbox in its own process group; ``env`` overrides the defaults below."""

    db_path: Path
    log_path: Path
    api_key: str
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
            "PAYMENT_GATEWAY_API_KEY": self.api_key,
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
                raise RuntimeError(f"sandbox exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sandbox not ready after {STARTUP_SECONDS}s:\n{self.log_path.read_text()}")

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

    def log_records(self) -> list[dict]:
        """The JSON lines of the log (the dev server prints a few plain banner lines of its own)."""
        return [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]
