"""The gateway port: every conversation BinPay has with its payment provider goes through it.

The processor, the reconciler, the sweeper, the outcome consumer, operators, the console and the
invariant checker all speak to the provider through `PaymentGateway` (docs/protocol.md). Its one
adapter, `StripeGateway` (stripe_api.py), speaks Stripe's PaymentIntents API through the official
SDK; the sandbox gateway (gateway/) is a model of the same API, so one adapter serves both. A
second provider would be a second class with these methods.

Results are sorted into what the saga can act on:

- an `Intent` or a `Refund`: the provider's answer, definitive for the object's state at that moment
  (a declined confirm is an Intent in `requires_payment_method` with its `decline_code`);
- `GatewayRejected`: the provider refused the request for good (invalid parameters, an unknown id);
  `IntentInWrongState` carries the intent as retrieved after a refusal for its state;
- `GatewayAmbiguous`: no usable answer (timeout, connection error, 5xx, 409, 429, 401/403): the
  call may or may not have taken effect. Never a decline, never a reason to roll back.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


class IntentStatus(enum.StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


class RefundStatus(enum.StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True)
class PaymentRef:
    """What the provider needs to know about a payment: amounts in minor units, ISO 4217 upper case."""

    payment_id: str
    amount: int
    currency: str
    payment_method: str
    customer: str | None = None


@dataclass(frozen=True)
class Intent:
    id: str
    status: IntentStatus
    amount: int
    currency: str  # upper case, as BinPay writes currencies
    payment_id: str | None  # metadata.payment_id
    charge_id: str | None  # latest_charge
    decline_code: str | None  # last_payment_error: decline_code, else code
    cancellation_reason: str | None
    created: int

    @property
    def captured(self) -> int:
        """What the intent took (minor units): its amount once it succeeded, else nothing."""
        return self.amount if self.status is IntentStatus.SUCCEEDED else 0

    @property
    def declined(self) -> bool:
        """A confirm was declined and the intent waits for another payment method."""
        return self.status is IntentStatus.REQUIRES_PAYMENT_METHOD and self.decline_code is not None

    def matches(self, payment: PaymentRef) -> bool:
        return (self.amount, self.currency) == (payment.amount, payment.currency)


@dataclass(frozen=True)
class Refund:
    id: str
    intent_id: str | None
    charge_id: str | None
    amount: int
    status: RefundStatus
    failure_reason: str | None
    created: int = 0

    @property
    def final(self) -> bool:
        return self.status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED)

    @property
    def gives_money_back(self) -> bool:
        """Accepted and not failed: pending or succeeded."""
        return self.status in (RefundStatus.PENDING, RefundStatus.SUCCEEDED)


@dataclass(frozen=True)
class WebhookEvent:
    """A verified provider event: never proof, only a reason to look at `payment_id` again."""

    id: str
    type: str
    payment_id: str | None
    intent_id: str | None
    charge_id: str | None = None


# The provider events BinPay's webhook endpoint subscribes to: the ones that can mean money stands or
# comes back where the saga did not expect it (a late or second success, a refund that changed or
# failed). Created, canceled and failed intents move no money; the saga's own calls answer for them.
WEBHOOK_EVENTS = ("payment_intent.succeeded", "charge.refund.updated", "refund.updated", "refund.failed")


class GatewayError(Exception):
    """Base of the port's errors."""


class GatewayAmbiguous(GatewayError):
    """No usable answer: the call may or may not have taken effect. Resolve by retrieving the object.

    `replayed`: the answer was a saved response replayed under the idempotency key (Stripe saves 5xx
    answers once execution began): sending the same key again can only replay it.
    """

    def __init__(self, message: str, *, replayed: bool = False) -> None:
        super().__init__(message)
        self.replayed = replayed


class GatewayRejected(GatewayError):
    """The provider refused the request for good."""

    def __init__(self, message: str, *, status: int | None, code: str | None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param  # the request parameter the provider names as the cause, if any


class IntentInWrongState(GatewayRejected):
    """The intent's state forbids the operation (payment_intent_unexpected_state); `intent` is its state now."""

    def __init__(self, message: str, *, intent: Intent) -> None:
        super().__init__(message, status=400, code="payment_intent_unexpected_state")
        self.intent = intent


class WebhookInvalid(GatewayError):
    """A webhook whose signature does not verify, or whose body is not an event."""


class PaymentGateway(Protocol):
    """The port (docs/protocol.md §1). Every POST carries BinPay's own idempotency key (`key()`)."""

    def create_intent(self, payment: PaymentRef, *, attempt: int = 1) -> Intent:
        """Create the payment's intent, unconfirmed: it moves no money."""

    def confirm_intent(self, intent_id: str, payment: PaymentRef, *, attempt: int = 1) -> Intent:
        """Confirm: the money moves (`succeeded`), or the intent comes back declined (or `processing`)."""

    def cancel_intent(self, intent_id: str, *, attempt: int = 1) -> Intent:
        """Cancel: after success no money can land through the intent. IntentInWrongState once it succeeded."""

    def retrieve_intent(self, intent_id: str) -> Intent:
        """The intent's state now (strongly consistent)."""

    def refund_intent(self, intent_id: str, *, payment_id: str, attempt: int = 1) -> Refund:
        """Refund what the intent's charge captured (the rest of it, if partly refunded)."""

    def retrieve_refund(self, refund_id: str) -> Refund: ...

    def refunds_of(self, intent_id: str) -> list[Refund]:
        """Every refund of the intent, oldest first."""

    def search_intents(self, payment_id: str) -> list[Intent]:
        """Intents whose metadata names the payment. Eventually consistent: never proof of absence."""

    def list_intents(self, *, created_gte: int | None = None) -> Iterator[Intent]:
        """Every intent of the account, newest first (the invariant checker's scan)."""

    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        """Verify a webhook's signature and read it; WebhookInvalid otherwise."""


def key(operation: str, object_id: str, attempt: int = 1) -> str:
    """BinPay's idempotency key: deterministic per operation and object, `-<n>` from the second attempt on."""
    return f"{operation}-{object_id}" if attempt <= 1 else f"{operation}-{object_id}-{attempt}"
