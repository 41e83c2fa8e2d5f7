"""Settles payments still pending after PAYMENT_TIMEOUT_SECONDS ("Reconciliation and the fence" in
docs/contracts.md).

Per payment: fence the saga-log document (skipped while a processor lease is live), then ask the
gateway for the charges made with the payment's id as reference. A standing (succeeded,
unrefunded) charge is captured, no standing charge is compensated (`expired`), and an unreachable
gateway leaves the payment for the next run until it is twice the timeout old, then
`needs_attention`. Settling goes through the same services as the outcome events, with
deterministic event ids, so concurrent reconcilers and late events change nothing twice.
"""

import logging
import uuid
from collections import Counter
from datetime import timedelta

from django.db import close_old_connections
from django.utils import timezone

from core import clients
from core.context import correlation_id_var, payment_id_var
from core.gateway import GatewayUnavailable
from payments import events, saga_log
from payments.models import Payment, PaymentStatus
from payments.services import OutcomeResult, outcome_apply, payment_mark_needs_attention

logger = logging.getLogger("payments.reconciler")

REASON_EXPIRED = "expired"
REASON_GATEWAY_UNREACHABLE = "gateway_unreachable"

# What one payment's reconciliation ended in (the summary counts these).
CAPTURED = "captured"
COMPENSATED = "compensated"
NEEDS_ATTENTION = "needs_attention"
LEASE_LIVE = "skipped_lease_live"
GATEWAY_UNREACHABLE = "gateway_unreachable"
ALREADY_SETTLED = "already_settled"
ERROR = "error"


def reconciler_event_id(payment: Payment, event_type: str) -> uuid.UUID:
    """Same id on every run and in every reconciler, distinct from the processor's outcome event ids."""
    return uuid.uuid5(payment.pk, f"reconciler:{event_type}")


def _standing_charges(charges: list[dict]) -> list[dict]:
    return [charge for charge in charges if charge.get("status") == "succeeded" and not charge.get("refunded")]


def _capture(payment: Payment, charge: dict) -> OutcomeResult:
    event_id = reconciler_event_id(payment, events.PAYMENT_COMPLETED)
    outcome = outcome_apply(
        event_type=events.PAYMENT_COMPLETED,
        event={
            "event_id": event_id,
            "payment_id": payment.pk,
            "charge_id": charge["id"],
            "amount": charge.get("amount"),
            "currency": str(charge.get("currency", "")).upper(),
        },
    )
    if outcome.step is not None:
        saga_log.ensure_step(
            payment=outcome.payment,
            step=outcome.step,
            detail={"event_id": str(event_id), "charge_id": charge["id"], "source": "reconciler"},
        )
    return outcome


def _compensate(payment: Payment) -> OutcomeResult:
    event_id = reconciler_event_id(payment, events.PAYMENT_ROLLBACK)
    outcome = outcome_apply(
        event_type=events.PAYMENT_ROLLBACK,
        event={"event_id": event_id, "payment_id": payment.pk, "reason_code": REASON_EXPIRED, "charge_id": None},
    )
    if outcome.step is not None:
        saga_log.ensure_step(
            payment=outcome.payment,
            step=outcome.step,
            detail={
                "event_id": str(event_id),
                "reason_code": outcome.payment.failure_reason,
                "charge_id": outcome.payment.charge_id,
                "source": "reconciler",
            },
        )
    return outcome


def mark_needs_attention(payment_id, *, reason: str, detail: dict) -> OutcomeResult:
    """needs_attention in the database, then the NEEDS_ATTENTION step (ensured again on a rerun)."""
    outcome = payment_mark_needs_attention(payment_id=payment_id, reason=reason)
    if outcome.step is not None:
        saga_log.ensure_step(payment=outcome.payment, step=outcome.step, detail={"reason_code": reason, **detail})
    return outcome


def reconcile_payment(payment: Payment, *, timeout: timedelta) -> str:
    if not saga_log.fence(payment=payment):
        return LEASE_LIVE
    try:
        charges = clients.gateway().charges_for_reference(str(payment.pk))
    except GatewayUnavailable as error:
        age = timezone.now() - payment.created_at
        if age < 2 * timeout:
            logger.warning("gateway unreachable; retrying next run: %s", error)
            return GATEWAY_UNREACHABLE
        outcome = mark_needs_attention(
            payment.pk, reason=REASON_GATEWAY_UNREACHABLE, detail={"error": str(error)[:500], "source": "reconciler"}
        )
        return NEEDS_ATTENTION if outcome.step is not None else ALREADY_SETTLED
    standing = _standing_charges(charges)
    if len(standing) > 1:
        logger.error("%s standing charges for one payment: %s", len(standing), [c.get("id") for c in standing])
    if standing:
        outcome = _capture(payment, standing[0])
        if outcome.result == "rejected" and outcome.payment.status == PaymentStatus.PENDING:
            # The charge does not match the payment (amount or currency): a person must look.
            mark_needs_attention(
                payment.pk,
                reason="charge_mismatch",
                detail={"charge_id": standing[0].get("id"), "source": "reconciler"},
            )
            return NEEDS_ATTENTION
        return CAPTURED if outcome.result == "applied" else ALREADY_SETTLED
    outcome = _compensate(payment)
    return COMPENSATED if outcome.result == "applied" else ALREADY_SETTLED


def reconcile(*, older_than_seconds: int) -> dict[str, int]:
    """One pass over the payments pending longer than `older_than_seconds`; returns counts by result."""
    timeout = timedelta(seconds=older_than_seconds)
    cutoff = timezone.now() - timeout
    stuck = list(
        Payment.objects.filter(status=PaymentStatus.PENDING, created_at__lte=cutoff).order_by("created_at", "id")
    )
    summary: Counter[str] = Counter()
    for payment in stuck:
        correlation_token = correlation_id_var.set(payment.correlation_id)
        payment_token = payment_id_var.set(str(payment.pk))
        try:
            result = reconcile_payment(payment, timeout=timeout)
        except Exception as error:
            # Database or Firestore trouble: the payment stays pending and the next run tries again.
            logger.error("reconciling failed: %s: %s", type(error).__name__, error)
            close_old_connections()
            result = ERROR
        finally:
            correlation_id_var.reset(correlation_token)
            payment_id_var.reset(payment_token)
        summary[result] += 1
    counts = {
        "examined": len(stuck),
        **{
            key: summary[key]
            for key in (CAPTURED, COMPENSATED, NEEDS_ATTENTION, LEASE_LIVE, GATEWAY_UNREACHABLE, ALREADY_SETTLED, ERROR)
        },
    }
    logger.info("reconcile pass: %s", counts)
    return counts
