"""Magic amounts 53-57 against a real gateway process (SANDBOX_TIMEOUT_SECONDS=1.5 there)."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from .conftest import new_key

HANG_SECONDS = 1.5  # the shared gateway's SANDBOX_TIMEOUT_SECONDS
CLIENT_READ_TIMEOUT = 0.3


def test_53_answers_503_on_the_first_attempt_then_succeeds(client, reference):
    key = new_key()

    first = client.charge(1053, reference, key)
    assert first.status_code == 503
    assert first.json()["error"] == {
        "type": "api_error",
        "code": "service_unavailable",
        "message": first.json()["error"]["message"],
    }
    assert client.ledger(reference)["charges_succeeded"] == 0

    retry = client.charge(1053, reference, key)
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert client.ledger(reference)["charges_succeeded"] == 1


def test_53_fails_once_per_key_not_once_per_amount(client, reference):
    assert client.charge(53, reference, new_key()).status_code == 503
    assert client.charge(53, reference, new_key()).status_code == 503


def test_54_hangs_past_the_client_timeout_without_charging_then_the_retry_succeeds(client, reference):
    key = new_key()

    with pytest.raises(requests.ReadTimeout):
        client.charge(1054, reference, key, timeout=CLIENT_READ_TIMEOUT)
    time.sleep(HANG_SECONDS + 0.5)  # let the hung request finish on the server
    assert client.ledger(reference)["charges_succeeded"] == 0

    retry = client.charge(1054, reference, key)
    assert retry.status_code == 201
    assert client.ledger(reference)["charges_succeeded"] == 1


def test_54_retry_while_the_first_attempt_still_hangs_is_served(client, reference):
    key = new_key()

    with pytest.raises(requests.ReadTimeout):
        client.charge(54, reference, key, timeout=CLIENT_READ_TIMEOUT)
    retry = client.charge(54, reference, key)

    assert retry.status_code == 201
    time.sleep(HANG_SECONDS)  # the hung attempt ends with a 504 and must not charge again
    assert client.ledger(reference)["charges_succeeded"] == 1


def test_54_hung_attempt_answers_504_when_the_client_waits(client, reference):
    response = client.charge(1054, reference, new_key(), timeout=HANG_SECONDS + 10)

    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert client.ledger(reference)["charges_succeeded"] == 0


def test_55_charge_is_made_but_the_response_is_lost(client, reference):
    key = new_key()

    with pytest.raises(requests.ConnectionError):
        client.charge(1055, reference, key)

    [charge] = client.charges(reference)
    assert charge["status"] == "succeeded"
    assert client.ledger(reference)["charges_succeeded"] == 1
    retry = client.charge(1055, reference, key)
    assert retry.status_code == 201
    assert retry.json() == charge
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert client.ledger(reference)["charges_succeeded"] == 1


def test_56_is_always_503_and_charges_nothing(client, reference):
    key = new_key()

    statuses = [client.charge(1056, reference, key).status_code for _ in range(3)]

    assert statuses == [503, 503, 503]
    assert client.ledger(reference)["charges_succeeded"] == 0


def test_57_answers_late_and_a_duplicate_meanwhile_is_told_the_key_is_in_use(client, reference):
    key = new_key()
    barrier = threading.Barrier(2)
    responses = []

    def charge():
        barrier.wait()
        responses.append(client.charge(1057, reference, key))

    threads = [threading.Thread(target=charge) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(response.status_code for response in responses) == [201, 409]
    [winner] = [response for response in responses if response.status_code == 201]
    [loser] = [response for response in responses if response.status_code == 409]
    assert loser.json()["error"]["code"] == "idempotency_key_in_use"
    later = client.charge(1057, reference, key)
    assert later.status_code == 201
    assert later.json() == winner.json()
    assert later.headers["Idempotent-Replayed"] == "true"
    assert client.ledger(reference)["charges_succeeded"] == 1
