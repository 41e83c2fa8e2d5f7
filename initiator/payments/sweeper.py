"""The net under the protocol: money found standing at the provider where none should (docs/protocol.md §6).

The protocol already means that no intent the saga log names can hold money on a rolled-back
payment, and that a completed payment has exactly one. The sweeper looks anyway, under the payment's
claim, for what the provider holds against it: an intent made outside the saga (the dashboard,
another integration, a create whose key was spent), a refund still pending, a refund that failed.

- The intents looked at: every intent the log names, and — once the provider's search can be trusted
  to have caught up (PROVIDER_SEARCH_LAG_SECONDS after the payment was created) — every intent the
  search finds for it.
- A rolled-back payment: a succeeded intent is refunded, an unconfirmed one canceled.
- A completed payment: any succeeded intent other than the one it captured is refunded.
- Every refund the log names is followed until it succeeded; one that failed is logged REFUND_FAILED,
  flagged on the payment (`refund_failed_at`) and logged at ERROR, where operators look.

Rolled-back payments are swept every LATE_CHARGE_CHECK_INTERVAL_SECONDS for LATE_CHARGE_WINDOW_SECONDS;
completed ones only when a webhook says something happened to their intents (a periodic search of
every completed payment would cost a search call per payment per interval, far past Stripe's rate
limits), and once more when the search has caught up if the poke came before. A `payment.completed`
for a rolled-back payment sweeps it at once (the consumer).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from binpay_common.gateway import GatewayRejected, Intent, IntentStatus, Refund, RefundStatus
from payments import clients
from payments.claims import PaymentClaim, claimed
from payments.models import Payment, PaymentStatus

logger = logging.getLogger(__name__)

LATE_CHARGE = "late_charge"
UNCONFIRMED = (IntentStatus.REQUIRES_PAYMENT_METHOD, IntentStatus.REQUIRES_CONFIRMATION, IntentStatus.REQUIRES_ACTION)


def refunded(intent_id: str) -> bool:
    """The provider holds a refund giving the intent's money back (pending or succeeded)."""
    return any(refund.gives_money_back for refund in clients.gateway().refunds_of(intent_id))


def sweep_payment(payment: Payment, *, holder: str, reported: tuple[str, ...] = ()) -> list[Refund]:
    """Sweep one settled payment under its claim; returns the refunds it made. ClaimBusy when held.

    `reported`: intents an event says took money for the payment (a late payment.completed), looked at too.
    """
    with claimed(payment, holder) as claim:
        payment = claim.payment
        if payment.status not in (PaymentStatus.ROLLED_BACK, PaymentStatus.COMPLETED):
            return []
        made = []
        pending = False
        for intent in _intents(claim, reported):
            refund = _sweep_intent(claim, intent)
            if refund is not None:
                made.append(refund)
        for intent_id in _logged_intents(claim):
            pending |= _follow_refunds(claim, intent_id)
        _reschedule(payment, pending)
        return made


def _intents(claim: PaymentClaim, reported: tuple[str, ...]) -> list[Intent]:
    """The intents to look at: the log's and the reported ones, and the search's once it has caught up
    (never proof, only a net)."""
    gateway = clients.gateway()
    found = {intent_id: gateway.retrieve_intent(intent_id) for intent_id in _logged_intents(claim)}
    for intent_id in reported:
        if intent_id in found:
            continue
        try:
            found[intent_id] = gateway.retrieve_intent(intent_id)
        except GatewayRejected as error:
            # An event naming an intent the provider does not know proves nothing; the search still looks.
            logger.warning("reported intent %s is unknown to the provider: %s", intent_id, error)
    payment = claim.payment
    if timezone.now() >= _search_caught_up(payment):
        for intent in gateway.search_intents(str(payment.pk)):
            found.setdefault(intent.id, intent)
    return list(found.values())


def _search_caught_up(payment: Payment):
    """From when the provider's search can be trusted to show the payment's intents."""
    return payment.created_at + timedelta(seconds=settings.PROVIDER_SEARCH_LAG_SECONDS)


def _logged_intents(claim: PaymentClaim) -> list[str]:
    """The payment's own intent and every intent a step names."""
    named = [claim.intent_id] if claim.intent_id else []
    for identity in claim.doc.get("steps_done") or []:
        _, _, intent_id = identity.partition(":")
        if intent_id and intent_id not in named:
            named.append(intent_id)
    return named


def _sweep_intent(claim: PaymentClaim, intent: Intent) -> Refund | None:
    payment = claim.payment
    captured = payment.status == PaymentStatus.COMPLETED and intent.id == claim.intent_id
    if intent.status is IntentStatus.SUCCEEDED and not captured and not refunded(intent.id):
        refund = claim.refund(intent.id, reason_code=LATE_CHARGE)
        if not refund.gives_money_back:
            # Its refund failed (no new one is sent): surfaced by _follow_refunds, not a refund made.
            return None
        logger.error(
            "money standing on a %s payment: intent %s (%s %s) refunded as %s",
            payment.status,
            intent.id,
            intent.amount,
            intent.currency,
            refund.id,
            extra={"late_charge": True, "intent_id": intent.id, "refund_id": refund.id},
        )
        return refund
    if intent.status in UNCONFIRMED:
        # Never confirmed, so it moved no money; canceled so it never can.
        claim.close(intent.id, reason_code=LATE_CHARGE)
    return None


def _follow_refunds(claim: PaymentClaim, intent_id: str) -> bool:
    """Follow the intent's refunds; True while one is still pending. A failed one is surfaced."""
    refunds = clients.gateway().refunds_of(intent_id)
    if any(refund.status is RefundStatus.SUCCEEDED for refund in refunds):
        return False
    failed = [refund for refund in refunds if refund.status is RefundStatus.FAILED]
    if failed and not any(refund.gives_money_back for refund in refunds):
        claim.refund(intent_id, reason_code=LATE_CHARGE)  # logs REFUND_FAILED once (it sends no new refund)
        if claim.payment.refund_failed_at is None:
            Payment.objects.filter(pk=claim.payment.pk).update(refund_failed_at=timezone.now())
            logger.error(
                "refund %s of intent %s failed (%s): the customer's money is not back; an operator must act",
                failed[-1].id,
                intent_id,
                failed[-1].failure_reason,
                extra={"refund_failed": True, "intent_id": intent_id, "refund_id": failed[-1].id},
            )
        return False
    return any(refund.status is RefundStatus.PENDING for refund in refunds)


def _reschedule(payment: Payment, pending_refund: bool) -> None:
    """Due again after the interval while the window lasts (sooner while a refund is pending); a completed
    payment only once its search has caught up, if it has not yet; else not."""
    now = timezone.now()
    interval = timedelta(seconds=settings.LATE_CHARGE_CHECK_INTERVAL_SECONDS)
    window_ends = payment.updated_at + timedelta(seconds=settings.LATE_CHARGE_WINDOW_SECONDS)
    due = now + (interval / 4 if pending_refund else interval)
    if payment.status != PaymentStatus.ROLLED_BACK and not pending_refund:
        caught_up = _search_caught_up(payment)
        due = caught_up if now < caught_up else None
    elif due > window_ends and not pending_refund:
        due = None
    Payment.objects.filter(pk=payment.pk).update(sweep_due_at=due)


__all__ = ["claimed", "refunded", "sweep_payment"]
