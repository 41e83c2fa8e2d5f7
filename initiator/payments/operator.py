"""A person settles a payment that needs attention: `manage.py settle_payment`, the admin, the console.

Every action runs under the payment's claim (docs/protocol.md §5), so no reconciler, sweeper, other
operator or browser tab acts beside it; it re-checks `needs_attention` under the claim, records who
and why (OperatorAction) before any money moves, asks the provider and refuses what contradicts it:

- capture: the intent the log names succeeded with the payment's amount and is not refunded →
  CAPTURED.
- release: every intent the log names is canceled (announced, then canceled at the provider) →
  COMPENSATED. Refused while an intent's money stands.
- refund_and_release: the intent is canceled, or, if it succeeded, refunded (announced first) →
  COMPENSATED.

A refund the log announced (REFUND_REQUESTED) is irrevocable: only refund_and_release may follow it.
The record is finished in the settlement's own transaction; an action refused on the way is recorded
as refused with the reason.
"""

import enum
import logging
import uuid

from django.db import transaction
from django.utils import timezone
from rest_framework import status

from binpay_common import steps
from binpay_common.gateway import GatewayAmbiguous, IntentStatus, Refund
from core.errors import ApplicationError
from payments import clients, settlement, sweeper
from payments.claims import ClaimBusy, LeaseLost, PaymentClaim, claimed
from payments.models import OperatorAction, OperatorActionState, Payment, PaymentStatus
from payments.selectors import payment_get
from payments.services import Applied, OutcomeResult

logger = logging.getLogger(__name__)

RELEASED_BY_OPERATOR = "released_by_operator"


class SettleAction(enum.StrEnum):
    CAPTURE = "capture"
    RELEASE = "release"
    REFUND_AND_RELEASE = "refund_and_release"


class SettleRefused(ApplicationError):
    def __init__(self, code: str, message: str, status_code: int = status.HTTP_409_CONFLICT) -> None:
        super().__init__(status_code=status_code, type="invalid_request_error", code=code, message=message)


class ProviderUnavailable(ApplicationError):
    """The provider could not say what stands: nothing was settled; try again."""

    def __init__(self, message: str) -> None:
        super().__init__(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            type="api_error",
            code="provider_unavailable",
            message=message,
        )


def _event_id(payment: Payment, action: SettleAction) -> uuid.UUID:
    return uuid.uuid5(payment.pk, f"operator:{action.value}")


def settle_payment(*, payment_id, action: SettleAction, reason: str, actor: str) -> Payment:
    """Settle a needs_attention payment by hand; raises SettleRefused or ProviderUnavailable, settling nothing."""
    action = SettleAction(action)
    reason = (reason or "").strip()
    if not reason:
        raise SettleRefused("reason_required", "Say why: a reason is required.", status.HTTP_400_BAD_REQUEST)
    payment = payment_get(payment_id=str(payment_id))
    if payment.status != PaymentStatus.NEEDS_ATTENTION:
        raise SettleRefused("payment_not_in_needs_attention", f"The payment is {payment.status}, not needs_attention.")
    try:
        with claimed(payment, f"operator:{actor}", actor=actor, reason=reason) as claim:
            return _settle_claimed(claim, action, actor=actor, reason=reason)
    except ClaimBusy as busy:
        raise SettleRefused("payment_busy", str(busy)) from busy
    except LeaseLost as lost:
        # Paused past the claim's lease: another actor holds the payment now and this settled nothing.
        raise SettleRefused(
            "payment_busy", "Another actor took the payment over while this action ran; nothing was settled."
        ) from lost


def _settle_claimed(claim: PaymentClaim, action: SettleAction, *, actor: str, reason: str) -> Payment:
    payment = claim.payment
    if payment.status != PaymentStatus.NEEDS_ATTENTION:
        # Settled by someone else between the look and the claim.
        raise SettleRefused(
            "payment_not_in_needs_attention", f"The payment is {payment.status} now, not needs_attention."
        )
    if claim.has(steps.REFUND_REQUESTED) and action is not SettleAction.REFUND_AND_RELEASE:
        raise SettleRefused(
            "refund_in_flight", "A refund of this payment's charge was started: only refund_and_release can finish it."
        )
    with transaction.atomic():
        record = OperatorAction.objects.create(payment=payment, action=action.value, actor=actor, reason=reason)
    try:
        detail = _ACTIONS[action](claim, record)
    except (SettleRefused, GatewayAmbiguous, LeaseLost) as error:
        _refused(record, str(error))
        if isinstance(error, GatewayAmbiguous):
            raise ProviderUnavailable(
                f"The provider could not say what stands ({error}); nothing was settled."
            ) from error
        raise
    logger.warning(
        "payment settled by %s: %s (%s)", actor, action.value, reason, extra={"operator_action": action.value, **detail}
    )
    payment.refresh_from_db()
    return payment


