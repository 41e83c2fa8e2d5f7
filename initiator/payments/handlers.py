"""The one handler for outcome events, called by both the push endpoint and the pull consumer.

Returns what it did ("applied", "duplicate", "rejected", "poison") when the message may be
acknowledged, and raises TransientError when it must be redelivered (database or Firestore down).
"""

import json
import logging
from collections.abc import Mapping

from django.db import DatabaseError

from core.context import correlation_id_var, payment_id_var
from observability import tracing
from payments import events, saga_log
from payments.services import OutcomeResult, UnknownPayment, outcome_apply

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


def _step_detail(outcome: OutcomeResult, event: dict) -> dict:
    detail = {"event_id": str(event["event_id"]), "charge_id": outcome.payment.charge_id}
    if outcome.step == saga_log.STEP_COMPENSATED:
        detail.update(
            {
                "reason_code": outcome.payment.failure_reason,
                "failed_step": event["failed_step"],
                "refunded": event["refunded"],
            }
        )
    return detail


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
            outcome = outcome_apply(event_type=event_type, event=event)
        except UnknownPayment as error:
            logger.error("poison message acknowledged without effect: %s (%s)", error, event_type)
            return "poison"
        except DatabaseError as error:
            raise TransientError(f"database: {error}") from error
        if outcome.step is not None:
            try:
                saga_log.ensure_step(payment=outcome.payment, step=outcome.step, detail=_step_detail(outcome, event))
            except Exception as error:
                # The database change is committed and the inbox remembers it; the redelivery writes the step.
                raise TransientError(f"firestore: {type(error).__name__}: {error}") from error
        return outcome.result
    finally:
        correlation_id_var.reset(correlation_token)
        payment_id_var.reset(payment_token)
