"""Messages forwarded to the dead-letter topic after they kept failing ("Dead letters" in docs/contracts.md).

Each one is stored once (per message id) for operators. The payment it names is left to the
reconciler, which settles it only on a definitive answer from the provider: a dead-lettered message
says that deliveries failed (a slow provider, a processor holding the lease), not that no money
moved, and parking the payment as needs_attention stranded charged customers' holds. (A step a
killed consumer never wrote is not owed here: settlement steps are in the step outbox.) Called by
the push endpoint and the pull consumer; raises TransientError when it must be redelivered.
"""

import logging
import uuid
from collections.abc import Mapping

from django.conf import settings
from django.db import DatabaseError, transaction

from binpay_common.logs import correlation_id_var, payment_id_var
from payments.handlers import TransientError
from payments.models import DeadLetter, Payment

logger = logging.getLogger(__name__)


def is_dead_letter_subscription(subscription: str | None) -> bool:
    """The push envelope names the full path projects/<project>/subscriptions/<name>."""
    name = settings.PUBSUB_DEAD_LETTER_SUBSCRIPTION
    return isinstance(subscription, str) and (subscription == name or subscription.endswith(f"/{name}"))


def _payment_id(attributes: Mapping[str, str]) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(attributes.get("payment_id")))
    except ValueError:
        return None


def handle_dead_letter(
    *,
    subscription: str,
    message_id: str,
    data: bytes,
    attributes: Mapping[str, str],
    delivery_attempt: int | None,
) -> str:
    """Returns "stored" (first delivery) or "duplicate"; the payment's fate is logged."""
    payment_id = _payment_id(attributes)
    correlation_token = correlation_id_var.set(attributes.get("correlation_id"))
    payment_token = payment_id_var.set(str(payment_id) if payment_id else None)
    try:
        try:
            with transaction.atomic():
                _, created = DeadLetter.objects.get_or_create(
                    message_id=message_id,
                    defaults={
                        "subscription": subscription,
                        "attributes": dict(attributes),
                        "data": data,
                        "delivery_attempt": delivery_attempt,
                        "payment_id": payment_id,
                    },
                )
                if payment_id is not None and not Payment.objects.filter(pk=payment_id).exists():
                    logger.error("dead letter %s names an unknown payment", message_id)
        except DatabaseError as error:
            raise TransientError(f"database: {error}") from error
        logger.error(
            "dead letter %s from %s stored (%s, event_type %s, source %s)",
            message_id,
            subscription,
            "new" if created else "again",
            attributes.get("event_type"),
            attributes.get("CloudPubSubDeadLetterSourceSubscription"),
        )
        return "stored" if created else "duplicate"
    finally:
        correlation_id_var.reset(correlation_token)
        payment_id_var.reset(payment_token)
