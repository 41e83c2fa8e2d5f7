"""GET /transactions/<payment_id>, /healthz and /readyz."""

from __future__ import annotations

import uuid

from binpay_processor import create_app
from binpay_processor.clients import Clients
from binpay_processor.config import Settings
from conftest import devtools_emulators, make_event


def test_transaction_read_api_returns_the_saga_log_in_order(client, processor, topics):
    data, attributes = make_event(10051)
    processor.handle_payment_initiated(data, attributes, 1)

    response = client.get(f"/transactions/{attributes['payment_id']}")

    assert response.status_code == 200
    body = response.get_json()
    assert body["payment_id"] == attributes["payment_id"]
    assert (body["state"], body["version"], body["charge_id"]) == ("FAILED", 5, None)
    assert body["intent_id"].startswith("pi_")
    assert (body["amount"], body["currency"], body["correlation_id"]) == (10051, "USD", attributes["correlation_id"])
    assert [(s["seq"], s["step"], s["service"]) for s in body["steps"]] == [
        (1, "RECEIVED", "processor"),
        (2, "INTENT_CREATED", "processor"),
        (3, "CHARGE_DECLINED", "processor"),
        (4, "CHARGE_CANCELED", "processor"),
        (5, "FAILED", "processor"),
    ]
    assert body["steps"][4]["detail"]["event_id"] == body["outcome_event"]["event_id"]
    assert all(step["at"] for step in body["steps"])


def test_unknown_transaction_is_a_structured_404(client):
    response = client.get(f"/transactions/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_unknown_route_is_a_structured_404(client):
    assert client.get("/nope").get_json()["error"]["code"] == "not_found"


def test_healthz(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_when_firestore_and_pubsub_answer(client, topics):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"firestore": "ok", "pubsub": "ok"}


def test_readyz_when_nothing_answers(config, monkeypatch):
    dead = f"127.0.0.1:{devtools_emulators.free_port()}"
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", dead)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", dead)
    unreachable = Clients(Settings.from_env(environ={}, overrides=config))
    try:
        response = create_app(test_config=config, clients=unreachable).test_client().get("/readyz")
    finally:
        unreachable.close()

    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["firestore"].startswith("error") and checks["pubsub"].startswith("error")
