"""Refunds over HTTP: idempotent, one per charge, only of succeeded charges; the ledger counts them."""

from __future__ import annotations

from .conftest import new_key


def make_charge(client, reference, amount=7000) -> dict:
    response = client.charge(amount, reference, new_key())
    assert response.status_code == 201, response.text
    return response.json()


def test_refund_refunds_the_whole_charge(client, reference):
    charge = make_charge(client, reference)

    response = client.refund(charge["id"], f"refund-{reference}")

    assert response.status_code == 201
    refund = response.json()
    assert refund == {
        "id": refund["id"],
        "object": "refund",
        "charge": charge["id"],
        "amount": 7000,
        "status": "succeeded",
        "created": refund["created"],
    }
    assert refund["id"].startswith("re_")
    refreshed = client.get(f"/v1/charges/{charge['id']}").json()
    assert (refreshed["refunded"], refreshed["amount_refunded"]) == (True, 7000)
    assert client.ledger(reference) == {
        "reference": reference,
        "charges_succeeded": 1,
        "charges_failed": 0,
        "refunds": 1,
        "amount_charged": 7000,
        "amount_refunded": 7000,
    }


def test_refund_with_the_same_key_replays(client, reference):
    charge = make_charge(client, reference)
    key = new_key()
    first = client.refund(charge["id"], key)

    again = client.refund(charge["id"], key)

    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert client.ledger(reference)["refunds"] == 1


def test_second_refund_with_another_key_returns_the_existing_refund(client, reference):
    charge = make_charge(client, reference)
    first = client.refund(charge["id"], new_key())

    second = client.refund(charge["id"], new_key())

    assert second.status_code == 200
    assert second.json() == first.json()
    assert "Idempotent-Replayed" not in second.headers
    assert client.ledger(reference)["refunds"] == 1
    assert client.ledger(reference)["amount_refunded"] == 7000


def test_refund_accepts_an_empty_body(client, reference):
    charge = make_charge(client, reference)

    response = client.post(f"/v1/charges/{charge['id']}/refunds", key=new_key())

    assert response.status_code == 201


def test_refund_of_a_declined_charge_is_409(client, reference):
    declined = client.charge(51, reference, new_key()).json()["error"]["charge"]

    response = client.refund(declined, new_key())

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "charge_not_succeeded"
    assert client.ledger(reference)["refunds"] == 0


def test_refund_of_an_unknown_charge_is_404_and_not_remembered(client, shared_gateway):
    key = new_key()
    assert client.refund("ch_missing", key).status_code == 404
    assert client.refund("ch_missing", key).status_code == 404


def test_partial_refunds_are_not_supported(client, reference):
    charge = make_charge(client, reference)

    response = client.refund(charge["id"], new_key(), body={"amount": 100})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "code": "parameter_unknown",
        "param": "amount",
        "message": response.json()["error"]["message"],
    }
    assert client.ledger(reference)["refunds"] == 0


def test_refund_needs_an_idempotency_key(client, reference):
    charge = make_charge(client, reference)

    response = client.post(f"/v1/charges/{charge['id']}/refunds", json={})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_missing"
