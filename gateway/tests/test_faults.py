"""Magic amounts 53-57 on confirm against a real sandbox process (SANDBOX_TIMEOUT_SECONDS=1.5 there)."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from .conftest import new_key

HANG_SECONDS = 1.5  # the shared sandbox's SANDBOX_TIMEOUT_SECONDS
CLIENT_READ_TIMEOUT = 0.3


def test_53_answers_503_on_the_first_attempt_per_key_then_executes(client):
    intent = client.intent(1053)
    key = new_key()

    first = client.confirm(intent["id"], key)
    assert first.status_code == 503
    assert first.json()["error"]["type"] == "api_error"
    assert client.retrieve(intent["id"])["status"] == "requires_confirmation"

    retry = client.confirm(intent["id"], key)
    assert retry.status_code == 200
    assert "Idempotent-Replayed" not in retry.headers
    assert retry.json()["status"] == "requires_capture"


def test_54_hangs_past_the_client_timeout_without_effect(client):
    intent = client.intent(1054)
    key = new_key()

    with pytest.raises(requests.ReadTimeout):
        client.confirm(intent["id"], key, timeout=CLIENT_READ_TIMEOUT)
    time.sleep(HANG_SECONDS + 0.5)  # let the hung request finish on the server
    assert client.retrieve(intent["id"])["status"] == "requires_confirmation"
    assert client.charges(intent["id"]) == []

    assert client.confirm(intent["id"], key).status_code == 200


def test_54_hung_attempt_answers_504_when_the_client_waits(client):
    intent = client.intent(1054)

    response = client.confirm(intent["id"], timeout=HANG_SECONDS + 10)

    assert response.status_code == 504
    assert client.retrieve(intent["id"])["status"] == "requires_confirmation"


def test_55_applies_the_confirm_but_the_response_is_lost(client):
    intent = client.intent(1055)
    key = new_key()

    with pytest.raises(requests.ConnectionError):
        client.confirm(intent["id"], key)

    assert client.retrieve(intent["id"])["status"] == "requires_capture"
    retry = client.confirm(intent["id"], key)
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert len(client.charges(intent["id"])) == 1


def test_56_is_always_503_and_does_nothing(client):
    intent = client.intent(1056)
    key = new_key()

    statuses = [client.confirm(intent["id"], key).status_code for _ in range(3)]

    assert statuses == [503, 503, 503]
    assert client.charges(intent["id"]) == []


def test_57_holds_the_key_a_duplicate_meanwhile_is_409_and_a_cancel_meanwhile_wins(client):
    intent = client.intent(1057)
    key = new_key()
    answers: dict[str, requests.Response] = {}

    def confirm() -> None:
        answers["confirm"] = client.confirm(intent["id"], key)

    slow = threading.Thread(target=confirm)
    slow.start()
    time.sleep(0.3)  # the slow confirm now holds its key (SANDBOX_LATENCY_MS=1500)
    duplicate = client.confirm(intent["id"], key)
    cancel = client.post(f"/v1/payment_intents/{intent['id']}/cancel", key=new_key())
    slow.join()

    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "idempotency_key_in_use"
    assert cancel.status_code == 200
    # The cancel committed first: the waiting confirm then found the intent canceled.
    assert answers["confirm"].status_code == 400
    assert answers["confirm"].json()["error"]["code"] == "payment_intent_unexpected_state"
    assert client.charges(intent["id"]) == []
    assert client.confirm(intent["id"], key).headers["Idempotent-Replayed"] == "true"
