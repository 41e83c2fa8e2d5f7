"""PaymentIntents, charges, refunds, customers and payment methods: Stripe's documented rules.

Every function here runs inside the request's one ``BEGIN IMMEDIATE`` transaction (see
service.py), so what it reads cannot change under it: confirm, capture and cancel of one
intent are decided one after the other.

Sources (stored copies read through the search tool):
- Lifecycle, statuses: https://docs.stripe.com/payments/paymentintents/lifecycle and
  https://docs.stripe.com/payments/intents. Confirm: "If payment fails, the PaymentIntent will
  transition to the requires_payment_method status. If payment succeeds, ... succeeded (or
  requires_capture, if capture_method is set to manual)" (API reference, confirm).
- Cancel (https://docs.stripe.com/api/payment_intents/cancel): allowed in requires_payment_method,
  requires_capture, requires_confirmation, requires_action ("in rare cases, processing": the
  sandbox refuses it, as the lifecycle page says "before it's in a processing or succeeded
  state"); "any operations on the PaymentIntent fail with an error" afterwards; in
  requires_capture "the remaining amount_capturable is automatically refunded".
- Capture (https://docs.stripe.com/api/payment_intents/capture): only from requires_capture;
  amount_to_capture up to amount_capturable, the rest released; "Uncaptured PaymentIntents are
  cancelled a set number of days (7 by default) after their creation" (cancellation_reason
  ``automatic``, https://docs.stripe.com/api/payment_intents/object).
- Wrong state: error code ``payment_intent_unexpected_state`` with the intent in the error
  (https://docs.stripe.com/error-codes, https://docs.stripe.com/api/errors: ``payment_intent``).
- Declines: 402 ``card_error`` with ``code``, ``decline_code`` (https://docs.stripe.com/declines/codes);
  off-session authentication: ``authentication_required``.
- Refunds (https://docs.stripe.com/refunds): several partial refunds, never more than the
  charge ("you can't refund a total greater than the original charge amount"); status
  pending / succeeded / failed, ``failure_reason``; a failed refund returns the money, so the
  charge's amount_refunded goes down. A refund of an uncaptured PaymentIntent is refused: "This
  uncaptured Charge was created by a PaymentIntent ... You must cancel the PaymentIntent to
  reverse the authorization instead of refunding the Charge directly" (Stripe's answer quoted in
  github.com/woocommerce/woocommerce-gateway-stripe/issues/1081).
- Minimum amounts: https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts
  (code ``amount_too_small``); at most eight digits.
- Test payment methods: https://docs.stripe.com/testing (``pm_card_visa`` ... ; 4000000000005126
  "Charge succeeds but refunding a captured charge fails asynchronously with a failure_reason of
  expired_or_canceled_card ... the refund will appear to be successful at first").
  Using a test id creates a new PaymentMethod object, as Stripe does.
"""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from . import errors, events
from .events import WebhookFaults, new_id
from .faults import DECLINES, PROCESSING, REFUND_FAULTS, Fault
from .logs import payment_id_var
from .settings import Knobs
from .store import insert, load, public, save

AUTHORIZATION_SECONDS = 7 * 24 * 3600
MAX_AMOUNT = 99_999_999
# Smallest charge per currency, in minor units (Stripe's table; other currencies are refused).
MINIMUM_AMOUNTS = {
    "usd": 50, "eur": 50, "gbp": 30, "aud": 50, "cad": 50, "chf": 50, "nzd": 50, "sgd": 50,
    "dkk": 250, "nok": 300, "sek": 300, "pln": 200, "czk": 1500, "huf": 17500, "hkd": 400,
    "jpy": 50, "mxn": 1000, "brl": 50, "inr": 50, "ron": 200, "bgn": 100, "aed": 200,
}  # fmt: skip
ZERO_DECIMAL = {"jpy"}
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
CANCELABLE = ("requires_payment_method", "requires_confirmation", "requires_action", "requires_capture")
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")

# Stripe's test PaymentMethods (https://docs.stripe.com/testing): id -> (brand, last4, behaviour).
TEST_PAYMENT_METHODS = {
    "pm_card_visa": ("visa", "4242", "succeed"),
    "pm_card_mastercard": ("mastercard", "4444", "succeed"),
    "pm_card_chargeDeclined": ("visa", "0002", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "insufficient_funds"),
    "pm_card_chargeCustomerFail": ("visa", "0341", "generic_decline"),
    "pm_card_authenticationRequired": ("visa", "3184", "authentication_required"),
    "pm_card_refundFail": ("visa", "5126", "refund_fail"),
}
DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "authentication_required": "Your card was declined. This transaction requires authentication.",
}


