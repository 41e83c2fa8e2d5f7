"""A person settles a payment that needs attention: `manage.py settle_payment`, the admin, the console.

Every action asks the gateway first and refuses what contradicts its ledger; it fences the saga
log so no processor charges meanwhile, records who did it and why (OperatorAction) and writes the
operator's steps (source: operator, actor, reason) to the saga log.

- capture: a standing charge of the payment's amount exists → CHARGED (if the log lacks it), CAPTURED.
- release: the charge key is canceled at the gateway (or its charge was declined) and no standing
  charge exists → CHARGE_CANCELED, COMPENSATED.
- refund_and_release: cancel the key, refund every standing charge → REFUNDED, COMPENSATED.
"""

import enum
import logging
import uuid

from django.db import transaction
from rest_framework import status

from core.errors import ApplicationError
from payments import clients, late_charges, saga_log, settlement
from payments.models import OperatorAction, Payment, PaymentStatus
from payments.selectors import payment_get

logger = logging.getLogger(__name__)

RELEASED_BY_OPERATOR = "released_by_operator"


class SettleAction(enum.StrEnum):
    CAPTURE = "capture"
    RELEASE = "release"
    REFUND_AND_RELEASE = "refund_and_release"


class SettleRefused(ApplicationError):
    def __init__(self, code: str, message: str, status_code: int = status.HTTP_409_CONFLICT) -> None:
        super().__init__(status_code=status_code, type="invalid_request_error", code=code, message=message)


def _event_id(payment: Payment, action: SettleAction) -> uuid.UUID:
    return uuid.uuid5(payment.pk, f"operator:{action.value}")


def settle_payment(*, payment_id, action: SettleAction, reason: str, actor: str) -> Payment:
    """Settle a needs_attention payment by hand; raises SettleRefused or payments.gateway.GatewayUnavailable."""
    action = SettleAction(action)
    reason = (reason or "").strip()
    if not reason:
        raise SettleRefused("reason_required", "Say why: a reason is required.", status.HTTP_400_BAD_REQUEST)
    payment = payment_get(payment_id=str(payment_id))
    if payment.status != PaymentStatus.NEEDS_ATTENTION:
        raise SettleRefused("payment_not_in_needs_attention", f"The payment is {payment.status}, not needs_attention.")
    if not saga_log.fence(payment=payment):
        raise SettleRefused("processor_active", "A processor holds the payment's lease; try again after it lapses.")
    who = {"source": "operator", "actor": actor, "reason": reason}
    gateway = clients.gateway()
    if action is SettleAction.CAPTURE:
        detail = _capture(payment, gateway, who)
    elif action is SettleAction.RELEASE:
        detail = _release(payment, gateway, who)
    else:
        detail = _refund_and_release(payment, gateway, who)
    with transaction.atomic():
        OperatorAction.objects.create(payment=payment, action=action.value, actor=actor, reason=reason, detail=detail)
    logger.warning(
        "payment settled by %s: %s (%s)", actor, action.value, reason, extra={"operator_action": action.value}
    )
    payment.refresh_from_db()
    return payment


def _capture(payment: Payment, gateway, who: dict) -> dict:
    standing = late_charges.standing(gateway.charges_for_reference(str(payment.pk)))
    matching = [
        c for c in standing if (c.get("amount"), str(c.get("currency")).upper()) == (payment.amount, payment.currency)
    ]
    if len(standing) != 1 or not matching:
        raise SettleRefused(
            "no_single_matching_charge",
            f"The gateway holds {len(standing)} standing charge(s) for this payment, "
            f"{len(matching)} of {payment.amount} {payment.currency}: nothing to capture.",
        )
    charge = matching[0]
    settlement.log_gateway_fact(payment=payment, step=saga_log.STEP_CHARGED, detail={"charge_id": charge["id"], **who})
    event_id = _event_id(payment, SettleAction.CAPTURE)
    settlement.capture(
        event={
            "event_id": event_id,
            "payment_id": payment.pk,
            "charge_id": charge["id"],
            "amount": payment.amount,
            "currency": payment.currency,
        },
        detail={"event_id": str(event_id), "charge_id": charge["id"], **who},
    )
    return {"charge_id": charge["id"]}


def _release(payment: Payment, gateway, who: dict) -> dict:
    cancellation = gateway.cancel_charge(payment.pk)
    if not cancellation.canceled and cancellation.charge.get("status") == "succeeded":
        raise SettleRefused(
            "charge_stands",
            f"Charge {cancellation.charge.get('id')} stands at the gateway: capture it or refund and release.",
        )
    standing = late_charges.standing(gateway.charges_for_reference(str(payment.pk)))
    if standing:
        raise SettleRefused("charge_stands", f"{len(standing)} charge(s) stand at the gateway: refund and release.")
    if cancellation.canceled:
        settlement.log_gateway_fact(payment=payment, step=saga_log.STEP_CHARGE_CANCELED, detail=who)
    return _released(payment, who, charge_id=None)


def _refund_and_release(payment: Payment, gateway, who: dict) -> dict:
    # Cancel first: a charge still in flight must not land after the refunds.
    cancellation = gateway.cancel_charge(payment.pk)
    refunds = late_charges.refund_standing_charges(payment, detail=who)
    if not refunds and cancellation.canceled:
        settlement.log_gateway_fact(payment=payment, step=saga_log.STEP_CHARGE_CANCELED, detail=who)
    charge_id = refunds[0]["charge"] if refunds else None
    return {**_released(payment, who, charge_id=charge_id), "refund_ids": [refund["id"] for refund in refunds]}


def _released(payment: Payment, who: dict, *, charge_id: str | None) -> dict:
    event_id = _event_id(payment, SettleAction.RELEASE)
    settlement.release(
        event={
            "event_id": event_id,
            "payment_id": payment.pk,
            "reason_code": RELEASED_BY_OPERATOR,
            "charge_id": charge_id,
        },
        detail={"event_id": str(event_id), "reason_code": RELEASED_BY_OPERATOR, "charge_id": charge_id, **who},
    )
    return {"charge_id": charge_id}
