"""PaymentIntents: shapes, the state machine, declines, charges per attempt (docs.stripe.com/payments/paymentintents/lifecycle)."""

from __future__ import annotations

import threading

import pytest
import stripe
from provider_support import authorize, create_intent, key


def test_create_without_confirm_moves_no_money_and_answers_stripe_fields(client):
    intent = create_intent(client, 1500, currency="USD", payment_method="pm_card_visa", metadata={"payment_id": "p-1"})

    assert intent.id.startswith("pi_")
    assert intent.object == "payment_intent"
    assert (intent.status, intent.amount, intent.currency) == ("requires_confirmation", 1500, "usd")
    assert (intent.amount_capturable, intent.amount_received, intent.latest_charge) == (0, 0, None)
    assert intent.livemode is False
    assert intent.metadata.to_dict() == {"payment_id": "p-1"}
    assert intent.payment_method.startswith("pm_") and intent.payment_method != "pm_card_visa"
    assert list(client.v1.charges.list(params={"payment_intent": intent.id})) == []
    assert client.v1.payment_intents.retrieve(intent.id).to_dict() == intent.to_dict()


def test_create_without_payment_method_requires_one(client):
    assert create_intent(client).status == "requires_payment_method"


def test_manual_capture_authorizes_then_capture_takes_the_money(client):
    intent = authorize(client, 2500)

    assert (intent.status, intent.amount_capturable, intent.amount_received) == ("requires_capture", 2500, 0)
    assert isinstance(intent.latest_charge, str) and intent.latest_charge.startswith("ch_")
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.status, charge.captured, charge.amount_captured, charge.payment_intent) == (
        "succeeded",
        False,
        0,
        intent.id,
    )

    captured = client.v1.payment_intents.capture(intent.id, options={"idempotency_key": key("capture")})

    assert (captured.status, captured.amount_capturable, captured.amount_received) == ("succeeded", 0, 2500)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.captured, charge.amount_captured, charge.amount_refunded) == (True, 2500, 0)


def test_partial_capture_releases_the_rest(client):
    intent = authorize(client, 3000)

    captured = client.v1.payment_intents.capture(
        intent.id, params={"amount_to_capture": 1800}, options={"idempotency_key": key("capture")}
    )

    assert (captured.status, captured.amount_received) == ("succeeded", 1800)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_captured, charge.amount_refunded, charge.refunded) == (1800, 1200, False)


def test_capture_more_than_authorized_is_refused(client):
    intent = authorize(client, 3000)

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.capture(
            intent.id, params={"amount_to_capture": 3001}, options={"idempotency_key": key("capture")}
        )

    assert raised.value.http_status == 400
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_automatic_capture_succeeds_at_confirm(client):
    intent = create_intent(client, 1200, payment_method="pm_card_mastercard", confirm=True)

    assert (intent.status, intent.amount_received, intent.amount_capturable) == ("succeeded", 1200, 0)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.captured, charge.paid, charge.amount_captured) == (True, True, 1200)


def test_cancel_in_requires_capture_releases_the_authorization(client):
    intent = authorize(client, 4000)

    canceled = client.v1.payment_intents.cancel(
        intent.id, params={"cancellation_reason": "abandoned"}, options={"idempotency_key": key("cancel")}
    )

    assert (canceled.status, canceled.cancellation_reason, canceled.amount_capturable) == ("canceled", "abandoned", 0)
    assert canceled.canceled_at is not None
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.captured, charge.refunded, charge.amount_refunded) == (False, True, 4000)


def unexpected_state(call) -> stripe.InvalidRequestError:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        call()
    error = raised.value
    assert error.http_status == 400
    assert error.code == "payment_intent_unexpected_state"
    return error


def test_canceled_intent_refuses_confirm_capture_and_a_second_cancel(client):
    intent = create_intent(client, 2100, payment_method="pm_card_visa", capture_method="manual")
    client.v1.payment_intents.cancel(intent.id, options={"idempotency_key": key("cancel")})

    for call in (
        lambda: client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": key("confirm")}),
        lambda: client.v1.payment_intents.capture(intent.id, options={"idempotency_key": key("capture")}),
        lambda: client.v1.payment_intents.cancel(intent.id, options={"idempotency_key": key("cancel")}),
    ):
        error = unexpected_state(call)
        assert error.error.payment_intent.status == "canceled"
    assert list(client.v1.charges.list(params={"payment_intent": intent.id})) == []


def test_succeeded_intent_cannot_be_canceled_confirmed_or_captured_again(client):
    intent = create_intent(client, 2200, payment_method="pm_card_visa", confirm=True)

    for call in (
        lambda: client.v1.payment_intents.cancel(intent.id, options={"idempotency_key": key("cancel")}),
        lambda: client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": key("confirm")}),
        lambda: client.v1.payment_intents.capture(intent.id, options={"idempotency_key": key("capture")}),
    ):
        assert unexpected_state(call).error.payment_intent.status == "succeeded"


