import enum
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import status

from accounts.models import Account, User
from accounts.services import require_supported_currency
from binpay_common import events, steps, tracing
from binpay_common.logs import payment_id_var
from binpay_common.saga_log import LeaseLost
from core.errors import ApplicationError, invalid_parameter, not_found, unprocessable
from core.money import format_minor_units
from core.queries import unique_or_none
from payments.models import (
    HOLDING_STATUSES,
    OperatorAction,
    OperatorActionState,
    OutboxEvent,
    Payment,
    PaymentStatus,
    ProcessedEvent,
)
from payments.outbox import commit_publisher
from payments.saga_log import record_step

logger = logging.getLogger(__name__)


def insufficient_funds(available: int, currency: str) -> ApplicationError:
    return ApplicationError(
        status_code=status.HTTP_402_PAYMENT_REQUIRED,
        type="payment_error",
        code="insufficient_funds",
        message=f"Insufficient funds: {format_minor_units(available, currency)} available.",
        param="amount",
    )


# No savepoint of its own inside the idempotency transaction: a failure rolls the whole request back.
@transaction.atomic(savepoint=False)
def payment_initiate(
    *,
    user_id: int,
    amount_minor: int,
    currency: str,
    metadata: dict[str, str],
    correlation_id: str,
    payment_method: str | None = None,
) -> Payment:
    """Reserve the amount, create the PENDING payment and its payment.initiated outbox row (one transaction).

    The API edge parses the decimal string (core.money.to_minor_units); this takes minor units. The
    payment is charged to `payment_method`, else to the user's default payment method.
    """
    require_supported_currency(currency)
    if amount_minor <= 0:
        raise invalid_parameter("amount", "Amount must be positive.")
    limit = settings.PAYMENT_MAX_AMOUNTS[currency]
    if amount_minor > limit:
        raise unprocessable(
            "amount_too_large", f"Amount must be at most {format_minor_units(limit, currency)}.", "amount"
        )
    # One conditional UPDATE holds the amount: it takes the row lock, which serialises concurrent
    # payments of one account, and re-checks the available funds under it, so they never go negative.
    held = Account.objects.filter(user_id=user_id, currency=currency, balance__gte=F("held") + amount_minor).update(
        held=F("held") + amount_minor, updated_at=timezone.now()
    )
    if not held:
        account = Account.objects.filter(user_id=user_id).first()
        if account is None:
            raise not_found("user", user_id, param="user_id")
        if currency != account.currency:
            raise unprocessable(
                "currency_mismatch", f"The account holds {account.currency}, not {currency}.", "currency"
            )
        raise insufficient_funds(account.available, account.currency)
    payer = User.objects.values("default_payment_method", "provider_customer").get(pk=user_id)
    payment_method = payment_method or payer["default_payment_method"]
    if not payment_method:
        # Rolls back the hold taken above with the rest of the transaction.
        raise unprocessable(
            "payment_method_required",
            "Name a payment_method, or set the user's default (POST /users/{id}/payment-method).",
            "payment_method",
        )
    payment = Payment.objects.create(
        user_id=user_id,
        amount=amount_minor,
        currency=currency,
        metadata=metadata,
        correlation_id=correlation_id,
        payment_method=payment_method,
        provider_customer=payer["provider_customer"],
    )
    payment_id_var.set(str(payment.pk))
    event_id = uuid.uuid4()
    body = events.initiated_event(
        event_id=event_id,
        payment_id=payment.pk,
        user_id=user_id,
        amount=amount_minor,
        currency=currency,
        payment_method=payment_method,
        customer=payer["provider_customer"],
        created_at=payment.created_at,
        metadata=metadata,
    )
    OutboxEvent.objects.create(
        id=event_id,
        event_type=events.PAYMENT_INITIATED,
        payment=payment,
        topic=settings.PUBSUB_TOPIC,
        body=body,
        attributes={**events.attributes(body, correlation_id), **tracing.trace_attributes()},
    )
    if settings.OUTBOX_PUBLISH_ON_COMMIT:
        transaction.on_commit(lambda: commit_publisher.submit(event_id))
    logger.info("payment initiated: %s held for user %s", format_minor_units(amount_minor, currency), user_id)
    return payment