@dataclass
class Ctx:
    """One request's view: its transaction, the sandbox clock, and what it decided."""

    conn: sqlite3.Connection
    now: int
    knobs: Knobs
    request_id: str | None = None
    idempotency_key: str | None = None
    chance: Callable[[], float] = random.random
    faults: list[str] = field(default_factory=list)
    webhooks_queued: bool = False
    _subscriptions: list | None = None  # the webhook endpoints, read once per request

    def happens(self, rate: float) -> bool:
        return rate >= 1.0 or (rate > 0.0 and self.chance() < rate)

    def emit(self, event_type: str, obj: dict, previous: dict | None = None) -> None:
        if self._subscriptions is None:
            self._subscriptions = events.subscriptions(self.conn)
        queued = events.record(
            self.conn,
            event_type=event_type,
            obj=obj,
            now=self.now,
            request_id=self.request_id,
            idempotency_key=self.idempotency_key,
            faults=self._webhook_faults,
            subscriptions=self._subscriptions,
            previous=previous,
        )
        self.webhooks_queued = self.webhooks_queued or queued

    def _webhook_faults(self) -> WebhookFaults:
        knobs = self.knobs
        delayed = self.happens(knobs.webhook_delay_rate)
        return WebhookFaults(
            drop=self.happens(knobs.webhook_drop_rate),
            duplicate=self.happens(knobs.webhook_duplicate_rate),
            delay_seconds=knobs.webhook_delay_ms / 1000 if delayed else 0.0,
        )

    def timer(self, due_at: float, kind: str, object_id: str) -> None:
        self.conn.execute("INSERT INTO timers (due_at, kind, object_id) VALUES (?, ?, ?)", (due_at, kind, object_id))


# --- shapes ---------------------------------------------------------------------------------------


def valid_amount(amount: int, currency: str, param: str = "amount") -> None:
    minimum = MINIMUM_AMOUNTS[currency]
    if amount < minimum:
        shown = f"{minimum}" if currency in ZERO_DECIMAL else f"{minimum / 100:.2f}"
        raise errors.invalid_param(f"Amount must be at least {shown} {currency}", param, "amount_too_small")
    if amount > MAX_AMOUNT:
        raise errors.invalid_param(f"Amount must be no more than {MAX_AMOUNT} {currency}", param, "amount_too_large")


def valid_currency(currency: str) -> str:
    lowered = currency.lower()
    if lowered not in MINIMUM_AMOUNTS:
        supported = ", ".join(sorted(MINIMUM_AMOUNTS))
        raise errors.invalid_param(
            f"Invalid currency: {lowered}. The sandbox supports these currencies: {supported}", "currency"
        )
    return lowered


def intent_or_404(ctx: Ctx, intent_id: str) -> dict:
    intent = load(ctx.conn, intent_id, "payment_intent")
    if intent is None:
        raise errors.no_such("payment_intent", intent_id)
    payment_id_var.set(intent["metadata"].get("payment_id"))
    return intent


def customer_param(ctx: Ctx, customer_id: str | None) -> str | None:
    if customer_id is not None and load(ctx.conn, customer_id, "customer") is None:
        raise errors.no_such("customer", customer_id, param="customer")
    return customer_id


def payment_method_param(ctx: Ctx, pm_id: str, customer: str | None = None, param: str = "payment_method") -> dict:
    """A stored PaymentMethod, or a new one made from a test id (Stripe makes a new object too)."""
    stored = load(ctx.conn, pm_id, "payment_method")
    if stored is not None:
        return stored
    if pm_id not in TEST_PAYMENT_METHODS:
        raise errors.no_such("PaymentMethod", pm_id, param=param)
    brand, last4, behaviour = TEST_PAYMENT_METHODS[pm_id]
    method = {
        "id": new_id("pm"),
        "object": "payment_method",
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "card": {
            "brand": brand,
            "country": "US",
            "exp_month": 12,
            "exp_year": 2034,
            "funding": "credit",
            "last4": last4,
        },
        "created": ctx.now,
        "customer": customer,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_behaviour": behaviour,
    }
    insert(ctx.conn, method)
    return method


