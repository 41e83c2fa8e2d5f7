"""The one handler for outcome events, called by both the push endpoint and the pull consumer.

Returns what it did ("applied", "duplicate", "rejected", "poison") when the message may be
acknowledged, and raises TransientError when it must be redelivered (database or Firestore down).
"""

import logging
from collections.abc import Mapping

from django.db import DatabaseError
from google.api_core.exceptions import GoogleAPIError

from binpay_common import events, tracing
from binpay_common.gateway import GatewayAmbiguous, GatewayRejected
from binpay_common.logs import correlation_id_var, payment_id_var
from payments import settlement, sweeper
from payments.claims import ClaimBusy
from payments.models import PaymentStatus
from payments.services import Applied, OutcomeResult, UnknownPayment

logger = logging.getLogger(__name__)


class TransientError(Exception):
    """The effects could not be made durable now; redeliver the message."""


class PoisonMessage(Exception):
    """The message can never be processed; acknowledge it (after logging) so it is not retried forever."""


def parse_outcome(data: bytes, attributes: Mapping[str, str]) -> tuple[str, dict]:
    try:
        return events.decode(data, attributes, (events.PAYMENT_COMPLETED, events.PAYMENT_ROLLBACK))
    except events.PoisonMessage as error:
        raise PoisonMessage(str(error)) from None


def _step_detail(event_type: str, event: dict) -> dict:
    detail = {"event_id": event["event_id"], "charge_id": event.get("charge_id") or None}
    if event_type == events.PAYMENT_ROLLBACK:
        detail.update(
            {"reason_code": event["reason_code"], "failed_step": event["failed_step"], "refunded": event["refunded"]}
        )
    return detail


def _settle(event_type: str, event: dict) -> OutcomeResult:
    settle = settlement.capture if event_type == events.PAYMENT_COMPLETED else settlement.release
    return settle(event=event, detail=_step_detail(event_type, event))


@tracing.consumes_message
def handle_outcome_message(*, data: bytes, attributes: Mapping[str, str]) -> str:
    correlation_token = correlation_id_var.set(attributes.get("correlation_id"))
    payment_token = payment_id_var.set(attributes.get("payment_id"))
    try:
        try:
            event_type, event = parse_outcome(data, attributes)
        except PoisonMessage as error:
            logger.error("poison message acknowledged without effect: %s", error)
            return "poison"
        try:
            outcome = _settle(event_type, event)
            if outcome.result is Applied.REJECTED and _charged_after_rollback(event_type, outcome):
                # Money took on a payment we already rolled back: sweep it now, under its claim.
                refunds = sweeper.sweep_payment(outcome.payment, holder="consumer", reported=(event["intent_id"],))
                return "late_charge_refunded" if refunds else outcome.result
        except UnknownPayment as error:
            logger.error("poison message acknowledged without effect: %s (%s)", error, event_type)
            return "poison"
        except DatabaseError as error:
            raise TransientError(f"database: {error}") from error
        except (ClaimBusy, GatewayAmbiguous, GatewayRejected, GoogleAPIError, ValueError) as error:
            # The database change is committed and the inbox remembers it; the redelivery does the rest.
            raise TransientError(f"{type(error).__name__}: {error}") from error
        return outcome.result
    finally:
        correlation_id_var.reset(correlation_token)
        payment_id_var.reset(payment_token)


def _charged_after_rollback(event_type: str, outcome: OutcomeResult) -> bool:
    return event_type == events.PAYMENT_COMPLETED and outcome.payment.status == PaymentStatus.ROLLED_BACK
