"""Settles payments the saga left open (docs/protocol.md §6, "Reconciler").

A pass does three kinds of work, each with its own share of the pass's time budget so that none
starves the others, and each ordered by when it is due:

- **settle**: payments pending past PAYMENT_TIMEOUT_SECONDS, and `needs_attention(gateway_unreachable)`
  ones whose retry is due. Under the payment's claim (the fence: no processor acts on it again): a
  processor outcome the log holds is followed; an announced refund is finished and the hold
  released; otherwise the intent the log names is closed — canceled: release (`expired`, or the
  decline's code); it succeeded first: capture; another amount: `needs_attention(charge_mismatch)`;
  no intent named: nothing can land, release. A provider that is not definitive leaves the payment
  for a later pass, with exponential backoff; past twice the payment timeout it becomes
  `needs_attention(gateway_unreachable)`, still retried with backoff.
- **redrive**: payments pending past PAYMENT_REDRIVE_AFTER_SECONDS whose payment.initiated went out
  that long ago while no processor delivery holds them: published again (same event id).
- **sweep**: settled payments whose sweep is due (payments.sweeper).

Every pass is recorded as a ReconcilerPass with its counts. Settling goes through payments.settlement
with deterministic event ids, so a repeat changes nothing twice.
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

from binpay_common import events, steps
from binpay_common.gateway import GatewayAmbiguous, IntentStatus
from binpay_common.logs import correlation_id_var, payment_id_var
from binpay_common.saga_log import FENCED, LeaseLost, lease_live
from payments import clients, outbox, settlement, sweeper
from payments.claims import ClaimBusy, PaymentClaim, claimed
from payments.models import Payment, PaymentStatus, ReconcilerPass
from payments.services import Applied, OutcomeResult

logger = logging.getLogger("payments.reconciler")

REASON_EXPIRED = "expired"
REASON_GATEWAY_UNREACHABLE = "gateway_unreachable"
REASON_CHARGE_MISMATCH = "charge_mismatch"
REASON_REFUND_FAILED = "refund_failed"
HOLDER = "reconciler"
# Each kind of work gets this share of a pass's budget first; what one leaves unused goes to the next.
BUDGET_SHARES = (("settle", 0.5), ("redrive", 0.2), ("sweep", 0.3))


class Result(enum.StrEnum):
    """What one payment's reconciliation ended in (a pass counts these)."""

    CAPTURED = "captured"
    COMPENSATED = "compensated"
    NEEDS_ATTENTION = "needs_attention"
    LEASE_LIVE = "skipped_lease_live"
    GATEWAY_UNREACHABLE = "gateway_unreachable"
    ALREADY_SETTLED = "already_settled"
    LATE_CHARGES_REFUNDED = "late_charges_refunded"
    SWEPT = "swept"
    REDRIVEN = "redriven"
    IN_PROGRESS = "skipped_in_progress"
    ERROR = "error"


def reconciler_event_id(payment: Payment, event_type: str) -> uuid.UUID:
    """Same id on every run and in every reconciler, distinct from the processor's outcome event ids."""
    return uuid.uuid5(payment.pk, f"reconciler:{event_type}")


def _settled(outcome: OutcomeResult, result: Result) -> Result:
    return result if outcome.result is Applied.APPLIED else Result.ALREADY_SETTLED


def _capture(claim: PaymentClaim, charge_id: str | None) -> Result:
    payment = claim.payment
    event_id = reconciler_event_id(payment, events.PAYMENT_COMPLETED)
    outcome = settlement.capture(
        event={
            "event_id": event_id,
            "payment_id": payment.pk,
            "charge_id": charge_id,
            "amount": payment.amount,
            "currency": payment.currency,
        },
        detail={"event_id": str(event_id), "charge_id": charge_id, **claim.who},
        claim_seq=claim.seq,
    )
    return _settled(outcome, Result.CAPTURED)


def _release(claim: PaymentClaim, reason_code: str, charge_id: str | None = None) -> Result:
    payment = claim.payment
    event_id = reconciler_event_id(payment, events.PAYMENT_ROLLBACK)
    outcome = settlement.release(
        event={"event_id": event_id, "payment_id": payment.pk, "reason_code": reason_code, "charge_id": charge_id},
        detail={"event_id": str(event_id), "reason_code": reason_code, "charge_id": charge_id, **claim.who},
        claim_seq=claim.seq,
    )
    return _settled(outcome, Result.COMPENSATED)


