"""The initiator's side of the Firestore saga log (docs/protocol.md §2, §4 rule 7).

The document primitives are binpay_common.saga_log (one implementation for both services). Here:
reading a payment's log for the API and the console, and the step outbox — the settlement steps
(CAPTURED, COMPENSATED, NEEDS_ATTENTION) are OutboxStep rows written in the same database transaction
as the change they describe, and delivered to Firestore right after the commit and by the relay
until Firestore has them.
"""

import logging
from datetime import datetime, timedelta

from django.db.models import F
from django.utils import timezone

from binpay_common.saga_log import Step
from payments import clients
from payments.models import OutboxStep, Payment

logger = logging.getLogger(__name__)


def payment_fields(payment: Payment) -> dict:
    """The payment's fields of its saga-log document, for a document the initiator creates."""
    return {
        "payment_id": str(payment.pk),
        "user_id": payment.user_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "correlation_id": payment.correlation_id,
    }


def record_step(payment: Payment, step: str, detail: dict) -> OutboxStep:
    """Inside the settlement's transaction: the step its change owes the saga log."""
    return OutboxStep.objects.create(payment=payment, step=step, detail=detail)


def deliver(payment: Payment) -> int:
    """Deliver the payment's pending steps to Firestore, oldest first; returns how many were delivered.

    A failure leaves the rest for the relay (or for the next actor that claims the payment, which
    delivers them first); it is logged, never raised, because the database change is committed.
    """
    pending = list(OutboxStep.objects.filter(payment=payment, delivered_at__isnull=True))
    return _deliver(payment, pending)


# The relay leaves a step this young to the actor that committed it (it delivers right after the commit).
RELAY_GRACE = timedelta(seconds=5)


def deliver_pending(limit: int) -> int:
    """The relay's share: steps left undelivered (a killed actor, Firestore down), oldest first, at most `limit`.

    Two deliverers of one row (the relay and the settling actor) write it once: a step is appended only
    while the log lacks it.
    """
    left = OutboxStep.objects.filter(delivered_at__isnull=True, created_at__lte=timezone.now() - RELAY_GRACE)
    pending = list(left.select_related("payment")[:limit])
    by_payment: dict = {}
    for row in pending:
        by_payment.setdefault(row.payment_id, []).append(row)
    return sum(_deliver(rows[0].payment, rows) for rows in by_payment.values())


def _deliver(payment: Payment, pending: list[OutboxStep]) -> int:
    """Deliver the payment's steps in order; the first failure leaves it and those after it for later."""
    log = clients.saga_log()
    fields = payment_fields(payment)
    delivered = []
    for row in pending:
        try:
            written = log.deliver(fields, Step(row.step, row.detail))
        except Exception as error:
            logger.warning("saga log: %s not delivered yet (%s: %s)", row.step, type(error).__name__, error)
            OutboxStep.objects.filter(pk=row.pk).update(
                delivery_attempts=F("delivery_attempts") + 1, last_error=f"{type(error).__name__}: {error}"[:500]
            )
            break
        logger.info("saga log: %s %s", row.step, "written" if written else "already present")
        delivered.append(row.pk)
    if delivered:
        OutboxStep.objects.filter(pk__in=delivered).update(delivered_at=timezone.now())
    return len(delivered)


def plain(value):
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def read_saga_log(payment_id) -> dict | None:
    """{"state", "version", "intent_id", "steps": [...]} or None while nothing is logged yet."""
    found = clients.saga_log().read_with_steps(str(payment_id))
    if found is None:
        return None
    document, steps = found
    return {
        "state": document.get("state"),
        "version": document.get("version"),
        "intent_id": document.get("intent_id"),
        "steps": [
            plain(
                {
                    "step": step.get("step"),
                    "seq": step.get("seq"),
                    "at": step.get("at"),
                    "service": step.get("service"),
                    "detail": step.get("detail") or {},
                }
            )
            for step in steps
        ],
    }
