"""Cancel: the definitive end of a payment's charge attempts, raced for real against a slow charge."""

from __future__ import annotations

import threading
import time

from .conftest import new_key


def cancel(client, key: str):
    return client.post("/v1/charges/cancel", json={"charge_idempotency_key": key})


def test_cancel_before_any_charge_refuses_every_later_charge_with_the_key(client, reference):
    key = new_key()
    first = cancel(client, key)

    assert first.status_code == 200, first.text
    assert first.json() == {
        "object": "charge_cancellation",
        "charge_idempotency_key": key,
        "canceled": True,
        "charge": None,
    }
    late = client.charge(10000, reference, key)
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "charge_canceled"
    assert client.charges(reference) == []
    assert cancel(client, key).json()["canceled"] is True


def test_cancel_after_a_charge_answers_with_the_charge_instead(client, reference):
    key = new_key()
    charge = client.charge(10000, reference, key).json()

    answer = cancel(client, key).json()

    assert answer["canceled"] is False
    assert answer["charge"] == charge
    replay = client.charge(10000, reference, key)
    assert (replay.status_code, replay.json()["id"]) == (201, charge["id"])


def test_cancel_after_a_decline_answers_with_the_failed_charge(client, reference):
    key = new_key()
    client.charge(1051, reference, key)

    answer = cancel(client, key).json()

    assert answer["canceled"] is False
    assert (answer["charge"]["status"], answer["charge"]["failure_code"]) == ("failed", "card_declined")


def test_a_slow_charge_in_flight_when_the_cancel_lands_makes_no_charge(client, reference):
    """Magic 57 holds the key while it sleeps (SANDBOX_LATENCY_MS); the cancel wins the race."""
    key = new_key()
    slow: dict = {}

    def charge_slowly():
        slow["response"] = client.charge(10057, reference, key, timeout=30)

    thread = threading.Thread(target=charge_slowly)
    thread.start()
    time.sleep(0.4)  # well inside the 1.5 s the slow charge sleeps while holding the key
    answer = cancel(client, key).json()
    thread.join()

    assert answer["canceled"] is True
    assert slow["response"].status_code == 409
    assert slow["response"].json()["error"]["code"] == "charge_canceled"
    assert client.charges(reference) == []
    assert client.ledger(reference)["charges_succeeded"] == 0


def test_a_lost_response_charge_is_found_by_the_cancel(client, reference):
    """Magic 55 makes the charge and drops the connection: the cancel must not pretend there is none."""
    key = new_key()
    try:
        client.charge(10055, reference, key, timeout=5)
    except Exception:  # noqa: BLE001 - the dropped connection is the point
        pass

    answer = cancel(client, key).json()

    assert answer["canceled"] is False
    assert answer["charge"]["status"] == "succeeded"


def test_cancel_validates_its_body(client):
    assert cancel(client, "").status_code == 400
    bad = client.post("/v1/charges/cancel", json={"charge_idempotency_key": "k", "amount": 1})
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "amount")
    assert client.post("/v1/charges/cancel", data="[]").status_code == 400
