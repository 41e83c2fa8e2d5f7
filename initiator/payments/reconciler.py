"""Settles payments the saga left open ("Reconciliation and the fence" in docs/contracts.md).

Per payment pending longer than PAYMENT_TIMEOUT_SECONDS (or parked as needs_attention because the
gateway was unreachable):

1. fence the saga-log document (skipped while a processor lease is live, plus grace);
2. if the processor logged an outcome whose event never arrived, follow it;
3. otherwise cancel the payment's charge key at the gateway — the only proof that no charge
   exists: canceled → CHARGE_CANCELED and release (`expired`); the key already made a charge →
   CHARGED (when the log lacks it) and capture (release if it was refunded already), or
   `needs_attention (charge_mismatch)` when its amount or currency is not the payment's; a decline
   → release with its code; gateway unreachable → retry next
   pass, and after twice the timeout `needs_attention (gateway_unreachable)`, which later passes
   retry by themselves once the gateway answers.

Per payment pending longer than PAYMENT_REDRIVE_AFTER_SECONDS but not yet PAYMENT_TIMEOUT_SECONDS
whose payment.initiated went out that long ago while no processor delivery holds it and none has
published an outcome: publish payment.initiated again (the same event id). Pub/Sub may not
deliver a message again after the subscriber that held it died (the emulator loses such messages
for minutes, see the README), and a dead-lettered message is never delivered again; the processor
deduplicates by payment.

Then the late-charge sweeper (payments.late_charges) looks at rolled-back payments of the last
LATE_CHARGE_WINDOW_SECONDS. A pass is bounded by RECONCILE_BATCH_SIZE payments of each kind and
RECONCILE_TIME_BUDGET_SECONDS, and recorded as a ReconcilerPass. Settling goes through
payments.settlement with deterministic event ids, so concurrent reconcilers and late events
change nothing twice.
"""

import enum
import logging
import time
import uuid
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.db.models import F, Q
from django.utils import timezone

from binpay_common.logs import correlation_id_var, payment_id_var
from payments import clients, events, late_charges, outbox, saga_log, settlement
from payments.gateway import GatewayUnavailable
from payments.models import Payment, PaymentStatus, ReconcilerPass
from payments.services import Applied, OutcomeResult

logger = logging.getLogger("payments.reconciler")

REASON_EXPIRED = "expired"
REASON_GATEWAY_UNREACHABLE = "gateway_unreachable"
REASON_CHARGE_MISMATCH = "charge_mismatch"
SOURCE = "reconciler"


class Result(enum.StrEnum):
    """What one payment's reconciliation ended in (a pass counts these)."""

    CAPTURED = "captured"
    COMPENSATED = "compensated"
    NEEDS_ATTENTION = "needs_attention"
    LEASE_LIVE = "skipped_lease_live"
    GATEWAY_UNREACHABLE = "gateway_unreachable"
    ALREADY_SETTLED = "already_settled"
    LATE_CHARGES_REFUNDED = "late_charges_refunded"
    REDRIVEN = "redriven"
    IN_PROGRESS = "skipped_in_progress"
    ERROR = "error"


def reconciler_event_id(payment: Payment, event_type: str) -> uuid.UUID:
    """Same id on every run and in every reconciler, distinct from the processor's outcome event ids."""
    return uuid.uuid5(payment.pk, f"reconciler:{event_type}")


def _settled(outcome: OutcomeResult, result: Result) -> Result:
    return result if outcome.result is Applied.APPLIED else Result.ALREADY_SETTLED


def _capture(payment: Payment, charge_id: str, amount: int, currency: str) -> Result:
    event_id = reconciler_event_id(payment, events.PAYMENT_COMPLETED)
    outcome = settlement.capture(
        event={
            "event_id": event_id,
            "payment_id": payment.pk,
            "charge_id": charge_id,
            "amount": amount,
            "currency": currency,
        },
        detail={"event_id": str(event_id), "charge_id": charge_id, "source": SOURCE},
    )
    return _settled(outcome, Result.CAPTURED)