def new_intent(ctx: Ctx, fields: dict) -> dict:
    intent_id = new_id("pi")
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": fields["amount"],
        "amount_capturable": 0,
        "amount_received": 0,
        "cancellation_reason": None,
        "canceled_at": None,
        "capture_method": fields["capture_method"],
        "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
        "confirmation_method": "automatic",
        "created": ctx.now,
        "currency": fields["currency"],
        "customer": fields["customer"],
        "description": fields["description"],
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": fields["metadata"],
        "next_action": None,
        "payment_method": fields["payment_method"],
        "payment_method_types": ["card"],
        "status": "requires_confirmation" if fields["payment_method"] else "requires_payment_method",
    }


def _charge(ctx: Ctx, intent: dict, method: dict, status: str, failure: tuple[str, str] | None) -> dict:
    manual = intent["capture_method"] == "manual"
    code, decline_code = failure or (None, None)
    charge = {
        "id": new_id("ch"),
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": 0,
        "amount_refunded": 0,
        "captured": False,
        "created": ctx.now,
        "currency": intent["currency"],
        "customer": intent["customer"],
        "description": intent["description"],
        "failure_code": code,
        "failure_message": DECLINE_MESSAGES[decline_code] if decline_code else None,
        "livemode": False,
        "metadata": intent["metadata"],
        "outcome": {
            "type": "issuer_declined" if failure else "authorized",
            "network_status": "declined_by_network" if failure else "approved_by_network",
            "reason": decline_code,
        },
        "paid": status == "succeeded",
        "payment_intent": intent["id"],
        "payment_method": method["id"],
        "payment_method_details": {
            "type": "card",
            "card": {
                "brand": method["card"]["brand"],
                "last4": method["card"]["last4"],
                "capture_before": intent["created"] + AUTHORIZATION_SECONDS if manual and not failure else None,
            },
        },
        "refunded": False,
        "status": status,
    }
    insert(ctx.conn, charge)
    return charge


def load_charge(ctx: Ctx, charge_id: str) -> dict:
    charge = load(ctx.conn, charge_id, "charge")
    assert charge is not None, charge_id  # an intent's latest_charge always exists
    return charge


# --- PaymentIntents -------------------------------------------------------------------------------


def create_intent(ctx: Ctx, fields: dict, confirm: dict | None) -> tuple[int, dict]:
    customer_param(ctx, fields["customer"])
    method = None
    if fields["payment_method"]:
        method = payment_method_param(ctx, fields["payment_method"], fields["customer"])
        fields = {**fields, "payment_method": method["id"]}
    intent = new_intent(ctx, fields)
    payment_id_var.set(intent["metadata"].get("payment_id"))
    insert(ctx.conn, intent)
    ctx.emit("payment_intent.created", intent)
    if confirm is None:
        return 200, public(intent)
    if method is None:
        raise errors.invalid_param(
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            "payment_method",
            "parameter_missing",
        )
    return _confirm(ctx, intent, method, off_session=confirm["off_session"])


def confirm_intent(ctx: Ctx, intent_id: str, payment_method: str | None, off_session: bool) -> tuple[int, dict]:
    intent = intent_or_404(ctx, intent_id)
    method = None
    if payment_method is not None:
        method = payment_method_param(ctx, payment_method, intent["customer"])
    if intent["status"] not in CONFIRMABLE:
        raise errors.unexpected_state(
            f"You cannot confirm this PaymentIntent because it has a status of {intent['status']}. Only a "
            "PaymentIntent with one of the following statuses may be confirmed: requires_confirmation, "
            "requires_action, requires_payment_method.",
            public(intent),
        )
    if method is None:
        if intent["payment_method"] is None:
            raise errors.invalid_state(
                "You cannot confirm this PaymentIntent because it's missing a payment method. "
                "Specify a payment_method.",
                code="parameter_missing",
                param="payment_method",
            )
        method = load(ctx.conn, intent["payment_method"], "payment_method")
    return _confirm(ctx, intent, method, off_session=off_session)


