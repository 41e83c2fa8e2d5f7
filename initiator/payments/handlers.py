"""The one handler for outcome events, called by both the push endpoint and the pull consumer.

Returns what it did ("applied", "duplicate", "rejected", "poison") when the message may be
acknowledged, and raises TransientError when it must be redelivered (database or Firestore down).
"""

import json
import logging
from collections.abc import Mapping

from django.db import DatabaseError
from google.api_core.exceptions import GoogleAPIError

from binpay_common import tracing
from binpay_common.logs import correlation_id_var, payment_id_var
from payments import events, late_charges, settlement
from payments.gateway import GatewayUnavailable
from payments.models import PaymentStatus
from payments.services import Applied, OutcomeResult, UnknownPayment

logger = logging.getLogger(__name__)


class TransientError(Exception):
    """The effects could not be made durable now; redeliver the message."""


class PoisonMessage(Exception):
    """The message can never be processed; acknowledge it (after logging) so it is not retried forever."""


def parse_outcome(data: bytes, attributes: Mapping[str, str]) -> tuple[str, dict]:
    event_type = attributes.get("event_type")
    serializer_class = events.OUTCOME_SERIALIZERS.get(event_type)
    if serializer_class is None:
        raise PoisonMessage(f"unknown event_type {event_type!r}")
    if attributes.get("schema_version") != str(events.SCHEMA_VERSION):
        raise PoisonMessage(f"unsupported schema_version {attributes.get('schema_version')!r}")
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PoisonMessage(f"data is not UTF-8 JSON: {error}") from None
    if not isinstance(body, dict):
        raise PoisonMessage("data is not a JSON object")
    serializer = serializer_class(data=body)
    if not serializer.is_valid():
        raise PoisonMessage(f"body does not match the {event_type} schema: {serializer.errors}")
    event = serializer.validated_data
    if event["event_type"] != event_type:
        raise PoisonMessage(f"attribute event_type {event_type} but body says {event['event_type']}")
    for key in ("event_id", "payment_id"):
        if attributes.get(key) not in (None, str(event[key])):
            raise PoisonMessage(f"attribute {key} {attributes.get(key)} differs from the body's {event[key]}")
    return event_type, event


def _step_detail(event_type: str, event: dict) -> dict:
    detail = {"event_id": str(event["event_id"]), "charge_id": event.get("charge_id") or None}
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
                # A charge landed on a payment we already rolled back: refund it now, not only log it.
                refunds = late_charges.refund_standing_charges(
                    outcome.payment, detail={"source": "consumer", "late_charge": True}
                )
                return "late_charge_refunded" if refunds else outcome.result
        except UnknownPayment as error:
            logger.error("poison message acknowledged without effect: %s (%s)", error, event_type)
            return "poison"
        except DatabaseError as error:
            raise TransientError(f"database: {error}") from error
        except (GatewayUnavailable, GoogleAPIError, ValueError) as error:
            # The database change is committed and the inbox remembers it; the redelivery does the rest.
            raise TransientError(f"{type(error).__name__}: {error}") from error
        return outcome.result
    finally:
        correlation_id_var.reset(correlation_token)
        payment_id_var.reset(payment_token)


def _charged_after_rollback(event_type: str, outcome: OutcomeResult) -> bool:
    return event_type == events.PAYMENT_COMPLETED and outcome.payment.status == PaymentStatus.ROLLED_BACK
