"""Idempotency as https://docs.stripe.com/idempotency documents it, and the faults only the sandbox can make."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import stripe
from conftest import SECOND_SANDBOX_KEY
from provider_support import create_intent, key, wait_for

PARAMS = {"amount": 2000, "currency": "usd", "payment_method_types": ["card"], "payment_method": "pm_card_visa"}


def test_same_key_same_params_replays_the_first_answer(client):
    idempotency_key = key("create")
    first = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": idempotency_key})

    again = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": idempotency_key})

    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert first.last_response.headers.get("Idempotent-Replayed") in (None, "false")
    assert again.last_response.headers.get("Request-Id", "").startswith("req_")


def test_same_key_other_params_is_a_400_idempotency_error(client):
    idempotency_key = key("create")
    client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": idempotency_key})

    with pytest.raises(stripe.IdempotencyError) as raised:
        client.v1.payment_intents.create(
            params={**PARAMS, "amount": 2001}, options={"idempotency_key": idempotency_key}
        )

    assert raised.value.http_status == 400
    assert raised.value.error.type == "idempotency_error"


def test_a_declined_confirm_is_saved_and_replayed(client):
    intent = create_intent(client, 2000, payment_method="pm_card_chargeDeclined", capture_method="manual")
    idempotency_key = key("confirm")
    with pytest.raises(stripe.CardError) as first:
        client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key})

    with pytest.raises(stripe.CardError) as again:
        client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key})

    assert again.value.headers.get("Idempotent-Replayed") == "true"
    assert again.value.json_body == first.value.json_body
    assert len(list(client.v1.charges.list(params={"payment_intent": intent.id}))) == 1


def test_a_request_that_fails_validation_is_not_saved(client):
    idempotency_key = key("create")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params={**PARAMS, "amount": 10}, options={"idempotency_key": idempotency_key})

    intent = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": idempotency_key})

    assert intent.status == "requires_confirmation"
    assert intent.last_response.headers.get("Idempotent-Replayed") in (None, "false")


@pytest.mark.sandbox_only(reason="needs a second secret key of the same account")
def test_keys_are_scoped_per_api_key(provider, client):
    idempotency_key = key("create")
    first = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": idempotency_key})

    other = provider.client(api_key=SECOND_SANDBOX_KEY).v1.payment_intents.create(
        params={**PARAMS, "amount": 2500}, options={"idempotency_key": idempotency_key}
    )

    assert other.id != first.id
    assert other.amount == 2500


@pytest.mark.sandbox_only(reason="a concurrent duplicate needs a request held in flight (magic 57)")
def test_a_concurrent_duplicate_is_a_409_while_the_first_executes(provider, client):
    intent = create_intent(client, 2057, payment_method="pm_card_visa", capture_method="manual")
    idempotency_key = key("confirm")
    barrier, outcomes = threading.Barrier(2), []

    def confirm() -> None:
        barrier.wait()
        try:
            outcomes.append(client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key}))
        except stripe.APIError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=confirm) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    [conflict] = [o for o in outcomes if isinstance(o, stripe.APIError)]
    [winner] = [o for o in outcomes if not isinstance(o, stripe.APIError)]
    # The SDK builds a plain APIError for a 409 (no .code): the code is in .error.code.
    assert (conflict.http_status, conflict.error.code) == (409, "idempotency_key_in_use")
    assert winner.status == "requires_capture"
    later = client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key})
    assert later.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(list(client.v1.charges.list(params={"payment_intent": intent.id}))) == 1


@pytest.mark.sandbox_only(reason="key pruning needs the sandbox clock")
def test_a_key_older_than_24_hours_is_pruned_and_the_retry_is_a_new_request(provider, client):
    idempotency_key = key("create")
    first = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": idempotency_key})
    provider.advance_clock(23 * 3600)
    assert client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": idempotency_key}).id == first.id

    provider.advance_clock(3600)
    second = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": idempotency_key})

    assert second.id != first.id
    assert second.last_response.headers.get("Idempotent-Replayed") in (None, "false")


@pytest.mark.sandbox_only(reason="a 500 is a fault Stripe does not produce on demand")
def test_a_create_500_with_the_effect_applied_is_replayed_forever(provider, client):
    payment_id = key("pay")
    params = {**PARAMS, "amount": 2058, "metadata": {"payment_id": payment_id}}
    idempotency_key = key("create")

    for _ in range(2):
        with pytest.raises(stripe.APIError) as raised:
            client.v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key})
        assert raised.value.http_status == 500

    assert raised.value.headers.get("Idempotent-Replayed") == "true"
    # The intent exists although the client never learned its id: search finds it, after the lag.
    provider.advance_clock(61)
    [found] = client.v1.payment_intents.search(params={"query": f"metadata['payment_id']:'{payment_id}'"}).data
    assert found.status == "requires_confirmation"
    assert [r["fault"] for r in provider.access_log() if r.get("idempotency_key") == idempotency_key] == [
        "saved_error_applied",
        None,
    ]


@pytest.mark.sandbox_only(reason="a 500 is a fault Stripe does not produce on demand")
@pytest.mark.parametrize(("amount", "applied"), [(2059, True), (2060, False)])
def test_a_confirm_500_is_saved_with_or_without_the_effect(provider, client, amount, applied):
    intent = create_intent(client, amount, payment_method="pm_card_visa", capture_method="manual")
    idempotency_key = key("confirm")

    for _ in range(2):
        with pytest.raises(stripe.APIError) as raised:
            client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key})
        assert raised.value.http_status == 500

    status = client.v1.payment_intents.retrieve(intent.id).status
    assert status == ("requires_capture" if applied else "requires_confirmation")
    if not applied:
        # A new key is a new request: it executes.
        confirmed = client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": key("confirm")})
        assert confirmed.status == "requires_capture"


@pytest.mark.sandbox_only(reason="an outage is a fault Stripe does not produce on demand")
def test_a_503_before_execution_is_not_saved(provider, client):
    intent = create_intent(client, 2053, payment_method="pm_card_visa", capture_method="manual")
    idempotency_key = key("confirm")
    with pytest.raises(stripe.APIError) as raised:
        client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key})
    assert raised.value.http_status == 503
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_confirmation"

    confirmed = client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key})

    assert confirmed.status == "requires_capture"
    assert confirmed.last_response.headers.get("Idempotent-Replayed") in (None, "false")


@pytest.mark.sandbox_only(reason="a lost response is a fault Stripe does not produce on demand")
def test_a_lost_response_applied_the_effect_and_the_retry_replays_it(provider, client):
    intent = create_intent(client, 2055, payment_method="pm_card_visa", capture_method="manual")
    idempotency_key = key("confirm")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key})
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"

    replay = client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key})

    assert replay.last_response.headers.get("Idempotent-Replayed") == "true"
    assert [r["response_dropped"] for r in provider.access_log() if r.get("idempotency_key") == idempotency_key] == [
        True,
        False,
    ]


@pytest.mark.sandbox_only(reason="a hang is a fault Stripe does not produce on demand")
def test_a_hang_past_the_read_timeout_does_nothing(provider, client):
    intent = create_intent(client, 2054, payment_method="pm_card_visa", capture_method="manual")
    idempotency_key = key("confirm")
    with pytest.raises(stripe.APIConnectionError):
        provider.client(timeout=0.3).v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key})

    # The hung attempt ends with a 504 (SANDBOX_TIMEOUT_SECONDS=1.5) having done nothing.
    wait_for(
        lambda: any(
            r.get("fault") == "timeout" for r in provider.access_log() if r.get("idempotency_key") == idempotency_key
        )
    )
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_confirmation"
    assert (
        client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key}).status
        == "requires_capture"
    )


@pytest.mark.sandbox_only(reason="knobs are the sandbox's")
def test_saved_error_knob_saves_a_500_on_any_write(provider, client, knobs):
    intent = create_intent(client, 2000, payment_method="pm_card_visa", capture_method="manual")
    knobs(sandbox_saved_error_rate=1)
    idempotency_key = key("confirm")
    with pytest.raises(stripe.APIError):
        client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key})
    knobs(sandbox_saved_error_rate=0)

    with pytest.raises(stripe.APIError) as replay:
        client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": idempotency_key})

    assert (replay.value.http_status, replay.value.headers.get("Idempotent-Replayed")) == (500, "true")
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_confirmation"


def test_requests_without_the_right_key_are_401(provider):
    with pytest.raises(stripe.AuthenticationError):
        provider.client(api_key="sk_test_wrong_key_000000").v1.payment_intents.list()


@pytest.mark.sandbox_only(reason="raw HTTP against the sandbox's own URL")
def test_the_fault_log_names_every_fault(provider, client):
    """Each fault answer is one access line with its kind, which the chaos suite counts."""
    intent = create_intent(client, 2056, payment_method="pm_card_visa", capture_method="manual")
    answer = requests.post(
        f"{provider.base_url}/v1/payment_intents/{intent.id}/confirm",
        headers={"Authorization": f"Bearer {provider.api_key}", "Idempotency-Key": key("confirm")},
        timeout=10,
    )
    assert answer.status_code == 503
    time.sleep(0)  # the access line is written before the response is sent
    [line] = [r for r in provider.access_log() if r.get("path", "").endswith(f"{intent.id}/confirm")]
    assert (line["status"], line["fault"]) == (503, "unavailable")