def _release(payment: Payment, reason_code: str, charge_id: str | None = None) -> Result:
    event_id = reconciler_event_id(payment, events.PAYMENT_ROLLBACK)
    outcome = settlement.release(
        event={"event_id": event_id, "payment_id": payment.pk, "reason_code": reason_code, "charge_id": charge_id},
        detail={"event_id": str(event_id), "reason_code": reason_code, "charge_id": charge_id, "source": SOURCE},
    )
    return _settled(outcome, Result.COMPENSATED)


def _hold(payment: Payment, reason: str, **detail) -> Result:
    outcome = settlement.hold_for_attention(payment_id=payment.pk, reason=reason, detail={**detail, "source": SOURCE})
    return Result.NEEDS_ATTENTION if outcome.step is not None else Result.ALREADY_SETTLED


def _follow_logged_outcome(payment: Payment, document: dict) -> Result | None:
    """The processor logged an outcome whose event never reached us: settle as it says."""
    steps = set(document.get("steps_done") or [])
    event = (document.get("outcome") or {}).get("event") or {}
    if saga_log.STEP_COMPLETED in steps and event.get("charge_id"):
        return _capture(payment, event["charge_id"], event["amount"], event["currency"])
    if steps & {saga_log.STEP_FAILED, saga_log.STEP_REFUNDED} and event.get("reason_code"):
        return _release(payment, event["reason_code"], event.get("charge_id"))
    return None


def _matches(payment: Payment, charge: dict) -> bool:
    return (charge.get("amount"), str(charge.get("currency", "")).upper()) == (payment.amount, payment.currency)


def reconcile_payment(payment: Payment, *, timeout: timedelta) -> Result:
    if not saga_log.fence(payment=payment):
        return Result.LEASE_LIVE
    document = saga_log.read_document(payment.pk)
    followed = _follow_logged_outcome(payment, document)
    if followed is not None:
        return followed
    try:
        cancellation = clients.gateway().cancel_charge(payment.pk)
    except GatewayUnavailable as error:
        if payment.status == PaymentStatus.NEEDS_ATTENTION or timezone.now() - payment.created_at < 2 * timeout:
            logger.warning("gateway unreachable; retrying next pass: %s", error)
            return Result.GATEWAY_UNREACHABLE
        return _hold(payment, REASON_GATEWAY_UNREACHABLE, error=str(error)[:500])
    if cancellation.canceled:
        settlement.log_gateway_fact(payment=payment, step=saga_log.STEP_CHARGE_CANCELED, detail={"source": SOURCE})
        return _release(payment, REASON_EXPIRED)
    charge = cancellation.charge
    if charge.get("status") == "failed":
        code = charge.get("failure_code") or "card_declined"
        settlement.log_gateway_fact(
            payment=payment,
            step=saga_log.STEP_CHARGE_DECLINED,
            detail={"reason_code": code, "charge_id": charge.get("id"), "source": SOURCE},
        )
        return _release(payment, code)
    if not _matches(payment, charge):
        logger.error("charge %s does not match the payment: %s", charge.get("id"), charge)
        return _hold(payment, REASON_CHARGE_MISMATCH, charge_id=charge.get("id"))
    settlement.log_gateway_fact(
        payment=payment, step=saga_log.STEP_CHARGED, detail={"charge_id": charge["id"], "source": SOURCE}
    )
    if charge.get("refunded"):
        # Charged and refunded already (a processor that died before logging it): the money is back.
        settlement.log_gateway_fact(
            payment=payment, step=saga_log.STEP_REFUNDED, detail={"charge_id": charge["id"], "source": SOURCE}
        )
        return _release(payment, REASON_EXPIRED, charge["id"])
    return _capture(payment, charge["id"], payment.amount, payment.currency)


