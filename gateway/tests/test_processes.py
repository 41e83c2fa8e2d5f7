"""The server commands themselves: gunicorn, several processes on one SQLite file, restarts, startup checks, logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
import requests

from .conftest import API_KEY, Client, new_key
from .process import GATEWAY_DIR


@pytest.fixture(scope="module")
def gunicorn_client(start_gateway) -> Client:
    return Client(start_gateway("gunicorn").url)


def concurrently(calls) -> list[requests.Response]:
    """Run the calls at once; their answers in the calls' order."""
    barrier = threading.Barrier(len(calls))
    answers: list[requests.Response | None] = [None] * len(calls)

    def run(index: int, call) -> None:
        barrier.wait()
        answers[index] = call()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_gunicorn_serves_and_replays(gunicorn_client):
    key = new_key()
    first = gunicorn_client.create(2000, key=key)
    again = gunicorn_client.create(2000, key=key)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_gunicorn_drops_the_connection_for_a_lost_response(gunicorn_client):
    intent = gunicorn_client.intent(2055)
    key = new_key()

    with pytest.raises(requests.ConnectionError):
        gunicorn_client.confirm(intent["id"], key)

    assert gunicorn_client.retrieve(intent["id"])["status"] == "requires_capture"
    assert gunicorn_client.confirm(intent["id"], key).headers["Idempotent-Replayed"] == "true"


def test_gunicorn_hangs_a_54_past_the_client_timeout(gunicorn_client):
    intent = gunicorn_client.intent(2054)
    key = new_key()

    with pytest.raises(requests.ReadTimeout):
        gunicorn_client.confirm(intent["id"], key, timeout=0.3)

    assert gunicorn_client.confirm(intent["id"], key).status_code == 200


def test_gunicorn_concurrent_confirms_with_one_key_make_one_charge(gunicorn_client):
    intent = gunicorn_client.intent(3000)
    key = new_key()

    answers = concurrently([lambda: gunicorn_client.confirm(intent["id"], key)] * 12)

    assert [answer.status_code for answer in answers] == [200] * 12
    assert len(gunicorn_client.charges(intent["id"])) == 1


def test_capture_and_cancel_racing_from_two_processes_exclude_each_other(start_gateway, tmp_path):
    database = tmp_path / "shared.sqlite3"
    first = Client(start_gateway("dev", db_path=database).url)
    second = Client(start_gateway("gunicorn", db_path=database).url)

    for amount in range(2000, 2010):
        intent = first.intent(amount)
        path = f"/v1/payment_intents/{intent['id']}"
        assert first.confirm(intent["id"]).json()["status"] == "requires_capture"
        capture, cancel = concurrently(
            [
                lambda path=path: first.post(f"{path}/capture", key=new_key()),
                lambda path=path: second.post(f"{path}/cancel", key=new_key()),
            ]
        )
        assert sorted([capture.status_code, cancel.status_code]) == [200, 400]
        loser = capture if capture.status_code == 400 else cancel
        assert loser.json()["error"]["code"] == "payment_intent_unexpected_state"
        [charge] = second.charges(intent["id"])
        final = second.retrieve(intent["id"])["status"]
        if capture.status_code == 200:
            assert (final, charge["captured"], charge["refunded"]) == ("succeeded", True, False)
        else:
            assert (final, charge["captured"], charge["refunded"]) == ("canceled", False, True)


def test_intents_keys_and_clock_survive_a_restart(start_gateway, tmp_path):
    database = tmp_path / "kept.sqlite3"
    before = start_gateway("dev", db_path=database, SANDBOX_ALLOW_CONFIG="true")
    client = Client(before.url)
    key = new_key()
    created = client.create(4400, key=key).json()
    client.confirm(created["id"])
    requests.post(before.url + "/_sandbox/clock", json={"advance_seconds": 60}, headers=client.headers, timeout=5)
    before.stop()

    after = Client(start_gateway("dev", db_path=database).url)

    assert after.retrieve(created["id"])["status"] == "requires_capture"
    replay = after.create(4400, key=key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == created
    assert after.get("/_sandbox/clock").json()["offset_seconds"] == 60


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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SANDBOX_FAIL_RATE": "2"}, "sandbox_fail_rate must be between 0 and 1"),
        (
            {"SANDBOX_WEBHOOK_URL": "http://127.0.0.1:9/x", "PAYMENT_GATEWAY_WEBHOOK_SECRET": ""},
            "SANDBOX_WEBHOOK_URL needs PAYMENT_GATEWAY_WEBHOOK_SECRET",
        ),
    ],
)
def test_invalid_settings_refuse_to_start(tmp_path, env, message):
    result = run_app(tmp_path, **env)

    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("command", ["dev", "gunicorn"])
def test_logs_are_json_name_each_fault_and_never_contain_the_api_key(start_gateway, command):
    gateway = start_gateway(command)
    client = Client(gateway.url)
    intent = client.create(2000, **{"metadata[payment_id]": "pay-log"}).json()
    client.confirm(intent["id"])
    lost = client.intent(2155)
    with pytest.raises(requests.ConnectionError):
        client.confirm(lost["id"])
    unavailable = client.intent(2156)
    client.confirm(unavailable["id"])
    requests.get(f"{gateway.url}/v1/events", headers={"Authorization": f"Bearer {API_KEY}x"}, timeout=5)
    gateway.stop()

    output = gateway.logs()
    assert API_KEY not in output
    # The dev server prints a few plain banner lines of its own; under gunicorn every line is JSON.
    lines = [line for line in output.splitlines() if command == "gunicorn" or line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert all({"severity", "message", "time", "logger"} <= set(record) for record in records)
    access = [r for r in records if r.get("logger") == "sandbox_gateway.access" and "path" in r]
    confirms = [(r["status"], r["fault"], r["response_dropped"]) for r in access if r["path"].endswith("/confirm")]
    assert confirms == [(200, None, False), (200, "lost_response", True), (503, "unavailable", False)]
    # The payment id comes from the intent's metadata, on its create and on later calls by intent id.
    assert [r.get("payment_id") for r in access if intent["id"] in r["path"] or r["path"] == "/v1/payment_intents"][
        :2
    ] == ["pay-log", "pay-log"]
