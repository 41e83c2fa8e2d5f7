"""Refunds (https://docs.stripe.com/refunds): bounded by the captured amount, pending, failing later."""

from __future__ import annotations

import pytest
import stripe
from provider_support import authorize, create_intent, key, wait_for


def paid(client, amount: int = 5000, pm: str = "pm_card_visa") -> stripe.PaymentIntent:
    return create_intent(client, amount, payment_method=pm, confirm=True)


def refund(client, **params) -> stripe.Refund:
    return client.v1.refunds.create(params=params, options={"idempotency_key": key("refund")})


def test_partial_refunds_up_to_the_captured_amount_then_no_more(client):
    intent = paid(client, 5000)

    first = refund(client, payment_intent=intent.id, amount=2000, metadata={"payment_id": "p-r"})
    second = refund(client, payment_intent=intent.id)  # the rest

    assert (first.object, first.amount, first.status, first.payment_intent) == ("refund", 2000, "succeeded", intent.id)
    assert first.charge == intent.latest_charge
    assert second.amount == 3000
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (5000, True)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        refund(client, payment_intent=intent.id, amount=1)
    assert (raised.value.http_status, raised.value.code) == (400, "charge_already_refunded")
    listed = client.v1.refunds.list(params={"payment_intent": intent.id})
    assert sorted(r.id for r in listed) == sorted([first.id, second.id])


def test_a_refund_above_the_unrefunded_amount_is_refused(client):
    intent = paid(client, 5000)
    refund(client, payment_intent=intent.id, amount=4000)

    with pytest.raises(stripe.InvalidRequestError) as raised:
        refund(client, charge=intent.latest_charge, amount=1001)

    assert (raised.value.http_status, raised.value.code) == (400, "amount_too_large")
    assert client.v1.charges.retrieve(intent.latest_charge).amount_refunded == 4000


def test_a_refund_of_an_uncaptured_intent_is_refused_cancel_it_instead(client):
    intent = authorize(client, 3000)

    for params in ({"payment_intent": intent.id}, {"charge": intent.latest_charge}):
        with pytest.raises(stripe.InvalidRequestError) as raised:
            refund(client, **params)
        assert raised.value.http_status == 400

    assert list(client.v1.refunds.list(params={"payment_intent": intent.id})) == []
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_a_refund_replays_under_its_key(client):
    intent = paid(client, 3000)
    idempotency_key = key("refund")

    first = client.v1.refunds.create(params={"payment_intent": intent.id}, options={"idempotency_key": idempotency_key})
    again = client.v1.refunds.create(params={"payment_intent": intent.id}, options={"idempotency_key": idempotency_key})

    assert again.id == first.id
    assert client.v1.charges.retrieve(intent.latest_charge).amount_refunded == 3000


def test_the_refund_fail_test_card_refund_succeeds_first_then_fails(client):
    """4000000000005126 / pm_card_refundFail: "the refund will appear to be successful at first and will only
    have the failed status on subsequent fetches" (docs.stripe.com/testing)."""
    intent = paid(client, 4000, pm="pm_card_refundFail")

    created = refund(client, payment_intent=intent.id)

    assert created.status in ("succeeded", "pending")
    failed = wait_for(lambda: (r := client.v1.refunds.retrieve(created.id)).status == "failed" and r, timeout=120)
    assert failed.failure_reason == "expired_or_canceled_card"
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (0, False)


@pytest.mark.sandbox_only(reason="magic amounts are the sandbox's")
@pytest.mark.parametrize(("amount", "final", "refunded"), [(4063, "failed", 0), (4064, "succeeded", 4064)])
def test_magic_refunds_answer_pending_then_settle(provider, client, amount, final, refunded):
    intent = paid(client, amount)

    created = refund(client, payment_intent=intent.id)

    assert (created.status, created.pending_reason) == ("pending", "processing")
    assert client.v1.charges.retrieve(intent.latest_charge).amount_refunded == amount
    settled = wait_for(lambda: (r := client.v1.refunds.retrieve(created.id)).status != "pending" and r)
    assert settled.status == final
    assert client.v1.charges.retrieve(intent.latest_charge).amount_refunded == refunded
    events = client.v1.events.list(params={"type": "refund.updated", "limit": 20})
    [update] = [e for e in events if e.data.object.id == created.id]
    assert update.data.previous_attributes.status == "pending"


@pytest.mark.sandbox_only(reason="knobs are the sandbox's")
def test_refund_failure_knob_fails_refunds_after_pending(provider, client, knobs):
    intent = paid(client, 3000)
    knobs(sandbox_refund_failure_rate=1)

    created = refund(client, payment_intent=intent.id)

    assert created.status == "pending"
    assert wait_for(lambda: client.v1.refunds.retrieve(created.id).status == "failed")
    # The money came back: it can be refunded again.
    knobs(sandbox_refund_failure_rate=0)
    assert refund(client, payment_intent=intent.id).status == "succeeded"