def _confirm(ctx: Ctx, intent: dict, method: dict, *, off_session: bool) -> tuple[int, dict]:
    intent["payment_method"] = method["id"]
    behaviour = method["_behaviour"]
    magic = intent["amount"] % 100
    if magic in DECLINES:
        behaviour = DECLINES[magic][1]
    if behaviour == "authentication_required" and not off_session:
        intent.update(
            status="requires_action",
            next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}},
        )
        save(ctx.conn, intent)
        ctx.emit("payment_intent.requires_action", intent)
        return 200, public(intent)
    if behaviour in DECLINE_MESSAGES:
        return _decline(ctx, intent, method, behaviour)

    processing = magic == PROCESSING or ctx.happens(ctx.knobs.processing_rate)
    charge = _charge(ctx, intent, method, "pending" if processing else "succeeded", None)
    intent.update(latest_charge=charge["id"], last_payment_error=None, next_action=None)
    if processing:
        ctx.faults.append(Fault.PROCESSING.value)
        intent["status"] = "processing"
        save(ctx.conn, intent)
        ctx.timer(ctx.now + ctx.knobs.processing_seconds, "intent_processed", intent["id"])
        ctx.emit("charge.pending", charge)
        ctx.emit("payment_intent.processing", intent)
        return 200, public(intent)
    _authorized(ctx, intent, charge)
    return 200, public(intent)


def _authorized(ctx: Ctx, intent: dict, charge: dict) -> None:
    """The card network approved: authorized (manual capture) or captured at once."""
    charge.update(status="succeeded", paid=True)
    if intent["capture_method"] == "manual":
        intent.update(status="requires_capture", amount_capturable=intent["amount"])
        ctx.timer(intent["created"] + AUTHORIZATION_SECONDS, "authorization_expires", intent["id"])
        save(ctx.conn, charge)
        save(ctx.conn, intent)
        ctx.emit("charge.succeeded", charge)
        ctx.emit("payment_intent.amount_capturable_updated", intent)
        return
    charge.update(captured=True, amount_captured=charge["amount"])
    intent.update(status="succeeded", amount_received=intent["amount"])
    save(ctx.conn, charge)
    save(ctx.conn, intent)
    ctx.emit("charge.succeeded", charge)
    ctx.emit("payment_intent.succeeded", intent)


def _decline(ctx: Ctx, intent: dict, method: dict, decline_code: str) -> tuple[int, dict]:
    code = "authentication_required" if decline_code == "authentication_required" else "card_declined"
    charge = _charge(ctx, intent, method, "failed", (code, decline_code))
    message = DECLINE_MESSAGES[decline_code]
    last_error = {
        "type": "card_error",
        "charge": charge["id"],
        "code": code,
        "decline_code": decline_code,
        "message": message,
        "payment_method": public(method),
    }
    intent.update(
        status="requires_payment_method",
        latest_charge=charge["id"],
        last_payment_error=last_error,
        next_action=None,
    )
    save(ctx.conn, intent)
    ctx.emit("charge.failed", charge)
    ctx.emit("payment_intent.payment_failed", intent)
    error = errors.StripeError(
        402,
        "card_error",
        message,
        code=code,
        decline_code=decline_code,
        charge=charge["id"],
        payment_intent=public(intent),
        payment_method=public(method),
    )
    return 402, error.body()


def capture_intent(ctx: Ctx, intent_id: str, amount_to_capture: int | None) -> tuple[int, dict]:
    intent = intent_or_404(ctx, intent_id)
    if intent["status"] != "requires_capture":
        raise errors.unexpected_state(
            f"This PaymentIntent could not be captured because it has a status of {intent['status']}. Only a "
            "PaymentIntent with one of the following statuses may be captured: requires_capture.",
            public(intent),
        )
    amount = intent["amount_capturable"] if amount_to_capture is None else amount_to_capture
    if amount > intent["amount_capturable"]:
        raise errors.invalid_state(
            f"The amount_to_capture ({amount}) must be less than or equal to the amount_capturable "
            f"({intent['amount_capturable']}).",
            code="amount_too_large",
            param="amount_to_capture",
        )
    charge = load_charge(ctx, intent["latest_charge"])
    charge.update(
        captured=True,
        amount_captured=amount,
        amount_refunded=charge["amount_refunded"] + intent["amount"] - amount,  # the rest is released
    )
    intent.update(status="succeeded", amount_capturable=0, amount_received=amount)
    save(ctx.conn, charge)
    save(ctx.conn, intent)
    ctx.emit("charge.captured", charge)
    ctx.emit("payment_intent.succeeded", intent)
    return 200, public(intent)