def _redrive(payment: Payment) -> Result:
    document = saga_log.read_document(payment.pk)
    if document.get(saga_log.FENCED) or saga_log.processor_finished(document) or saga_log.lease_live(document):
        return Result.IN_PROGRESS
    if not outbox.republish(payment, events.PAYMENT_INITIATED):
        # Another reconciler holds the row, or the publish failed (the outbox logged why): next pass.
        return Result.IN_PROGRESS
    logger.warning(
        "payment.initiated published again: no processor has taken the payment up since it was published (saga log %s)",
        document.get("state") or "absent",
    )
    return Result.REDRIVEN


def _sweep_late_charges(payment: Payment) -> Result:
    refunds = late_charges.refund_standing_charges(payment, detail={"source": SOURCE, "late_charge": True})
    Payment.objects.filter(pk=payment.pk).update(late_charge_checked_at=timezone.now())
    return Result.LATE_CHARGES_REFUNDED if refunds else Result.ALREADY_SETTLED


def _in_context(payment: Payment, work) -> Result:
    correlation_token = correlation_id_var.set(payment.correlation_id)
    payment_token = payment_id_var.set(str(payment.pk))
    try:
        return work(payment)
    except Exception as error:
        # Database, Firestore or gateway trouble: the payment stays as it is and the next pass tries again.
        logger.error("reconciling failed: %s: %s", type(error).__name__, error)
        close_old_connections()
        return Result.ERROR
    finally:
        correlation_id_var.reset(correlation_token)
        payment_id_var.reset(payment_token)


def reconcile(*, older_than_seconds: int) -> dict[str, int]:
    """One bounded pass; returns counts by result (and records them as a ReconcilerPass)."""
    started_at, started = timezone.now(), time.monotonic()
    timeout = timedelta(seconds=older_than_seconds)
    batch = settings.RECONCILE_BATCH_SIZE
    open_payments = list(
        Payment.objects.filter(
            Q(status=PaymentStatus.PENDING, created_at__lte=started_at - timeout)
            | Q(status=PaymentStatus.NEEDS_ATTENTION, failure_reason=REASON_GATEWAY_UNREACHABLE)
        ).order_by("created_at", "id")[:batch]
    )
    recheck_before = started_at - timedelta(seconds=settings.LATE_CHARGE_CHECK_INTERVAL_SECONDS)
    rolled_back = list(
        Payment.objects.filter(
            Q(late_charge_checked_at__isnull=True) | Q(late_charge_checked_at__lte=recheck_before),
            status=PaymentStatus.ROLLED_BACK,
            updated_at__gte=started_at - timedelta(seconds=settings.LATE_CHARGE_WINDOW_SECONDS),
        ).order_by(F("late_charge_checked_at").asc(nulls_first=True), "updated_at")[:batch]
    )
    redrive_after = timedelta(seconds=settings.PAYMENT_REDRIVE_AFTER_SECONDS)
    stalled = []
    if redrive_after < timeout:
        stalled = list(
            Payment.objects.filter(
                status=PaymentStatus.PENDING,
                created_at__lte=started_at - redrive_after,
                created_at__gt=started_at - timeout,
                outbox_events__event_type=events.PAYMENT_INITIATED,
                outbox_events__published_at__lte=started_at - redrive_after,
            ).order_by("created_at", "id")[:batch]
        )
    summary: Counter[str] = Counter()
    work = [(payment, lambda p: reconcile_payment(p, timeout=timeout)) for payment in open_payments]
    work += [(payment, _redrive) for payment in stalled]
    work += [(payment, _sweep_late_charges) for payment in rolled_back]
    examined = 0
    for payment, step in work:
        if time.monotonic() - started > settings.RECONCILE_TIME_BUDGET_SECONDS:
            logger.warning("reconcile pass stopped at its time budget; the next pass goes on")
            break
        examined += 1
        summary[_in_context(payment, step)] += 1
    counts = {"examined": examined, **{result.value: summary[result] for result in Result}}
    ReconcilerPass.objects.create(started_at=started_at, finished_at=timezone.now(), counts=counts)
    logger.info("reconcile pass: %s", counts, extra={"reconcile_counts": counts})
    return counts