def _hold(claim: PaymentClaim, reason: str, *, retry: bool = False, **detail) -> Result:
    retry_at = _next_attempt(claim.payment) if retry else None
    outcome = settlement.hold_for_attention(
        payment_id=claim.payment.pk,
        reason=reason,
        detail={**detail, **claim.who},
        retry_at=retry_at,
        claim_seq=claim.seq,
    )
    return Result.NEEDS_ATTENTION if outcome.result is not Applied.REJECTED else Result.ALREADY_SETTLED


def _follow_logged_outcome(claim: PaymentClaim) -> Result | None:
    """The processor logged its outcome and its event never reached us: settle as it says."""
    event = (claim.doc.get("outcome") or {}).get("event") or {}
    if event.get("event_type") == events.PAYMENT_COMPLETED:
        return _capture(claim, event["charge_id"])
    if event.get("event_type") == events.PAYMENT_ROLLBACK:
        return _release(claim, event["reason_code"], event.get("charge_id"))
    return None


def _settle(claim: PaymentClaim) -> Result:
    """Decide a claimed payment from its log and the provider (docs/protocol.md §6)."""
    followed = _follow_logged_outcome(claim)
    if followed is not None:
        return followed
    intent_id = claim.intent_id
    if intent_id is None:
        # No intent was ever logged, so no confirm was ever sent: nothing can land.
        return _release(claim, REASON_EXPIRED)
    if claim.has(steps.REFUND_REQUESTED):
        # A refund was announced (its sender died): it is irrevocable. Finish it, then release.
        refund = claim.refund(intent_id, reason_code=REASON_EXPIRED)
        if not refund.gives_money_back:
            return _hold(claim, REASON_REFUND_FAILED, refund_id=refund.id, intent_id=intent_id)
        return _release(claim, claim.doc.get("refund_reason") or REASON_EXPIRED, claim.doc.get("charge_id"))
    intent = claim.close(intent_id, reason_code=REASON_EXPIRED)
    if intent.status is IntentStatus.CANCELED:
        return _release(claim, claim.doc.get("decline_code") or REASON_EXPIRED)
    payment = claim.payment
    if (intent.amount, intent.currency) != (payment.amount, payment.currency):
        logger.error("intent %s took %s %s, not the payment's amount", intent.id, intent.amount, intent.currency)
        return _hold(claim, REASON_CHARGE_MISMATCH, intent_id=intent.id, charge_id=intent.charge_id)
    if sweeper.refunded(intent.id):
        # Succeeded and refunded already (outside the saga): the money is back.
        claim.refund(intent.id, reason_code=REASON_EXPIRED)
        return _release(claim, REASON_EXPIRED, intent.charge_id)
    return _capture(claim, intent.charge_id)


def reconcile_payment(payment: Payment, *, timeout: timedelta) -> Result:
    try:
        with claimed(payment, HOLDER) as claim:
            current = claim.payment
            if current.status == PaymentStatus.PENDING or (
                current.status == PaymentStatus.NEEDS_ATTENTION and current.failure_reason == REASON_GATEWAY_UNREACHABLE
            ):
                try:
                    return _settle(claim)
                except GatewayAmbiguous as error:
                    return _not_definitive(claim, timeout, error)
            return Result.ALREADY_SETTLED
    except ClaimBusy:
        return Result.LEASE_LIVE
    except LeaseLost as error:
        # Paused past the lease: a newer holder decides the payment; this pass wrote nothing more.
        logger.warning("claim lost mid-settlement (a holder paused past its lease?): %s", error)
        return Result.LEASE_LIVE


def _not_definitive(claim: PaymentClaim, timeout: timedelta, error: GatewayAmbiguous) -> Result:
    payment = claim.payment
    if payment.status == PaymentStatus.PENDING and timezone.now() - payment.created_at >= 2 * timeout:
        return _hold(claim, REASON_GATEWAY_UNREACHABLE, retry=True, error=str(error)[:500])
    Payment.objects.filter(pk=payment.pk).update(
        reconcile_attempts=F("reconcile_attempts") + 1, next_attempt_at=_next_attempt(payment)
    )
    logger.warning("provider not definitive; retried with backoff: %s", error)
    return Result.GATEWAY_UNREACHABLE