def cancel_intent(ctx: Ctx, intent_id: str, reason: str | None) -> tuple[int, dict]:
    intent = intent_or_404(ctx, intent_id)
    if intent["status"] not in CANCELABLE:
        raise errors.unexpected_state(
            f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a "
            "PaymentIntent with one of the following statuses may be canceled: requires_payment_method, "
            "requires_capture, requires_confirmation, requires_action.",
            public(intent),
        )
    _cancel(ctx, intent, reason, expired=False)
    return 200, public(intent)


def _cancel(ctx: Ctx, intent: dict, reason: str | None, *, expired: bool) -> None:
    released = intent["status"] == "requires_capture"
    intent.update(
        status="canceled",
        cancellation_reason=reason,
        canceled_at=ctx.now,
        amount_capturable=0,
        next_action=None,
    )
    save(ctx.conn, intent)
    if released:
        charge = load_charge(ctx, intent["latest_charge"])
        charge.update(amount_refunded=charge["amount"], refunded=True)
        save(ctx.conn, charge)
        ctx.emit("charge.expired" if expired else "charge.refunded", charge)
    ctx.emit("payment_intent.canceled", intent)


# --- timers ---------------------------------------------------------------------------------------


def intent_processed(ctx: Ctx, intent_id: str) -> None:
    intent = load(ctx.conn, intent_id, "payment_intent")
    if intent is not None and intent["status"] == "processing":
        _authorized(ctx, intent, load_charge(ctx, intent["latest_charge"]))


def authorization_expires(ctx: Ctx, intent_id: str) -> None:
    intent = load(ctx.conn, intent_id, "payment_intent")
    if intent is not None and intent["status"] == "requires_capture":
        _cancel(ctx, intent, "automatic", expired=True)


def refund_settles(ctx: Ctx, refund_id: str) -> None:
    refund = load(ctx.conn, refund_id, "refund")
    target = refund.pop("_settles_to", None) if refund else None
    if target is None:
        return
    previous = {"status": refund["status"]}
    refund["status"] = target
    refund["pending_reason"] = None
    if target == "failed":
        refund["failure_reason"] = refund.pop("_failure_reason")
        charge = load_charge(ctx, refund["charge"])
        charge.update(amount_refunded=charge["amount_refunded"] - refund["amount"], refunded=False)
        save(ctx.conn, charge)
    save(ctx.conn, refund)
    ctx.emit("refund.updated", refund, previous)
    ctx.emit("charge.refund.updated", refund, previous)
    if target == "failed":
        ctx.emit("refund.failed", refund)


TIMERS = {
    "intent_processed": intent_processed,
    "authorization_expires": authorization_expires,
    "refund_settles": refund_settles,
}


# --- refunds --------------------------------------------------------------------------------------


