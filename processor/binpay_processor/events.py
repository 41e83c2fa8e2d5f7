"""The event contract (contracts/events/*.schema.json) as code.

The processor image is built from processor/ alone, so it cannot read ../contracts at run time.
The checks below mirror payment.initiated.schema.json rule by rule; tests/test_events.py runs a
corpus of valid and invalid bodies through both this code and the JSON Schema and fails when they
disagree, and validates every event the processor publishes against the shared schemas.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from . import observability

SCHEMA_VERSION = 1
PAYMENT_INITIATED = "payment.initiated"
PAYMENT_COMPLETED = "payment.completed"
PAYMENT_ROLLBACK = "payment.rollback"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_INITIATED_FIELDS = {
    "event_id",
    "event_type",
    "schema_version",
    "payment_id",
    "user_id",
    "amount",
    "currency",
    "created_at",
    "metadata",
}


class PoisonMessage(ValueError):
    """A message that can never be processed: log it at ERROR and acknowledge it."""


@dataclass(frozen=True)
class PaymentInitiated:
    event_id: str
    payment_id: str
    user_id: int
    amount: int
    currency: str
    created_at: datetime
    metadata: dict[str, str]
    correlation_id: str | None

    @property
    def simulate_failure(self) -> str | None:
        return self.metadata.get("simulate_failure")


def parse_payment_initiated(data: bytes, attributes: Mapping[str, str]) -> PaymentInitiated:
    """Decode and validate a payment.initiated message, or raise PoisonMessage saying why."""
    event_type = attributes.get("event_type")
    if event_type is not None and event_type != PAYMENT_INITIATED:
        raise PoisonMessage(f"unknown event_type attribute {event_type!r}")
    if attributes.get("schema_version", "1") != str(SCHEMA_VERSION):
        raise PoisonMessage(f"unsupported schema_version attribute {attributes.get('schema_version')!r}")
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise PoisonMessage(f"data is not UTF-8 JSON: {error}") from error
    problems = initiated_body_problems(body)
    if problems:
        raise PoisonMessage("body fails payment.initiated schema: " + "; ".join(problems))
    for name in ("event_id", "payment_id"):
        if name in attributes and attributes[name] != body[name]:
            raise PoisonMessage(f"attribute {name} {attributes[name]!r} differs from the body's {body[name]!r}")
    return PaymentInitiated(
        event_id=body["event_id"],
        payment_id=body["payment_id"],
        user_id=int(body["user_id"]),
        amount=int(body["amount"]),
        currency=body["currency"],
        created_at=parse_timestamp(body["created_at"]),
        metadata=dict(body["metadata"]),
        correlation_id=attributes.get("correlation_id") or None,
    )


def initiated_body_problems(body: object) -> list[str]:
    """Every way `body` breaks payment.initiated.schema.json (empty when valid)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    problems = [f"missing {name}" for name in sorted(_INITIATED_FIELDS - body.keys())]
    problems += [f"unexpected field {name}" for name in sorted(body.keys() - _INITIATED_FIELDS)]
    checks = {
        "event_id": _is_uuid,
        "payment_id": _is_uuid,
        "event_type": lambda value: value == PAYMENT_INITIATED,
        "schema_version": lambda value: _is_int(value) and value == SCHEMA_VERSION,
        "user_id": lambda value: _is_int(value) and value >= 1,
        "amount": lambda value: _is_int(value) and value >= 1,
        "currency": lambda value: isinstance(value, str) and _CURRENCY.fullmatch(value) is not None,
        "created_at": _is_timestamp,
        "metadata": _is_metadata,
    }
    for name, check in checks.items():
        if name in body and not check(body[name]):
            problems.append(f"invalid {name}")
    return problems


def _is_int(value: object) -> bool:
    # JSON Schema's "integer" accepts 1.0 but not true; json.loads gives float only for "1.0".
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_uuid(value: object) -> bool:
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def _is_timestamp(value: object) -> bool:
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        return False
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True


def _is_metadata(value: object) -> bool:
    return (
        isinstance(value, dict)
        and len(value) <= 20
        and all(len(key) <= 40 for key in value)
        and all(isinstance(item, str) and len(item) <= 500 for item in value.values())
    )


def parse_timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("z", "Z"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a UTC offset: {value!r}")
    return parsed


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def outcome_event_id(payment_id: str, event_type: str) -> str:
    """Deterministic, so a re-published outcome carries the id of the first publication."""
    return str(uuid.uuid5(uuid.UUID(payment_id), event_type))


def completed_event(payment_id: str, charge_id: str, amount: int, currency: str, completed_at: datetime) -> dict:
    return {
        "event_id": outcome_event_id(payment_id, PAYMENT_COMPLETED),
        "event_type": PAYMENT_COMPLETED,
        "schema_version": SCHEMA_VERSION,
        "payment_id": payment_id,
        "charge_id": charge_id,
        "amount": amount,
        "currency": currency,
        "completed_at": format_timestamp(completed_at),
    }


def rollback_event(
    payment_id: str,
    *,
    reason_code: str,
    failed_step: str,
    refunded: bool,
    charge_id: str | None,
    occurred_at: datetime,
) -> dict:
    return {
        "event_id": outcome_event_id(payment_id, PAYMENT_ROLLBACK),
        "event_type": PAYMENT_ROLLBACK,
        "schema_version": SCHEMA_VERSION,
        "payment_id": payment_id,
        "reason_code": reason_code,
        "failed_step": failed_step,
        "refunded": refunded,
        "charge_id": charge_id,
        "occurred_at": format_timestamp(occurred_at),
    }


def event_attributes(event: Mapping[str, object], correlation_id: str | None) -> dict[str, str]:
    attributes = {
        "event_type": str(event["event_type"]),
        "event_id": str(event["event_id"]),
        "payment_id": str(event["payment_id"]),
        "schema_version": str(SCHEMA_VERSION),
    }
    if correlation_id:
        attributes["correlation_id"] = correlation_id
    return {**attributes, **observability.trace_attributes()}
