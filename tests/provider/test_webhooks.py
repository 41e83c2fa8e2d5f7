"""Signed webhook deliveries, verified with the SDK exactly as a receiver verifies Stripe's.

Sandbox only: Stripe's test mode cannot reach a receiver on this machine.
"""

from __future__ import annotations

import pytest
import stripe
from conftest import WEBHOOK_SECRET
from provider_support import create_intent, key, wait_for

pytestmark = pytest.mark.sandbox_only(reason="Stripe cannot deliver webhooks to a receiver on this machine")


def events_for(provider, object_id: str, event_type: str | None = None):
    deliveries = provider.webhooks.for_object(object_id)
    return [d for d in deliveries if event_type is None or d.event["type"] == event_type]


def test_deliveries_are_signed_as_stripe_signs_them(provider, client):
    intent = create_intent(client, 2000, payment_method="pm_card_visa", confirm=True)

    delivery = wait_for(lambda: events_for(provider, intent.id, "payment_intent.succeeded"))[0]

    event = stripe.Webhook.construct_event(delivery.body, delivery.headers["Stripe-Signature"], WEBHOOK_SECRET)
    assert (event.type, event.data.object.id, event.data.object.status) == (
        "payment_intent.succeeded",
        intent.id,
        "succeeded",
    )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.body, delivery.headers["Stripe-Signature"], "whsec_wrong")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.body + b" ", delivery.headers["Stripe-Signature"], WEBHOOK_SECRET)


def test_an_endpoint_made_through_the_api_gets_its_own_secret(provider, client, webhook_receiver):
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": webhook_receiver.url, "enabled_events": ["payment_intent.canceled"]},
        options={"idempotency_key": key()},
    )
    try:
        assert endpoint.secret.startswith("whsec_")
        assert "secret" not in client.v1.webhook_endpoints.retrieve(endpoint.id)
        intent = create_intent(client, 2000)
        client.v1.payment_intents.cancel(intent.id, options={"idempotency_key": key()})

        def verified_with_the_endpoint_secret():
            for delivery in events_for(provider, intent.id, "payment_intent.canceled"):
                try:
                    return stripe.Webhook.construct_event(
                        delivery.body, delivery.headers["Stripe-Signature"], endpoint.secret
                    )
                except stripe.SignatureVerificationError:
                    continue  # the environment's endpoint got it too, signed with its own secret
            return None

        assert wait_for(verified_with_the_endpoint_secret).type == "payment_intent.canceled"
    finally:
        client.v1.webhook_endpoints.delete(endpoint.id)


def test_a_failed_delivery_is_retried_until_it_is_accepted(provider, client, webhook_receiver):
    intent = create_intent(client, 2000)
    with webhook_receiver.lock:
        webhook_receiver.failures[f"{intent.id} payment_intent.canceled"] = [500, 503]
    client.v1.payment_intents.cancel(intent.id, options={"idempotency_key": key()})

    deliveries = wait_for(lambda: len(d := events_for(provider, intent.id, "payment_intent.canceled")) >= 3 and d)

    assert len(deliveries) == 3
    assert len({d.event["id"] for d in deliveries}) == 1
    assert webhook_receiver.failures[f"{intent.id} payment_intent.canceled"] == []


def test_duplicate_knob_delivers_an_event_twice(provider, client, knobs):
    knobs(sandbox_webhook_duplicate_rate=1)
    intent = create_intent(client, 2000)
    knobs(sandbox_webhook_duplicate_rate=0)

    deliveries = wait_for(lambda: len(d := events_for(provider, intent.id)) == 2 and d)

    assert deliveries[0].body == deliveries[1].body


def test_delay_knob_lets_a_later_event_overtake(provider, client, knobs):
    knobs(sandbox_webhook_delay_rate=1, sandbox_webhook_delay_ms=60_000)
    intent = create_intent(client, 2000, payment_method="pm_card_visa", capture_method="manual")
    knobs(sandbox_webhook_delay_rate=0)
    client.v1.payment_intents.cancel(intent.id, options={"idempotency_key": key()})
    wait_for(lambda: events_for(provider, intent.id))

    provider.advance_clock(61)

    wait_for(lambda: len(events_for(provider, intent.id)) == 2)
    assert [d.event["type"] for d in events_for(provider, intent.id)] == [
        "payment_intent.canceled",
        "payment_intent.created",
    ]


def test_drop_knob_loses_the_delivery_but_not_the_event(provider, client, knobs):
    knobs(sandbox_webhook_drop_rate=1)
    dropped = create_intent(client, 2000)
    knobs(sandbox_webhook_drop_rate=0)
    marker = create_intent(client, 2000)  # delivered after anything queued before it

    wait_for(lambda: events_for(provider, marker.id))

    assert events_for(provider, dropped.id) == []
    listed = client.v1.events.list(params={"type": "payment_intent.created", "limit": 10})
    assert dropped.id in [e.data.object.id for e in listed]
    faults = [r for r in provider.process.log_records() if r.get("fault") == "webhook_drop"]
    assert faults, "the drop is logged"
