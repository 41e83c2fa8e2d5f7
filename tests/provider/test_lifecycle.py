"""What takes time on Stripe, on the sandbox clock: authorization expiry, search lag, `processing`."""

from __future__ import annotations

import pytest
import stripe
from provider_support import authorize, create_intent, key

pytestmark = pytest.mark.sandbox_only(reason="needs the sandbox clock or its processing knob")
DAY = 24 * 3600


def test_an_uncaptured_intent_is_canceled_seven_days_after_creation(provider, client):
    intent = authorize(client, 3300)
    provider.advance_clock(7 * DAY - 120)
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"

    provider.advance_clock(121)

    expired = client.v1.payment_intents.retrieve(intent.id)
    assert (expired.status, expired.cancellation_reason, expired.amount_capturable) == ("canceled", "automatic", 0)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.captured, charge.refunded) == (False, True)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.capture(intent.id, options={"idempotency_key": key("capture")})
    assert raised.value.code == "payment_intent_unexpected_state"
    types = [e.type for e in client.v1.events.list(params={"limit": 10}) if e.data.object.id in (intent.id, charge.id)]
    assert types[:2] == ["payment_intent.canceled", "charge.expired"]


def test_search_is_eventually_consistent(provider, client):
    payment_id = key("pay")
    intent = create_intent(client, 3400, metadata={"payment_id": payment_id})
    query = {"query": f"metadata['payment_id']:'{payment_id}'"}

    assert client.v1.payment_intents.search(params=query).data == []
    assert client.v1.payment_intents.retrieve(intent.id).id == intent.id  # retrieve by id is consistent

    provider.advance_clock(61)

    [found] = client.v1.payment_intents.search(params=query).data
    assert found.id == intent.id


def test_search_refuses_a_query_it_cannot_run(client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.search(params={"query": "description~'x'"})

    assert raised.value.param == "query"


def test_processing_refuses_cancel_and_capture_then_settles(provider, client, knobs):
    knobs(sandbox_processing_seconds=600)
    intent = create_intent(client, 3462, payment_method="pm_card_visa", capture_method="manual")

    confirmed = client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": key("confirm")})

    assert confirmed.status == "processing"
    assert client.v1.charges.retrieve(confirmed.latest_charge).status == "pending"
    for call in (
        lambda: client.v1.payment_intents.cancel(intent.id, options={"idempotency_key": key("cancel")}),
        lambda: client.v1.payment_intents.capture(intent.id, options={"idempotency_key": key("capture")}),
        lambda: client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": key("confirm")}),
    ):
        with pytest.raises(stripe.InvalidRequestError) as raised:
            call()
        assert raised.value.code == "payment_intent_unexpected_state"
    provider.advance_clock(600)
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"
    assert client.v1.charges.retrieve(confirmed.latest_charge).status == "succeeded"


def test_processing_knob_holds_any_confirm(provider, client, knobs):
    knobs(sandbox_processing_rate=1, sandbox_processing_seconds=3600)
    intent = create_intent(client, 3500, payment_method="pm_card_visa", confirm=True)
    knobs(sandbox_processing_rate=0)
    assert intent.status == "processing"

    provider.advance_clock(3600)

    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
