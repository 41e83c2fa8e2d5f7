"""`make run` as a newcomer uses it: up, the printed curl pays, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import emulators
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class MakeRun:
    def __init__(self, tmp_path: Path):
        self.ports = {
            name: emulators.free_port()
            for name in (
                "INITIATOR_PORT",
                "PROCESSOR_PORT",
                "GATEWAY_PORT",
                "PUBSUB_EMULATOR_PORT",
                "FIRESTORE_EMULATOR_PORT",
            )
        }
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")},
            **{name: str(port) for name, port in self.ports.items()},
            "BINPAY_STATE_DIR": str(tmp_path / "state"),
            # Isolated from a DATABASE_URL the suite may run under (make run's own default is the state dir).
            "DATABASE_URL": f"sqlite:///{tmp_path / 'state' / 'initiator.sqlite3'}",
            "PROJECT_ID": "binpay-make-run",
        }
        self.output: list[str] = []
        self.process: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None

    def start(self, timeout: float = 180) -> str:
        """Start `make run`; return the curl line it prints once everything is ready."""
        self.output.clear()
        self.reader = None
        self.process = subprocess.Popen(
            ["make", "run"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        for line in self.process.stdout:
            self.output.append(line)
            if line.strip().startswith("curl -X POST"):
                # Keep draining the logs, as a terminal does: a full pipe would block every process.
                self.reader = threading.Thread(target=self._drain, daemon=True)
                self.reader.start()
                return line.strip()
            if time.monotonic() > deadline:
                break
        self.interrupt()
        pytest.fail("make run printed no curl:\n" + "".join(self.output[-80:]))

    def line_with(self, marker: str, timeout: float = 30) -> str:
        """The first output line containing `marker` (the drain thread reads on after start())."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.output):
                if marker in line:
                    return line.strip()
            time.sleep(0.1)
        pytest.fail(f"make run printed no {marker!r}:\n" + "".join(self.output[-80:]))

    def check_invariants(self, key: str) -> None:
        check = subprocess.run(
            ["make", "check-invariants"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={
                **self.env,
                "BINPAY_API_KEY": key,
                "INITIATOR_URL": f"http://127.0.0.1:{self.ports['INITIATOR_PORT']}",
                "PAYMENT_GATEWAY_URL": f"http://127.0.0.1:{self.ports['GATEWAY_PORT']}",
                "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{self.ports['FIRESTORE_EMULATOR_PORT']}",
            },
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert re.search(r"violations\s+0", check.stdout)

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C: SIGINT to the whole foreground process group, as a terminal sends it."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            pytest.fail("make run did not stop within a minute of Ctrl-C:\n" + "".join(self.output[-60:]))
        if self.reader is not None:
            self.reader.join(timeout=10)
        else:
            self.output += self.process.stdout.readlines()
        return self.process.returncode


def test_the_manage_wrapper_without_a_stack_says_how_to_start_one(tmp_path):
    env = {**os.environ, "BINPAY_STATE_DIR": str(tmp_path / "never-ran")}
    answer = subprocess.run(
        ["bash", "devtools/manage.sh", "list_api_keys"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert answer.returncode == 2
    assert answer.stderr.strip() == (
        f"manage.sh: no 'make run' stack found in {tmp_path / 'never-ran'}: start one with 'make run' "
        "(or set BINPAY_STATE_DIR to its folder)"
    )


@pytest.mark.skipif(sys.platform != "linux", reason="process-group checks use Linux semantics")
def test_make_run_serves_the_printed_curl_and_ctrl_c_stops_everything(tmp_path):
    run = MakeRun(tmp_path)
    curl = run.start()
    try:
        key = re.search(r"Bearer (\S+?)\"", curl).group(1)
        initiator = f"http://127.0.0.1:{run.ports['INITIATOR_PORT']}"
        assert curl == (
            f'curl -X POST -H "Authorization: Bearer {key}" -d "user_id=1&amount=100.00" {initiator}/initiate-payment'
        )
        console, password = re.search(
            r"Operator console: (\S+)\s+sign in as operator / (\S+)", run.line_with("Operator console:")
        ).groups()
        assert console == f"{initiator}/console/"
        staff = requests.Session()
        staff.get(f"{initiator}/console/login/", timeout=10)
        signed_in = staff.post(
            f"{initiator}/console/login/",
            data={"username": "operator", "password": password, "csrfmiddlewaretoken": staff.cookies["csrftoken"]},
            timeout=10,
        )
        assert signed_in.url == console and "<h1>Payments</h1>" in signed_in.text, signed_in.text[:500]

        answer = subprocess.run(["bash", "-c", curl + " -sS -w '\\n%{http_code}'"], capture_output=True, text=True)
        body, status = answer.stdout.rsplit("\n", 1)
        assert status == "202", answer.stdout + answer.stderr
        payment_id = json.loads(body)["id"]

        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {key}"
        deadline = time.monotonic() + 30
        while (payment := api.get(f"{initiator}/payments/{payment_id}", timeout=10).json())["status"] == "pending":
            assert time.monotonic() < deadline, payment
            time.sleep(0.2)
        assert payment["status"] == "completed"

        run.check_invariants(key)
        # The documented manage.py wrapper acts on this running stack's database, whatever the caller's
        # environment says: it lists the demo key make run seeded.
        caller = {k: v for k, v in run.env.items() if k != "DATABASE_URL"}
        keys = subprocess.run(
            ["bash", "devtools/manage.sh", "list_api_keys"], cwd=ROOT, env=caller, capture_output=True, text=True
        )
        assert keys.returncode == 0 and key[:12] in keys.stdout, keys.stdout + keys.stderr
    finally:
        run.interrupt()

    time.sleep(1)
    assert [name for name, port in run.ports.items() if port_open(port)] == []
    leftovers = subprocess.run(["pgrep", "-f", str(run.ports["PUBSUB_EMULATOR_PORT"])], capture_output=True, text=True)
    assert leftovers.stdout == "", f"emulator processes left behind: {leftovers.stdout}"

    # A second `make run` right after works, with every store as the first left it: the payment and
    # its saga log (Firestore exported on the way out, imported again) agree.
    assert run.start().startswith("curl -X POST")
    try:
        again = api.get(f"{initiator}/payments/{payment_id}", timeout=10).json()
        assert again["status"] == "completed"
        assert [step["step"] for step in again["saga_log"]["steps"]] == [
            "RECEIVED",
            "INTENT_CREATED",
            "CHARGED",
            "COMPLETED",
            "CAPTURED",
        ]
        run.check_invariants(key)
    finally:
        run.interrupt()
    time.sleep(1)
    assert [name for name, port in run.ports.items() if port_open(port)] == []
