"""Lists (https://docs.stripe.com/api/pagination), customers, payment methods and the events list."""

from __future__ import annotations

import pytest
import stripe
from provider_support import create_intent, key, wait_for


@pytest.fixture
def customer(client) -> stripe.Customer:
    return client.v1.customers.create(params={"email": "lists@example.com"}, options={"idempotency_key": key()})


def test_attaching_a_test_card_makes_a_payment_method_of_the_customer(client, customer):
    method = client.v1.payment_methods.attach(
        "pm_card_visa", params={"customer": customer.id}, options={"idempotency_key": key()}
    )

    assert method.id.startswith("pm_") and method.id != "pm_card_visa"
    assert (method.customer, method.type, method.card.last4) == (customer.id, "card", "4242")
    updated = client.v1.customers.update(
        customer.id,
        params={"invoice_settings": {"default_payment_method": method.id}},
        options={"idempotency_key": key()},
    )
    assert updated.invoice_settings.default_payment_method == method.id
    intent = create_intent(client, 2000, customer=customer.id, payment_method=method.id, capture_method="manual")
    confirmed = client.v1.payment_intents.confirm(
        intent.id, params={"off_session": True}, options={"idempotency_key": key()}
    )
    assert (confirmed.status, confirmed.customer, confirmed.payment_method) == (
        "requires_capture",
        customer.id,
        method.id,
    )


def test_an_unknown_payment_method_is_400_resource_missing(client, customer):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_methods.attach(
            "pm_card_no_such_card", params={"customer": customer.id}, options={"idempotency_key": key()}
        )

    assert raised.value.code == "resource_missing"


def test_list_by_customer_newest_first_with_pages(client, customer):
    intents = [create_intent(client, 1000 + n, customer=customer.id) for n in range(3)]

    page = client.v1.payment_intents.list(params={"customer": customer.id, "limit": 2})

    assert [i.id for i in page.data] == [intents[2].id, intents[1].id]
    assert page.has_more is True
    rest = client.v1.payment_intents.list(params={"customer": customer.id, "limit": 2, "starting_after": intents[1].id})
    assert [i.id for i in rest.data] == [intents[0].id]
    assert rest.has_more is False
    created = client.v1.payment_intents.list(
        params={"customer": customer.id, "created": {"gte": intents[0].created, "lte": intents[2].created}}
    )
    assert {i.id for i in created.data} == {i.id for i in intents}


def test_events_of_a_payment(client):
    intent = create_intent(client, 2500, payment_method="pm_card_visa", capture_method="manual")
    client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": key()})
    client.v1.payment_intents.capture(intent.id, options={"idempotency_key": key()})

    def types() -> list[str]:
        events = client.v1.events.list(params={"limit": 30})
        return [
            e.type
            for e in events
            if getattr(e.data.object, "payment_intent", None) == intent.id or e.data.object.id == intent.id
        ]

    seen = wait_for(lambda: "payment_intent.succeeded" in (t := types()) and t)
    for expected in (
        "payment_intent.created",
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
        "charge.succeeded",
        "charge.captured",
    ):
        assert expected in seen
    [succeeded] = [
        e
        for e in client.v1.events.list(params={"type": "payment_intent.succeeded", "limit": 30})
        if e.data.object.id == intent.id
    ]
    assert succeeded.object == "event"
    assert client.v1.events.retrieve(succeeded.id).data.object.status == "succeeded"
