"""Helpers of the provider-contract suite (tests/provider is on sys.path: pytest's rootdir import mode)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import stripe


def key(label: str = "k") -> str:
    return f"{label}-{uuid.uuid4()}"


def wait_for(check: Callable[[], object], *, timeout: float = 60.0, interval: float = 0.2):
    """Poll until ``check`` answers something truthy (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def create_intent(client: stripe.StripeClient, amount: int = 2000, **params) -> stripe.PaymentIntent:
    """A PaymentIntent with BinPay's two steps in mind: created unconfirmed unless ``confirm`` is given."""
    body = {"amount": amount, "currency": "usd", "payment_method_types": ["card"], **params}
    return client.v1.payment_intents.create(params=body, options={"idempotency_key": key("create")})


def authorize(
    client: stripe.StripeClient, amount: int = 2000, pm: str = "pm_card_visa", **params
) -> stripe.PaymentIntent:
    intent = create_intent(client, amount, payment_method=pm, capture_method="manual", **params)
    return client.v1.payment_intents.confirm(intent.id, options={"idempotency_key": key("confirm")})
