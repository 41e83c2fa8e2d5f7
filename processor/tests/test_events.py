"""The in-code event contract agrees with contracts/events/*.schema.json (unit tests, no services)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from binpay_processor import events
from conftest import make_event, schema_validator, validate_event


def _valid_body() -> dict:
    return json.loads(make_event(12345, metadata={"simulate_failure": "after_charge"})[0])


def _variants() -> list[tuple[str, object]]:
    body = _valid_body()
    without = lambda name: {k: v for k, v in body.items() if k != name}  # noqa: E731
    cases: list[tuple[str, object]] = [
        ("valid", body),
        ("valid-offset-time", {**body, "created_at": "2026-01-02T03:04:05.123+01:00"}),
        ("valid-z-time", {**body, "created_at": "2026-01-02T03:04:05Z"}),
        ("valid-integral-float", {**body, "amount": 100.0}),
        ("valid-empty-metadata", {**body, "metadata": {}}),
        ("not-an-object", [body]),
        ("string", "payment"),
        ("extra-key", {**body, "note": "x"}),
        ("wrong-event-type", {**body, "event_type": "payment.completed"}),
        ("schema-version-string", {**body, "schema_version": "1"}),
        ("schema-version-2", {**body, "schema_version": 2}),
        ("zero-amount", {**body, "amount": 0}),
        ("negative-amount", {**body, "amount": -5}),
        ("fractional-amount", {**body, "amount": 10.5}),
        ("bool-amount", {**body, "amount": True}),
        ("string-amount", {**body, "amount": "100.00"}),
        ("zero-user", {**body, "user_id": 0}),
        ("lower-currency", {**body, "currency": "usd"}),
        ("long-currency", {**body, "currency": "USDT"}),
        ("bad-payment-id", {**body, "payment_id": "12345"}),
        ("bad-event-id", {**body, "event_id": "not-a-uuid"}),
        ("date-only", {**body, "created_at": "2026-01-02"}),
        ("naive-time", {**body, "created_at": "2026-01-02T03:04:05"}),
        ("metadata-not-string", {**body, "metadata": {"retries": 3}}),
        ("metadata-long-key", {**body, "metadata": {"k" * 41: "v"}}),
        ("metadata-long-value", {**body, "metadata": {"k": "v" * 501}}),
        ("metadata-too-many", {**body, "metadata": {f"k{i}": "v" for i in range(21)}}),
        ("metadata-list", {**body, "metadata": ["x"]}),
    ]
    cases += [(f"missing-{name}", without(name)) for name in body]
    return cases


@pytest.mark.parametrize(("name", "body"), _variants(), ids=[name for name, _ in _variants()])
def test_code_and_schema_agree_on_payment_initiated(name, body):
    schema_valid = schema_validator("payment.initiated").is_valid(body)
    code_valid = not events.initiated_body_problems(body)

    assert code_valid == schema_valid
    assert schema_valid == name.startswith("valid")


def test_parse_carries_the_correlation_id_and_metadata():
    data, attributes = make_event(777, metadata={"simulate_failure": "before_charge"})
    payment = events.parse_payment_initiated(data, attributes)
    assert (payment.amount, payment.currency, payment.user_id) == (777, "USD", 1)
    assert payment.correlation_id == attributes["correlation_id"]
    assert payment.simulate_failure == "before_charge"
    assert payment.created_at.tzinfo is not None


def test_outcome_events_match_their_schemas_and_have_deterministic_ids():
    payment_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    completed = events.completed_event(payment_id, "ch_1", 500, "EUR", now)
    refunded = events.rollback_event(
        payment_id,
        reason_code="processor_failure",
        failed_step="post_charge",
        refunded=True,
        charge_id="ch_1",
        occurred_at=now,
    )
    declined = events.rollback_event(
        payment_id, reason_code="card_declined", failed_step="charge", refunded=False, charge_id=None, occurred_at=now
    )
    for event in (completed, refunded, declined):
        validate_event(event, events.event_attributes(event, "corr-1"))
    assert completed["event_id"] == str(uuid.uuid5(uuid.UUID(payment_id), "payment.completed"))
    assert refunded["event_id"] == declined["event_id"] == str(uuid.uuid5(uuid.UUID(payment_id), "payment.rollback"))
    assert events.completed_event(payment_id, "ch_1", 500, "EUR", now) == completed
