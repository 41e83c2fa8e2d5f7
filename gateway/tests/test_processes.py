"""The server commands themselves: gunicorn, several processes on one SQLite file, restarts, startup checks, logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
import requests

from .conftest import API_KEY, GATEWAY_DIR, Client, new_key


@pytest.fixture(scope="module")
def gunicorn_client(start_gateway) -> Client:
    return Client(start_gateway("gunicorn").url)


def charge_concurrently(clients: list[Client], amount: int, reference: str, key: str) -> list[requests.Response]:
    barrier = threading.Barrier(len(clients))
    responses = []

    def charge(client: Client) -> None:
        barrier.wait()
        responses.append(client.charge(amount, reference, key))

    threads = [threading.Thread(target=charge, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_gunicorn_serves_charges_and_replays(gunicorn_client, reference):
    key = new_key()
    first = gunicorn_client.charge(990, reference, key)
    again = gunicorn_client.charge(990, reference, key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert gunicorn_client.ledger(reference)["charges_succeeded"] == 1


def test_gunicorn_drops_the_connection_for_a_lost_response(gunicorn_client, reference):
    key = new_key()

    with pytest.raises(requests.ConnectionError):
        gunicorn_client.charge(2055, reference, key)

    assert gunicorn_client.ledger(reference)["charges_succeeded"] == 1
    retry = gunicorn_client.charge(2055, reference, key)
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert gunicorn_client.charges(reference) == [retry.json()]


def test_gunicorn_hangs_a_54_past_the_client_timeout(gunicorn_client, reference):
    key = new_key()

    with pytest.raises(requests.ReadTimeout):
        gunicorn_client.charge(2054, reference, key, timeout=0.3)

    assert gunicorn_client.charge(2054, reference, key).status_code == 201


def test_gunicorn_concurrent_requests_with_one_key_make_one_charge(gunicorn_client, reference):
    responses = charge_concurrently([gunicorn_client] * 12, 3000, reference, new_key())

    assert [response.status_code for response in responses] == [201] * 12
    assert len({response.json()["id"] for response in responses}) == 1
    assert gunicorn_client.ledger(reference)["charges_succeeded"] == 1


def test_two_processes_on_one_database_make_one_charge_per_key(start_gateway, tmp_path, reference):
    database = tmp_path / "shared.sqlite3"
    first = Client(start_gateway("dev", db_path=database).url)
    second = Client(start_gateway("gunicorn", db_path=database).url)

    for attempt in range(5):
        responses = charge_concurrently([first, second] * 6, 100 + attempt, reference, f"{reference}-{attempt}")
        assert [response.status_code for response in responses] == [201] * 12
        assert len({response.json()["id"] for response in responses}) == 1

    assert first.ledger(reference)["charges_succeeded"] == 5
    assert second.ledger(reference)["charges_succeeded"] == 5


def test_charges_and_keys_survive_a_restart(start_gateway, tmp_path, reference):
    database = tmp_path / "kept.sqlite3"
    before = start_gateway("dev", db_path=database)
    key = new_key()
    charge = Client(before.url).charge(4400, reference, key).json()
    Client(before.url).refund(charge["id"], f"refund-{reference}")
    before.stop()

    after = Client(start_gateway("dev", db_path=database).url)

    assert after.get(f"/v1/charges/{charge['id']}").json()["refunded"] is True
    replay = after.charge(4400, reference, key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == charge
    assert after.ledger(reference)["charges_succeeded"] == 1
    assert after.ledger(reference)["refunds"] == 1


def run_app(tmp_path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "SANDBOX_DB_PATH": str(tmp_path / "refused.sqlite3"), "PORT": "1", **env}
    return subprocess.run(
        [sys.executable, "app.py"], cwd=GATEWAY_DIR, env=full_env, capture_output=True, text=True, timeout=30
    )


def test_production_refuses_to_start_without_an_api_key(tmp_path):
    # An empty value is "set" for python-dotenv, so a developer's gateway/.env cannot fill it in.
    result = run_app(tmp_path, BINPAY_ENV="production", PAYMENT_GATEWAY_API_KEY="")

    assert result.returncode != 0
    assert "PAYMENT_GATEWAY_API_KEY must be set when BINPAY_ENV=production" in result.stderr


def test_invalid_knob_in_the_environment_refuses_to_start(tmp_path):
    result = run_app(tmp_path, SANDBOX_FAIL_RATE="2")

    assert result.returncode != 0
    assert "sandbox_fail_rate must be between 0 and 1" in result.stderr


@pytest.mark.parametrize("command", ["dev", "gunicorn"])
def test_logs_are_json_with_severity_and_never_contain_the_api_key(start_gateway, reference, command):
    gateway = start_gateway(command)
    client = Client(gateway.url)
    client.charge(100, reference, new_key())
    with pytest.raises(requests.ConnectionError):
        client.charge(155, reference, new_key())
    requests.get(f"{gateway.url}/v1/ledger", headers={"Authorization": f"Bearer {API_KEY}x"}, timeout=5)
    gateway.stop()

    output = gateway.logs()
    assert API_KEY not in output
    # The dev server prints a few plain banner lines of its own; under gunicorn every line is JSON.
    lines = [line for line in output.splitlines() if command == "gunicorn" or line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert all({"severity", "message", "time", "logger"} <= set(record) for record in records)
    charges = [record for record in records if record.get("path") == "/v1/charges"]
    assert [(r["severity"], r["status"], r["payment_id"], r["response_dropped"]) for r in charges] == [
        ("INFO", 201, reference, False),
        ("INFO", 201, reference, True),
    ]