class ClaimSuperseded(LeaseLost):
    """A newer claim is registered on the payment: this holder's lapsed, it must settle nothing."""


class UnknownPayment(Exception):
    pass


class Applied(enum.StrEnum):
    """What a settlement did to the database."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class OutcomeResult:
    """What settling did to the database (its saga-log step, if any, is in the step outbox)."""

    result: Applied
    payment: Payment


def hold_capture(
    *, event: dict, step_detail: dict, operator_action: OperatorAction | None = None, claim_seq: int | None = None
) -> OutcomeResult:
    """payment.completed: the hold becomes a debit (event: event_id, payment_id, charge_id, amount, currency)."""
    return _settle_hold(
        event_type=events.PAYMENT_COMPLETED,
        event=event,
        step_detail=step_detail,
        operator_action=operator_action,
        claim_seq=claim_seq,
    )


def hold_release(
    *, event: dict, step_detail: dict, operator_action: OperatorAction | None = None, claim_seq: int | None = None
) -> OutcomeResult:
    """payment.rollback: the hold is released (event: event_id, payment_id, reason_code, charge_id)."""
    return _settle_hold(
        event_type=events.PAYMENT_ROLLBACK,
        event=event,
        step_detail=step_detail,
        operator_action=operator_action,
        claim_seq=claim_seq,
    )


def _lock_account_of(payment_id) -> Account:
    """Lock the account of the payment's user, in one statement; the caller locks the payment next.

    Lock order account → payment, as in payment_initiate, so settlements and initiations never deadlock.
    """
    account = unique_or_none(Account.objects.select_for_update(of=("self",)).filter(user__payments__pk=payment_id))
    if account is None:
        raise UnknownPayment(f"no payment {payment_id}")
    return account


@transaction.atomic
def _settle_hold(
    *, event_type: str, event: dict, step_detail: dict, operator_action: OperatorAction | None, claim_seq: int | None
) -> OutcomeResult:
    """Capture or release a payment's hold once per event_id.

    The inbox row, the saga-log step (step outbox) and the operator's record are written in the same
    transaction as the state change. An event for a payment already in the target state changes
    nothing; one that contradicts the payment's final state is rejected (logged at ERROR, nothing
    written). `claim_seq`: the settler's claim (reconciler, operator), which must still be the newest
    registered on the payment (ClaimSuperseded otherwise, nothing written).
    """
    completing = event_type == events.PAYMENT_COMPLETED
    target = PaymentStatus.COMPLETED if completing else PaymentStatus.ROLLED_BACK

    account = _lock_account_of(event["payment_id"])
    payment = Payment.objects.select_for_update().get(pk=event["payment_id"])
    _require_claim(payment, claim_seq)

    if ProcessedEvent.objects.filter(event_id=event["event_id"]).exists():
        logger.info("%s %s already processed", event_type, event["event_id"])
        return OutcomeResult(Applied.DUPLICATE, payment)
    if payment.status == target:
        logger.info("%s for a payment already %s: nothing to change", event_type, payment.status)
        ProcessedEvent.objects.create(event_id=event["event_id"], event_type=event_type, payment=payment)
        return OutcomeResult(Applied.DUPLICATE, payment)
    if payment.status not in HOLDING_STATUSES:
        logger.error(
            "illegal transition rejected: %s for a payment already %s (event %s); nothing changed",
            event_type,
            payment.status,
            event["event_id"],
        )
        return OutcomeResult(Applied.REJECTED, payment)
    if completing and (event["amount"] != payment.amount or event["currency"] != payment.currency):
        logger.error(
            "payment.completed %s says %s %s but the payment is %s %s; nothing changed",
            event["event_id"],
            event["amount"],
            event["currency"],
            payment.amount,
            payment.currency,
        )
        return OutcomeResult(Applied.REJECTED, payment)

    account.held -= payment.amount
    if completing:
        account.balance -= payment.amount
        payment.charge_id = event["charge_id"]
        # A payment settled out of needs_attention no longer has a failure to show.
        payment.failure_reason = None
    else:
        payment.failure_reason = event["reason_code"]
        if event.get("charge_id"):
            payment.charge_id = event["charge_id"]
    payment.status = target
    payment.next_attempt_at = None
    # Rolled back: the sweeper looks for money standing at the provider after all (docs/protocol.md §6).
    payment.sweep_due_at = (
        None if completing else timezone.now() + timedelta(seconds=settings.LATE_CHARGE_CHECK_INTERVAL_SECONDS)
    )
    account.save(update_fields=["balance", "held", "updated_at"])
    payment.save(
        update_fields=["status", "charge_id", "failure_reason", "next_attempt_at", "sweep_due_at", "updated_at"]
    )
    ProcessedEvent.objects.create(event_id=event["event_id"], event_type=event_type, payment=payment)
    record_step(payment, steps.CAPTURED if completing else steps.COMPENSATED, step_detail)
    if operator_action is not None:
        _finish(operator_action, OperatorActionState.DONE)
    logger.info(
        "payment %s after %s %s",
        target,
        event_type,
        event["event_id"],
        extra={"saga_duration_seconds": round((timezone.now() - payment.created_at).total_seconds(), 3)},
    )
    return OutcomeResult(Applied.APPLIED, payment)


@transaction.atomic
def payment_mark_needs_attention(
    *, payment_id, reason: str, step_detail: dict, retry_at=None, claim_seq: int | None = None
) -> OutcomeResult:
    """Move a still-pending payment to needs_attention; its hold stays until a person settles it.

    `retry_at`: when the reconciler tries again by itself (gateway_unreachable), else never. Any other
    state is left as it is (a payment settled meanwhile).
    """
    _lock_account_of(payment_id)
    payment = Payment.objects.select_for_update().get(pk=payment_id)
    _require_claim(payment, claim_seq)
    if payment.status == PaymentStatus.NEEDS_ATTENTION:
        # Still held, maybe for a new reason (e.g. the provider answered again, with a mismatching charge).
        payment.failure_reason = reason
        payment.next_attempt_at = retry_at
        payment.save(update_fields=["failure_reason", "next_attempt_at", "updated_at"])
        return OutcomeResult(Applied.DUPLICATE, payment)
    if payment.status != PaymentStatus.PENDING:
        logger.info("payment already %s: not moved to needs_attention (%s)", payment.status, reason)
        return OutcomeResult(Applied.DUPLICATE, payment)
    payment.status = PaymentStatus.NEEDS_ATTENTION
    payment.failure_reason = reason
    payment.next_attempt_at = retry_at
    payment.save(update_fields=["status", "failure_reason", "next_attempt_at", "updated_at"])
    record_step(payment, steps.NEEDS_ATTENTION, {"reason_code": reason, **step_detail})
    logger.error("payment needs attention: %s; the hold stays until a person settles it", reason)
    return OutcomeResult(Applied.APPLIED, payment)


def payment_register_claim(*, payment_id, claim_seq: int) -> None:
    """Register a newly taken claim on the payment; ClaimSuperseded when a newer one is registered already.

    Claims are numbered in the order the saga log granted them, so the newest holder wins whatever
    order the registrations arrive in.
    """
    if not Payment.objects.filter(pk=payment_id, settling_claim__lt=claim_seq).update(settling_claim=claim_seq):
        raise ClaimSuperseded(f"claim {claim_seq} on payment {payment_id} came after a newer one was registered")


def _require_claim(payment: Payment, claim_seq: int | None) -> None:
    if claim_seq is not None and payment.settling_claim != claim_seq:
        logger.error(
            "settlement refused: claim %s lapsed and claim %s holds the payment now; nothing written",
            claim_seq,
            payment.settling_claim,
        )
        raise ClaimSuperseded(f"claim {claim_seq} was superseded by claim {payment.settling_claim}")


def _finish(action: OperatorAction, state: OperatorActionState, **detail) -> None:
    action.state = state
    action.finished_at = timezone.now()
    action.detail = {**action.detail, **detail}
    action.save(update_fields=["state", "finished_at", "detail"])
