"""Charges over HTTP against a real gateway process: approval, declines, idempotency, lookups."""

from __future__ import annotations

import threading

import pytest

from .conftest import new_key


def test_approved_charge_is_stored_and_can_be_read_back(client, reference):
    response = client.charge(10000, reference, new_key(), description="order 42")

    assert response.status_code == 201
    charge = response.json()
    assert charge["id"].startswith("ch_")
    assert charge == {
        "id": charge["id"],
        "object": "charge",
        "amount": 10000,
        "currency": "USD",
        "reference": reference,
        "status": "succeeded",
        "failure_code": None,
        "refunded": False,
        "amount_refunded": 0,
        "created": charge["created"],
    }
    assert isinstance(charge["created"], int)
    assert "Idempotent-Replayed" not in response.headers
    assert client.get(f"/v1/charges/{charge['id']}").json() == charge
    assert client.charges(reference) == [charge]
    assert client.ledger(reference) == {
        "reference": reference,
        "charges_succeeded": 1,
        "charges_failed": 0,
        "refunds": 0,
        "amount_charged": 10000,
        "amount_refunded": 0,
    }


@pytest.mark.parametrize(("amount", "code"), [(1051, "card_declined"), (52, "insufficient_funds")])
def test_decline_answers_402_and_stores_a_failed_charge(client, reference, amount, code):
    response = client.charge(amount, reference, new_key())

    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("card_error", code)
    failed = client.get(f"/v1/charges/{error['charge']}").json()
    assert (failed["status"], failed["failure_code"], failed["reference"]) == ("failed", code, reference)
    assert client.ledger(reference)["charges_failed"] == 1
    assert client.ledger(reference)["charges_succeeded"] == 0


def test_same_key_and_body_replays_the_stored_response(client, reference):
    key = new_key()
    first = client.charge(2500, reference, key)
    again = client.charge(2500, reference, key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert client.ledger(reference)["charges_succeeded"] == 1


def test_a_replayed_decline_is_the_same_decline(client, reference):
    key = new_key()
    first = client.charge(151, reference, key)
    again = client.charge(151, reference, key)

    assert (first.status_code, again.status_code) == (402, 402)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert client.ledger(reference)["charges_failed"] == 1


def test_reusing_a_key_with_a_different_body_is_rejected(client, reference):
    key = new_key()
    assert client.charge(2500, reference, key).status_code == 201

    reused = client.charge(2600, reference, key)

    assert reused.status_code == 409
    assert reused.json()["error"]["type"] == "idempotency_error"
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert client.ledger(reference)["charges_succeeded"] == 1


def test_a_charge_key_cannot_be_reused_for_a_refund(client, reference):
    key = new_key()
    charge = client.charge(2500, reference, key).json()

    response = client.refund(charge["id"], key)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_concurrent_requests_with_one_key_make_one_charge(client, reference):
    key = new_key()
    barrier = threading.Barrier(16)
    responses = []

    def charge():
        barrier.wait()
        responses.append(client.charge(4200, reference, key))

    threads = [threading.Thread(target=charge) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [response.status_code for response in responses] == [201] * 16
    assert len({response.json()["id"] for response in responses}) == 1
    assert sum(response.headers.get("Idempotent-Replayed") == "true" for response in responses) == 15
    assert client.ledger(reference)["charges_succeeded"] == 1


def test_lookup_by_reference_lists_every_charge_oldest_first(client, reference):
    ids = [
        client.charge(100, reference, new_key()).json()["id"],
        client.charge(151, reference, new_key()).json()["error"]["charge"],
        client.charge(300, reference, new_key()).json()["id"],
    ]

    charges = client.charges(reference)

    assert [charge["id"] for charge in charges] == ids
    assert [charge["status"] for charge in charges] == ["succeeded", "failed", "succeeded"]


def test_unknown_reference_lists_nothing_and_reads_as_zero_in_the_ledger(client, reference):
    assert client.charges(reference) == []
    assert client.ledger(reference) == {
        "reference": reference,
        "charges_succeeded": 0,
        "charges_failed": 0,
        "refunds": 0,
        "amount_charged": 0,
        "amount_refunded": 0,
    }


def test_unknown_charge_is_404(client):
    response = client.get("/v1/charges/ch_doesnotexist")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"


def test_ledger_without_reference_lists_every_reference(client, reference):
    other = reference + "-other"
    client.charge(100, reference, new_key())
    client.charge(200, other, new_key())

    entries = {entry["reference"]: entry for entry in client.get("/v1/ledger").json()["data"]}

    assert entries[reference]["amount_charged"] == 100
    assert entries[other]["amount_charged"] == 200