def test_capture_needs_requires_capture(client):
    intent = create_intent(client, 2300, payment_method="pm_card_visa", capture_method="manual")

    error = unexpected_state(
        lambda: client.v1.payment_intents.capture(intent.id, options={"idempotency_key": key("capture")})
    )

    assert error.error.payment_intent.status == "requires_confirmation"


@pytest.mark.parametrize(
    ("pm", "decline_code"),
    [("pm_card_chargeDeclined", "generic_decline"), ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds")],
)
def test_decline_is_a_402_card_error_and_the_intent_can_be_retried(client, pm, decline_code):
    intent = create_intent(client, 2400, payment_method=pm, capture_method="manual")

    with pytest.raises(stripe.CardError) as raised:
        client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": key("confirm")})

    error = raised.value
    assert error.http_status == 402
    assert (error.code, error.error.decline_code, error.error.type) == ("card_declined", decline_code, "card_error")
    assert error.error.payment_intent.id == intent.id
    assert error.error.payment_intent.status == "requires_payment_method"
    declined = client.v1.payment_intents.retrieve(intent.id)
    assert declined.status == "requires_payment_method"
    assert declined.last_payment_error.decline_code == decline_code

    retried = client.v1.payment_intents.confirm(
        intent.id, params={"payment_method": "pm_card_visa"}, options={"idempotency_key": key("confirm")}
    )

    assert retried.status == "requires_capture"
    charges = list(client.v1.charges.list(params={"payment_intent": intent.id}))
    assert [charge.status for charge in charges] == ["succeeded", "failed"]  # one per attempt, newest first
    assert charges[1].failure_code == "card_declined"


def test_off_session_payment_needing_authentication_is_declined(client):
    customer = client.v1.customers.create(params={"email": "sca@example.com"}, options={"idempotency_key": key()})
    method = client.v1.payment_methods.attach(
        "pm_card_authenticationRequired", params={"customer": customer.id}, options={"idempotency_key": key()}
    )
    intent = create_intent(client, 2600, customer=customer.id, payment_method=method.id, capture_method="manual")

    with pytest.raises(stripe.CardError) as raised:
        client.v1.payment_intents.confirm(
            intent.id, params={"off_session": True}, options={"idempotency_key": key("confirm")}
        )

    assert raised.value.code == "authentication_required"
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"


def test_on_session_payment_needing_authentication_requires_action(client):
    intent = create_intent(client, 2700, payment_method="pm_card_authenticationRequired", capture_method="manual")

    confirmed = client.v1.payment_intents.confirm(
        intent.id, params={"return_url": "https://binpay.example/return"}, options={"idempotency_key": key("confirm")}
    )

    assert confirmed.status == "requires_action"
    assert confirmed.next_action is not None
    canceled = client.v1.payment_intents.cancel(intent.id, options={"idempotency_key": key("cancel")})
    assert canceled.status == "canceled"


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"amount": 2000, "currency": "usd", "colour": "red"}, "parameter_unknown", "colour"),
        ({"currency": "usd"}, "parameter_missing", "amount"),
        ({"amount": 49, "currency": "usd"}, "amount_too_small", "amount"),
        (
            {"amount": 2000, "currency": "usd", "payment_method": "pm_does_not_exist"},
            "resource_missing",
            "payment_method",
        ),
    ],
)
def test_invalid_create_is_a_400_naming_the_param(client, params, code, param):
    idempotency_key = key("invalid")

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key})

    assert (raised.value.http_status, raised.value.code, raised.value.param) == (400, code, param)


def test_unknown_intent_is_404_resource_missing(client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.retrieve("pi_does_not_exist")

    assert (raised.value.http_status, raised.value.code) == (404, "resource_missing")


def test_a_racing_capture_and_cancel_exclude_each_other(provider, client):
    intent = authorize(client, 2800)
    barrier, outcomes = threading.Barrier(2), {}

    def run(name: str, call) -> None:
        barrier.wait()
        try:
            outcomes[name] = call(intent.id, options={"idempotency_key": key(name)})
        except stripe.StripeError as error:
            outcomes[name] = error

    threads = [
        threading.Thread(target=run, args=("capture", client.v1.payment_intents.capture)),
        threading.Thread(target=run, args=("cancel", client.v1.payment_intents.cancel)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    [winner] = [name for name, outcome in outcomes.items() if not isinstance(outcome, stripe.StripeError)]
    [loser] = [outcome for outcome in outcomes.values() if isinstance(outcome, stripe.StripeError)]
    # Stripe may refuse the concurrent loser with a 429 of its limiters instead (docs.stripe.com/rate-limits);
    # the sandbox serializes both and refuses the state.
    if not (provider.kind == "stripe" and isinstance(loser, stripe.RateLimitError)):
        assert (loser.http_status, loser.code) == (400, "payment_intent_unexpected_state")
    final = client.v1.payment_intents.retrieve(intent.id)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    if winner == "capture":
        assert (final.status, charge.captured, charge.refunded) == ("succeeded", True, False)
    else:
        assert (final.status, charge.captured, charge.refunded) == ("canceled", False, True)
