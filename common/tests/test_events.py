"""The event codec against contracts/events: what it builds is valid, what it refuses is invalid, and it agrees
with the reference JSON Schema implementation (the contract tests' `jsonschema`) on a corpus of bodies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import jsonschema
import pytest
from binpay_common import events
from binpay_common.contracts import load_json

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
PAYMENT_ID = str(uuid.uuid4())


def initiated(**changes) -> dict:
    body = events.initiated_event(
        event_id=uuid.uuid4(),
        payment_id=PAYMENT_ID,
        user_id=1,
        amount=10000,
        currency="USD",
        payment_method="pm_card_visa",
        customer=None,
        created_at=NOW,
        metadata={"order": "42"},
    )
    return {**body, **changes}


BUILT = {
    events.PAYMENT_INITIATED: initiated(),
    events.PAYMENT_COMPLETED: events.completed_event(
        payment_id=PAYMENT_ID, intent_id="pi_1", charge_id="ch_1", amount=10000, currency="USD", completed_at=NOW
    ),
    events.PAYMENT_ROLLBACK: events.rollback_event(
        payment_id=PAYMENT_ID,
        reason_code="card_declined",
        failed_step="charge",
        refunded=False,
        intent_id="pi_1",
        charge_id=None,
        occurred_at=NOW,
    ),
}
BROKEN = {
    "amount zero": initiated(amount=0),
    "amount a float": initiated(amount=100.5),
    "amount a boolean": initiated(amount=True),
    "currency lower case": initiated(currency="usd"),
    "no payment method": {k: v for k, v in initiated().items() if k != "payment_method"},
    "empty payment method": initiated(payment_method=""),
    "not a uuid": initiated(event_id="not-a-uuid"),
    "a date without time": initiated(created_at="2026-12-02"),
    "an extra field": initiated(extra=1),
    "metadata not strings": initiated(metadata={"a": 1}),
    "wrong schema version": initiated(schema_version=2),
    "not an object": [1, 2],
}


@pytest.mark.parametrize("event_type", list(BUILT))
def test_built_events_are_valid_and_round_trip(event_type) -> None:
    body = BUILT[event_type]
    assert events.problems(event_type, body) == []
    jsonschema.validate(body, load_json(f"events/{event_type}.schema.json"), format_checker=jsonschema.FormatChecker())
    assert events.decode(events.encode(body), events.attributes(body, "corr"), (event_type,)) == (event_type, body)


# The reference implementation checks "date-time" only with an optional package the tests do not install.
REFERENCE_SKIPS_FORMAT = {"a date without time"}


@pytest.mark.parametrize("case", list(BROKEN))
def test_the_codec_agrees_with_the_reference_implementation(case) -> None:
    body = BROKEN[case]
    schema = load_json(f"events/{events.PAYMENT_INITIATED}.schema.json")
    reference = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert reference.is_valid(body) is (case in REFERENCE_SKIPS_FORMAT)
    assert events.problems(events.PAYMENT_INITIATED, body), body


def test_poison_messages_say_why() -> None:
    body = initiated()
    attributes = events.attributes(body, None)
    cases = {
        "unknown event_type": (events.encode(body), {**attributes, "event_type": "payment.exploded"}),
        "unsupported schema_version": (events.encode(body), {**attributes, "schema_version": "2"}),
        "not UTF-8 JSON": (b"\xff", attributes),
        "differs from the body": (events.encode(body), {**attributes, "payment_id": str(uuid.uuid4())}),
        "schema": (events.encode(initiated(amount=-1)), attributes),
    }
    for expected, (data, attrs) in cases.items():
        with pytest.raises(events.PoisonMessage, match=expected):
            events.decode(data, attrs, (events.PAYMENT_INITIATED,))


def test_outcome_event_ids_are_deterministic() -> None:
    assert events.outcome_event_id(PAYMENT_ID, events.PAYMENT_COMPLETED) == BUILT[events.PAYMENT_COMPLETED]["event_id"]
    assert events.outcome_event_id(PAYMENT_ID, events.PAYMENT_ROLLBACK) != events.outcome_event_id(
        PAYMENT_ID, events.PAYMENT_COMPLETED
    )


def test_parse_payment_initiated() -> None:
    body = initiated(customer="cus_1")
    parsed = events.parse_payment_initiated(events.encode(body), events.attributes(body, "corr-9"))
    assert (parsed.payment_method, parsed.customer, parsed.correlation_id) == ("pm_card_visa", "cus_1", "corr-9")
    assert parsed.created_at == NOW
