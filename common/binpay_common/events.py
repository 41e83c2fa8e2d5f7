"""The event contract (contracts/events/*.schema.json) as code: build, encode and decode the three events.

Every event BinPay publishes is built here and every event it consumes is decoded here, validated
against the same JSON Schemas both services' tests read. A message that fails is *poison*: the
consumer logs it at ERROR and acknowledges it (docs/contracts.md, "Events").
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import jsonschema_rs

from .contracts import load_json

SCHEMA_VERSION = 1
PAYMENT_INITIATED = "payment.initiated"
PAYMENT_COMPLETED = "payment.completed"
PAYMENT_ROLLBACK = "payment.rollback"
EVENT_TYPES = (PAYMENT_INITIATED, PAYMENT_COMPLETED, PAYMENT_ROLLBACK)


class PoisonMessage(ValueError):
    """A message that can never be processed: log it at ERROR and acknowledge it."""


@cache
def _validator(event_type: str):
    # jsonschema-rs: the same Draft 2020-12 semantics as the contract tests' jsonschema, formats
    # (uuid, date-time) included, at about a microsecond per event instead of ~70.
    return jsonschema_rs.validator_for(load_json(f"events/{event_type}.schema.json"), validate_formats=True)


def problems(event_type: str, body: object) -> list[str]:
    """Every way `body` breaks the event's schema (empty when valid)."""
    validator = _validator(event_type)
    if validator.is_valid(body):
        return []
    return sorted(
        f"{'/'.join(map(str, error.instance_path)) or 'body'}: {error.message}" for error in validator.iter_errors(body)
    )


def decode(data: bytes, attributes: Mapping[str, str], accepted: tuple[str, ...]) -> tuple[str, dict]:
    """(event_type, body) of a message whose type is one of `accepted`; PoisonMessage says why not."""
    event_type = attributes.get("event_type")
    if event_type not in accepted:
        raise PoisonMessage(f"unknown event_type attribute {event_type!r}")
    if attributes.get("schema_version") != str(SCHEMA_VERSION):
        raise PoisonMessage(f"unsupported schema_version attribute {attributes.get('schema_version')!r}")
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise PoisonMessage(f"data is not UTF-8 JSON: {error}") from error
    found = problems(event_type, body)
    if found:
        raise PoisonMessage(f"body fails the {event_type} schema: " + "; ".join(found))
    for name in ("event_id", "payment_id"):
        if name in attributes and attributes[name] != body[name]:
            raise PoisonMessage(f"attribute {name} {attributes[name]!r} differs from the body's {body[name]!r}")
    return event_type, body


def encode(event: Mapping) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode("utf-8")


def attributes(event: Mapping, correlation_id: str | None) -> dict[str, str]:
    """The message attributes of `event` (the caller adds trace context)."""
    values = {
        "event_type": str(event["event_type"]),
        "event_id": str(event["event_id"]),
        "payment_id": str(event["payment_id"]),
        "schema_version": str(SCHEMA_VERSION),
    }
    if correlation_id:
        values["correlation_id"] = correlation_id
    return values


def parse_timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("z", "Z"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a UTC offset: {value!r}")
    return parsed


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def outcome_event_id(payment_id: str, event_type: str) -> str:
    """Deterministic, so a re-published outcome carries the id of the first publication."""
    return str(uuid.uuid5(uuid.UUID(str(payment_id)), event_type))


def initiated_event(
    *,
    event_id: str,
    payment_id: str,
    user_id: int,
    amount: int,
    currency: str,
    payment_method: str,
    customer: str | None,
    created_at: datetime,
    metadata: Mapping[str, str],
) -> dict:
    return {
        "event_id": str(event_id),
        "event_type": PAYMENT_INITIATED,
        "schema_version": SCHEMA_VERSION,
        "payment_id": str(payment_id),
        "user_id": user_id,
        "amount": amount,
        "currency": currency,
        "payment_method": payment_method,
        "customer": customer,
        "created_at": format_timestamp(created_at),
        "metadata": dict(metadata),
    }


def completed_event(
    *, payment_id: str, intent_id: str, charge_id: str, amount: int, currency: str, completed_at: datetime
) -> dict:
    return {
        "event_id": outcome_event_id(payment_id, PAYMENT_COMPLETED),
        "event_type": PAYMENT_COMPLETED,
        "schema_version": SCHEMA_VERSION,
        "payment_id": str(payment_id),
        "intent_id": intent_id,
        "charge_id": charge_id,
        "amount": amount,
        "currency": currency,
        "completed_at": format_timestamp(completed_at),
    }


def rollback_event(
    *,
    payment_id: str,
    reason_code: str,
    failed_step: str,
    refunded: bool,
    intent_id: str | None,
    charge_id: str | None,
    occurred_at: datetime,
) -> dict:
    return {
        "event_id": outcome_event_id(payment_id, PAYMENT_ROLLBACK),
        "event_type": PAYMENT_ROLLBACK,
        "schema_version": SCHEMA_VERSION,
        "payment_id": str(payment_id),
        "reason_code": reason_code,
        "failed_step": failed_step,
        "refunded": refunded,
        "intent_id": intent_id,
        "charge_id": charge_id,
        "occurred_at": format_timestamp(occurred_at),
    }


@dataclass(frozen=True)
class PaymentInitiated:
    """A decoded payment.initiated, as the processor acts on it."""

    event_id: str
    payment_id: str
    user_id: int
    amount: int
    currency: str
    payment_method: str
    customer: str | None
    created_at: datetime
    metadata: dict[str, str]
    correlation_id: str | None

    @property
    def simulate_failure(self) -> str | None:
        return self.metadata.get("simulate_failure")

    def fields(self) -> dict:
        """The payment's fields of its saga-log document (binpay_common.saga_log.new_document)."""
        return {
            "payment_id": self.payment_id,
            "user_id": self.user_id,
            "amount": self.amount,
            "currency": self.currency,
            "correlation_id": self.correlation_id,
            "initiated_at": self.created_at,
        }


def parse_payment_initiated(data: bytes, attributes: Mapping[str, str]) -> PaymentInitiated:
    """Decode and validate a payment.initiated message, or raise PoisonMessage saying why."""
    _, body = decode(data, attributes, (PAYMENT_INITIATED,))
    return PaymentInitiated(
        event_id=body["event_id"],
        payment_id=body["payment_id"],
        user_id=body["user_id"],
        amount=body["amount"],
        currency=body["currency"],
        payment_method=body["payment_method"],
        customer=body.get("customer"),
        created_at=parse_timestamp(body["created_at"]),
        metadata=dict(body["metadata"]),
        correlation_id=attributes.get("correlation_id") or None,
    )
