"""The real process commands: the pull worker (drain on SIGTERM) and gunicorn serving the app."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from conftest import (
    PROCESSOR_DIR,
    devtools_emulators,
    make_event,
    money,
    push_envelope,
    stop_process_group,
    wait_http_ok,
)
from prometheus_client.parser import text_string_to_metric_families


def process_env(config: dict[str, object], emulator_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {**os.environ, **emulator_env}
    env.update({name: "" if value is None else str(value) for name, value in config.items()})
    # No metrics server unless the test asks for one on a free port (the default 9090 may be taken).
    return {**env, "METRICS_PORT": "0", **extra}


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "binpay_processor.worker"],
            cwd=PROCESSOR_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def transaction(client, payment_id: str) -> tuple[int, dict]:
    response = client.get(f"/transactions/{payment_id}")
    return response.status_code, response.get_json()


def test_worker_processes_messages_and_drains_on_sigterm(config, emulator_env, client, topics, gateway_url, tmp_path):
    # 57 answers after 0.7 s, so messages are in flight when SIGTERM arrives.
    payments = [make_event(10057) for _ in range(6)]
    for data, attributes in payments:
        topics.publish_initiated(data, attributes)
    env = process_env(config, emulator_env, PUBSUB_FLOW_CONTROL_MAX_MESSAGES="2")
    log_path = tmp_path / "worker.log"

    worker = start_worker(env, log_path)
    try:
        deadline = time.monotonic() + 60
        while not any(transaction(client, a["payment_id"])[0] == 200 for _, a in payments):
            assert time.monotonic() < deadline and worker.poll() is None, log_path.read_text()
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log_path.read_text()
    finally:
        stop_process_group(worker)

    # Drained: whatever it started, it finished; nothing is left half-done.
    started = [a["payment_id"] for _, a in payments if transaction(client, a["payment_id"])[0] == 200]
    assert started
    for payment_id in started:
        status, body = transaction(client, payment_id)
        assert body["state"] == "COMPLETED" and body["outcome_published"], body
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert any(line["message"] == "stopped cleanly" for line in lines)
    assert all("severity" in line and "time" in line for line in lines)

    # It started only what its log says it received, and each of those is finished and published once.
    received = {line["payment_id"] for line in lines if line["message"].startswith("payment.initiated received")}
    assert received == set(started)
    events = topics.pull(topics.completion)
    assert sorted(e["payment_id"] for e, _ in events) == sorted(started)
    for payment_id in started:
        assert money(gateway_url, payment_id).succeeded == 1


def test_worker_refuses_fault_injection_in_production(config, emulator_env):
    env = process_env(config, emulator_env, BINPAY_ENV="production", FAULT_INJECTION_ENABLED="true")
    result = subprocess.run(
        [sys.executable, "-m", "binpay_processor.worker"], cwd=PROCESSOR_DIR, env=env, capture_output=True, timeout=60
    )
    assert result.returncode == 2
    assert b"FAULT_INJECTION_ENABLED" in result.stderr


def test_gunicorn_serves_the_app(config, emulator_env, topics):
    port = devtools_emulators.free_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    server = subprocess.Popen(
        [gunicorn, "-w", "4", "-b", f"127.0.0.1:{port}", "app:app"],
        cwd=PROCESSOR_DIR,
        env=process_env(config, emulator_env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", server)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
    finally:
        assert stop_process_group(server) == 0


def scrape(port: int) -> dict[tuple, float]:
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_gunicorn_serves_metrics_on_the_metrics_port_only(config, emulator_env, topics, tmp_path):
    """Issue 22 (H1, L4): the web port has no /metrics; the master adds up what each worker counted."""
    port, metrics_port = devtools_emulators.free_port(), devtools_emulators.free_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    server = subprocess.Popen(
        [gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "app:app"],
        cwd=PROCESSOR_DIR,
        env=process_env(config, emulator_env, METRICS_PORT=str(metrics_port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", server)
        public = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert public.status_code == 404 and "binpay_" not in public.text
        deliveries = [make_event(amount) for amount in (10000, 10000, 10051)]
        for data, attributes in deliveries:
            response = requests.post(
                f"http://127.0.0.1:{port}/pubsub/push", json=push_envelope(data, attributes), timeout=30
            )
            assert response.status_code == 200, response.text
        figures = scrape(metrics_port)
        calls = "binpay_gateway_request_duration_seconds_count"
        assert figures[(calls, (("operation", "confirm"), ("outcome", "ok")))] == 2
        assert figures[(calls, (("operation", "confirm"), ("outcome", "declined")))] == 1
    finally:
        assert stop_process_group(server) == 0


def test_the_pull_worker_serves_its_metrics_on_the_metrics_port(config, emulator_env, topics, tmp_path):
    metrics_port = devtools_emulators.free_port()
    log_path = tmp_path / "worker.log"
    data, attributes = make_event(10000)
    topics.publish_initiated(data, attributes)
    worker = start_worker(process_env(config, emulator_env, METRICS_PORT=str(metrics_port)), log_path)
    try:
        deadline = time.monotonic() + 60
        handled = ("binpay_processor_consumer_lag_seconds_count", (("disposition", "done"),))
        while True:
            try:
                if scrape(metrics_port).get(handled) == 1:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and worker.poll() is None, log_path.read_text()
            time.sleep(0.2)
    finally:
        stop_process_group(worker)


def test_gunicorn_refuses_bodies_over_the_limit_before_parsing(config, emulator_env, topics):
    """Issue 22 (M5): Content-Length and chunked bodies over REQUEST_BODY_MAX_BYTES answer 413."""
    port = devtools_emulators.free_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    server = subprocess.Popen(
        [gunicorn, "-w", "1", "-b", f"127.0.0.1:{port}", "app:app"],
        cwd=PROCESSOR_DIR,
        env=process_env(config, emulator_env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    body = b'{"message": {"data": "' + b"A" * (2 * 1024 * 1024) + b'"}}'
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", server)
        for data in (body, (body[i : i + 65536] for i in range(0, len(body), 65536))):
            response = requests.post(
                f"http://127.0.0.1:{port}/pubsub/push",
                data=data,
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            assert response.status_code == 413, response.text[:300]
            assert response.json()["error"]["code"] == "body_too_large"
    finally:
        stop_process_group(server)


def test_transactions_api_checks_the_caller_in_production(config, emulator_env, topics):
    """Issue 22 (L4): in production the saga-log read API answers only TRANSACTIONS_API_TOKEN's bearer (and is
    off without one); ids that are not UUIDs are a 404, never a Firestore call."""
    port = devtools_emulators.free_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    token = "t" * 40
    env = process_env(
        config,
        emulator_env,
        BINPAY_ENV="production",
        FAULT_INJECTION_ENABLED="false",
        PAYMENT_GATEWAY_ALLOW_SANDBOX="true",
        TRANSACTIONS_API_TOKEN=token,
    )
    server = subprocess.Popen(
        [gunicorn, "-w", "1", "-b", f"127.0.0.1:{port}", "app:app"],
        cwd=PROCESSOR_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/transactions"
    payment_id = str(uuid.uuid4())
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", server)
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = requests.get(f"{base}/{payment_id}", headers=headers, timeout=10)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "unauthorized"
        authorized = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{base}/{payment_id}", headers=authorized, timeout=10).status_code == 404
        for odd in ("..", "__x__", "not-a-uuid"):
            response = requests.get(f"{base}/{odd}", headers=authorized, timeout=10)
            assert response.status_code == 404, (odd, response.text)
    finally:
        stop_process_group(server)