def _next_attempt(payment: Payment):
    backoff = min(
        settings.RECONCILE_BACKOFF_MAX_SECONDS, settings.RECONCILE_BACKOFF_SECONDS * 2**payment.reconcile_attempts
    )
    return timezone.now() + timedelta(seconds=backoff)


def _redrive(payment: Payment) -> Result:
    document = clients.saga_log().read(str(payment.pk))
    if document.get(FENCED) or document.get("outcome_published") or lease_live(document):
        return Result.IN_PROGRESS
    if not outbox.republish(payment, events.PAYMENT_INITIATED):
        # Another reconciler holds the row, or the publish failed (the outbox logged why): next pass.
        return Result.IN_PROGRESS
    logger.warning(
        "payment.initiated published again: no processor has taken the payment up since it was published (saga log %s)",
        document.get("state") or "absent",
    )
    return Result.REDRIVEN


def _sweep(payment: Payment) -> Result:
    try:
        refunds = sweeper.sweep_payment(payment, holder="sweeper")
    except ClaimBusy:
        return Result.LEASE_LIVE
    except GatewayAmbiguous as error:
        # The provider cannot say now: an outage, not a failure of ours. Look again after a backoff.
        retry_at = timezone.now() + timedelta(seconds=settings.RECONCILE_BACKOFF_SECONDS)
        Payment.objects.filter(pk=payment.pk).update(sweep_due_at=retry_at)
        logger.warning("sweep: the provider could not answer; looked at again from %s: %s", retry_at, error)
        return Result.GATEWAY_UNREACHABLE
    return Result.LATE_CHARGES_REFUNDED if refunds else Result.SWEPT


def _in_context(payment: Payment, work) -> Result:
    correlation_token = correlation_id_var.set(payment.correlation_id)
    payment_token = payment_id_var.set(str(payment.pk))
    try:
        return work(payment)
    except Exception as error:
        # Database, Firestore or provider trouble: the payment stays as it is and the next pass tries again.
        logger.error("reconciling failed: %s: %s", type(error).__name__, error)
        close_old_connections()
        return Result.ERROR
    finally:
        correlation_id_var.reset(correlation_token)
        payment_id_var.reset(payment_token)


def _work(started_at, timeout: timedelta) -> dict[str, tuple[list[Payment], object]]:
    """The pass's work by kind, each list ordered by when it is due."""
    batch = settings.RECONCILE_BATCH_SIZE
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=started_at)
    open_payments = list(
        Payment.objects.filter(
            due
            & (
                Q(status=PaymentStatus.PENDING, created_at__lte=started_at - timeout)
                | Q(status=PaymentStatus.NEEDS_ATTENTION, failure_reason=REASON_GATEWAY_UNREACHABLE)
            )
        ).order_by(F("next_attempt_at").asc(nulls_first=True), "created_at", "id")[:batch]
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
    to_sweep = list(Payment.objects.filter(sweep_due_at__lte=started_at).order_by("sweep_due_at", "id")[:batch])
    return {
        "settle": (open_payments, lambda p: reconcile_payment(p, timeout=timeout)),
        "redrive": (stalled, _redrive),
        "sweep": (to_sweep, _sweep),
    }


def reconcile(*, older_than_seconds: int) -> dict[str, int]:
    """One bounded pass; returns counts by result (and records them as a ReconcilerPass)."""
    started_at, started = timezone.now(), time.monotonic()
    work = _work(started_at, timedelta(seconds=older_than_seconds))
    summary: Counter[str] = Counter()
    examined = 0
    budget = settings.RECONCILE_TIME_BUDGET_SECONDS
    spent_before = 0.0
    for kind, share in BUDGET_SHARES:
        payments, step = work[kind]
        # This kind's share, plus whatever the kinds before it left unused.
        allowance = budget * sum(s for _, s in BUDGET_SHARES[: BUDGET_SHARES.index((kind, share)) + 1])
        for payment in payments:
            if time.monotonic() - started > allowance:
                logger.warning(
                    "reconcile pass: %s stopped at its share of the time budget; the next pass goes on", kind
                )
                break
            examined += 1
            summary[_in_context(payment, step)] += 1
        spent_before = time.monotonic() - started
    counts = {"examined": examined, **{result.value: summary[result] for result in Result}}
    ReconcilerPass.objects.create(started_at=started_at, finished_at=timezone.now(), counts=counts)
    logger.info("reconcile pass: %s (%.1f s)", counts, spent_before, extra={"reconcile_counts": counts})
    return counts
