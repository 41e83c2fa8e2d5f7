"""The payment provider's webhooks: a reason to look again, never proof (docs/protocol.md §6).

A webhook is verified (Stripe-Signature, with PAYMENT_GATEWAY_WEBHOOK_SECRET), recorded once per event
id (ProviderEvent, the inbox), and makes its payment due: the sweeper for a settled payment, the
reconciler for one that needs attention. They retrieve the intent and act on what the provider says
now. An event that can tell nothing new (any event of a pending payment, which is the processor's; the
success of a completed payment's own charge) is answered and not written. Events come
duplicated, out of order or not at all (https://docs.stripe.com/webhooks): each is at most a poke,
and the reconciler and the sweeper find everything without them.
"""

import logging
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from binpay_common.gateway import WebhookEvent
from core.queries import unique_or_none
from payments import clients
from payments.models import Payment, PaymentStatus, ProviderEvent

logger = logging.getLogger(__name__)


def receive(payload: bytes, signature: str | None) -> str:
    """Verify and record one webhook; returns what it did. WebhookInvalid when it does not verify."""
    event = clients.gateway().parse_webhook(payload, signature)
    payment = _payment(event)
    if payment is not None and not _worth_a_look(payment, event):
        return "expected"
    try:
        with transaction.atomic():
            ProviderEvent.objects.create(event_id=event.id, event_type=event.type, payment=payment)
            if payment is not None:
                _make_due(payment)
    except IntegrityError:
        logger.info("webhook %s (%s) already received", event.id, event.type)
        return "duplicate"
    logger.info("webhook %s (%s) received", event.id, event.type, extra={"payment_id": event.payment_id})
    return "recorded" if payment is not None else "no_payment"


def _worth_a_look(payment: Payment, event: WebhookEvent) -> bool:
    """Whether the event could tell something the saga does not know; nothing is written when not.

    A pending payment is the processor's, which asks the provider itself. A completed payment's own
    charge succeeding is what completed it. Anything else on a settled payment (another intent's
    success, a refund's change) makes it due for a look.
    """
    if payment.status == PaymentStatus.PENDING:
        return False
    own_success = event.type == "payment_intent.succeeded" and event.charge_id == payment.charge_id
    return not (payment.status == PaymentStatus.COMPLETED and own_success)


def _payment(event: WebhookEvent) -> Payment | None:
    try:
        payment_id = uuid.UUID(str(event.payment_id))
    except ValueError:
        return None
    # Only what deciding reads: a webhook comes on every payment's path.
    return unique_or_none(Payment.objects.only("status", "charge_id").filter(pk=payment_id))


def _make_due(payment: Payment) -> None:
    now = timezone.now()
    if payment.status in (PaymentStatus.COMPLETED, PaymentStatus.ROLLED_BACK):
        Payment.objects.filter(pk=payment.pk).update(sweep_due_at=now)
    elif payment.status == PaymentStatus.NEEDS_ATTENTION:
        Payment.objects.filter(pk=payment.pk).update(next_attempt_at=now)