def _capture(claim: PaymentClaim, record: OperatorAction) -> dict:
    payment = claim.payment
    intent_id = claim.intent_id
    intent = clients.gateway().retrieve_intent(intent_id) if intent_id else None
    if intent is None or intent.status is not IntentStatus.SUCCEEDED:
        state = intent.status if intent else "none was created"
        raise SettleRefused(
            "no_charge_to_capture", f"The payment's intent did not succeed ({state}): nothing to capture."
        )
    if (intent.amount, intent.currency) != (payment.amount, payment.currency) or sweeper.refunded(intent.id):
        raise SettleRefused(
            "charge_not_capturable",
            f"Intent {intent.id} took {intent.amount} {intent.currency} (or was refunded); the payment is "
            f"{payment.amount} {payment.currency}: refund and release instead.",
        )
    if not claim.has(steps.CHARGED):
        claim.log(claim.step(steps.CHARGED, intent.id, charge_id=intent.charge_id))
    event_id = _event_id(payment, SettleAction.CAPTURE)
    outcome = settlement.capture(
        event={
            "event_id": event_id,
            "payment_id": payment.pk,
            "charge_id": intent.charge_id,
            "amount": payment.amount,
            "currency": payment.currency,
        },
        detail={"event_id": str(event_id), "charge_id": intent.charge_id, **claim.who},
        operator_action=record,
        claim_seq=claim.seq,
    )
    _require_applied(outcome, "capture")
    return {"intent_id": intent.id, "charge_id": intent.charge_id}


def _release(claim: PaymentClaim, record: OperatorAction) -> dict:
    if claim.intent_id:
        intent = claim.close(claim.intent_id, reason_code=RELEASED_BY_OPERATOR)
        if intent.status is IntentStatus.SUCCEEDED:
            raise SettleRefused(
                "charge_stands", f"Intent {intent.id} succeeded: its money stands. Capture it, or refund and release."
            )
    return _released(claim, record, charge_id=None)


def _refund_and_release(claim: PaymentClaim, record: OperatorAction) -> dict:
    refund = None
    intent_id = claim.intent_id
    if intent_id and not claim.has(steps.REFUND_REQUESTED):
        intent = claim.close(intent_id, reason_code=RELEASED_BY_OPERATOR)
        if intent.status is IntentStatus.SUCCEEDED:
            refund = _refund(claim, intent_id)
    elif intent_id:
        refund = _refund(claim, intent_id)
    # A refunded rollback names the charge it gave back, as the processor's and the reconciler's do.
    charge_id = refund.charge_id if refund else claim.doc.get("charge_id")
    return {**_released(claim, record, charge_id=charge_id), "refund_id": refund.id if refund else None}


def _refund(claim: PaymentClaim, intent_id: str) -> Refund:
    refund = claim.refund(intent_id, reason_code=RELEASED_BY_OPERATOR)
    if not refund.gives_money_back:
        raise SettleRefused(
            "refund_failed",
            f"Refund {refund.id} of intent {intent_id} failed ({refund.failure_reason}): the money did not go back.",
        )
    return refund


def _released(claim: PaymentClaim, record: OperatorAction, *, charge_id: str | None) -> dict:
    payment = claim.payment
    event_id = _event_id(payment, SettleAction.RELEASE)
    outcome = settlement.release(
        event={
            "event_id": event_id,
            "payment_id": payment.pk,
            "reason_code": RELEASED_BY_OPERATOR,
            "charge_id": charge_id,
        },
        detail={"event_id": str(event_id), "reason_code": RELEASED_BY_OPERATOR, "charge_id": charge_id, **claim.who},
        operator_action=record,
        claim_seq=claim.seq,
    )
    _require_applied(outcome, "release")
    return {"charge_id": charge_id}


def _require_applied(outcome: OutcomeResult, what: str) -> None:
    """Under the claim nothing else settles the payment; if it was settled anyway, say so loudly."""
    if outcome.result is not Applied.APPLIED:
        logger.critical(
            "operator %s found the payment %s after money moved: this must not happen under the claim",
            what,
            outcome.payment.status,
            extra={"alert": "settled_meanwhile"},
        )
        raise SettleRefused("settled_meanwhile", f"The payment was {outcome.payment.status} already: nothing released.")


def _refused(record: OperatorAction, why: str) -> None:
    OperatorAction.objects.filter(pk=record.pk).update(
        state=OperatorActionState.REFUSED, finished_at=timezone.now(), detail={**record.detail, "refused": why}
    )


_ACTIONS = {
    SettleAction.CAPTURE: _capture,
    SettleAction.RELEASE: _release,
    SettleAction.REFUND_AND_RELEASE: _refund_and_release,
}