def create_refund(ctx: Ctx, fields: dict) -> tuple[int, dict]:
    charge, intent = _refund_target(ctx, fields["payment_intent"], fields["charge"])
    already = ctx.conn.execute(
        "SELECT body FROM objects WHERE charge = ? AND type = 'refund'", (charge["id"],)
    ).fetchall()
    refunded = sum(r["amount"] for r in map(lambda row: json.loads(row["body"]), already) if r["status"] != "failed")
    remaining = charge["amount_captured"] - refunded
    if remaining <= 0:
        raise errors.invalid_state(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
    amount = remaining if fields["amount"] is None else fields["amount"]
    if amount > remaining:
        raise errors.invalid_state(
            f"Refund amount ({amount} {charge['currency']}) is greater than unrefunded amount on charge "
            f"({remaining} {charge['currency']})",
            code="amount_too_large",
            param="amount",
        )
    refund = {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": charge["id"],
        "created": ctx.now,
        "currency": charge["currency"],
        "failure_reason": None,
        "metadata": fields["metadata"] or {},
        "payment_intent": intent["id"],
        "pending_reason": None,
        "reason": fields["reason"],
        "status": "succeeded",
    }
    method = load(ctx.conn, charge["payment_method"], "payment_method")
    fault = REFUND_FAULTS.get(intent["amount"] % 100)
    if fault is None and ctx.happens(ctx.knobs.refund_failure_rate):
        fault = Fault.REFUND_FAILURE
    if fault is None and ctx.happens(ctx.knobs.refund_pending_rate):
        fault = Fault.REFUND_PENDING
    settle_at = ctx.now + ctx.knobs.refund_settle_seconds
    if method["_behaviour"] == "refund_fail":
        # Stripe's test card: "the refund will appear to be successful at first".
        refund.update(_settles_to="failed", _failure_reason="expired_or_canceled_card")
    elif fault is not None:
        ctx.faults.append(fault.value)
        refund.update(status="pending", pending_reason="processing")
        refund.update(_settles_to="failed" if fault is Fault.REFUND_FAILURE else "succeeded", _failure_reason="unknown")
    if "_settles_to" in refund:
        ctx.timer(settle_at, "refund_settles", refund["id"])
    insert(ctx.conn, refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    save(ctx.conn, charge)
    ctx.emit("refund.created", refund)
    ctx.emit("charge.refunded", charge)
    return 200, public(refund)


def _refund_target(ctx: Ctx, intent_id: str | None, charge_id: str | None) -> tuple[dict, dict]:
    if charge_id is not None:
        charge = load(ctx.conn, charge_id, "charge")
        if charge is None:
            raise errors.no_such("charge", charge_id, param="charge")
        if intent_id is not None and charge["payment_intent"] != intent_id:
            raise errors.invalid_param(f"Charge {charge_id} does not belong to PaymentIntent {intent_id}.", "charge")
        intent = load(ctx.conn, charge["payment_intent"], "payment_intent")
    else:
        intent = load(ctx.conn, intent_id, "payment_intent")
        if intent is None:
            raise errors.no_such("payment_intent", intent_id, param="payment_intent")
        charge = load(ctx.conn, intent["latest_charge"], "charge") if intent["latest_charge"] else None
    payment_id_var.set(intent["metadata"].get("payment_id"))
    if intent["status"] == "requires_capture" or (
        charge is not None and charge["status"] == "succeeded" and not charge["captured"]
    ):
        raise errors.invalid_state(
            f"This uncaptured Charge was created by a PaymentIntent ({intent['id']}). You must cancel the "
            "PaymentIntent to reverse the authorization instead of refunding the Charge directly."
        )
    if charge is None or not charge["captured"]:
        raise errors.invalid_state(f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.")
    return charge, intent


# --- customers and payment methods ----------------------------------------------------------------


def create_customer(ctx: Ctx, fields: dict) -> tuple[int, dict]:
    customer = {
        "id": new_id("cus"),
        "object": "customer",
        "created": ctx.now,
        "description": fields.get("description"),
        "email": fields.get("email"),
        "invoice_settings": {"default_payment_method": None},
        "livemode": False,
        "metadata": fields.get("metadata") or {},
        "name": fields.get("name"),
    }
    insert(ctx.conn, customer)
    if fields.get("payment_method"):
        attach(ctx, fields["payment_method"], customer["id"], param="payment_method")
    _update_customer(ctx, customer, fields)
    return 200, public(customer)


def update_customer(ctx: Ctx, customer_id: str, fields: dict) -> tuple[int, dict]:
    customer = load(ctx.conn, customer_id, "customer")
    if customer is None:
        raise errors.no_such("customer", customer_id)
    _update_customer(ctx, customer, fields)
    return 200, public(customer)


def _update_customer(ctx: Ctx, customer: dict, fields: dict) -> None:
    for name in ("description", "email", "name"):
        if fields.get(name) is not None:
            customer[name] = fields[name]
    if fields.get("metadata") is not None:
        customer["metadata"] = {**customer["metadata"], **fields["metadata"]}
    default = fields.get("default_payment_method")
    if default is not None:
        method = load(ctx.conn, default, "payment_method")
        if method is None or method["customer"] != customer["id"]:
            raise errors.invalid_param(
                f"No such PaymentMethod: '{default}'; it must be attached to {customer['id']}.",
                "invoice_settings[default_payment_method]",
                "resource_missing",
            )
        customer["invoice_settings"] = {"default_payment_method": default}
    save(ctx.conn, customer)


def attach(ctx: Ctx, pm_id: str, customer_id: str | None, param: str | None = None) -> tuple[int, dict]:
    if customer_id is None:
        raise errors.missing_param("customer")
    customer_param(ctx, customer_id)
    method = load(ctx.conn, pm_id, "payment_method")
    if method is None:
        if pm_id not in TEST_PAYMENT_METHODS:
            raise errors.no_such("PaymentMethod", pm_id, param=param)
        method = payment_method_param(ctx, pm_id, customer_id)
    elif method["customer"] not in (None, customer_id):
        raise errors.invalid_state(
            f"The payment method you provided has already been attached to a customer ({method['customer']})."
        )
    method["customer"] = customer_id
    save(ctx.conn, method)
    return 200, public(method)
