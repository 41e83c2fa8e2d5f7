"""The outcome consumer decodes events with the shared codec (binpay_common.events, validated against
contracts/events/*.schema.json): what the processor publishes is accepted, what breaks the schema is poison."""

import json

from django.test import TestCase

from payments.handlers import PoisonMessage, parse_outcome
from testing.fixtures import completion_event, make_user, pending_payment, rollback_event


def as_data(body: dict) -> bytes:
    return json.dumps(body).encode()


class OutcomeContractTests(TestCase):
    def setUp(self) -> None:
        self.payment = pending_payment(make_user())

    def test_events_the_processor_publishes_are_accepted(self) -> None:
        for body, attributes in (
            completion_event(self.payment),
            rollback_event(self.payment),
            rollback_event(self.payment, reason_code="processor_failure", refunded=True),
        ):
            with self.subTest(body["event_type"]):
                self.assertEqual(parse_outcome(as_data(body), attributes), (body["event_type"], body))

    def test_events_invalid_under_the_schema_are_poison(self) -> None:
        body, attributes = rollback_event(self.payment)
        for change in (
            {"reason_code": "Bored!"},
            {"failed_step": "lunch"},
            {"refunded": "yes"},
            {"schema_version": 2},
            {"intent_id": 7},
        ):
            with self.subTest(change=change), self.assertRaises(PoisonMessage):
                parse_outcome(as_data({**body, **change}), attributes)
        completed, completed_attributes = completion_event(self.payment)
        with self.assertRaises(PoisonMessage):
            parse_outcome(as_data({k: v for k, v in completed.items() if k != "intent_id"}), completed_attributes)
        with self.assertRaises(PoisonMessage):
            parse_outcome(as_data(body), {**attributes, "event_type": "payment.exploded"})
