"""The initiator's event parsing agrees with contracts/events/*.schema.json (shared with the processor)."""

import json

import jsonschema
from django.test import TestCase

from payments import events
from payments.handlers import PoisonMessage, parse_outcome
from testing.fixtures import completion_event, contract_schema, make_user, pending_payment, rollback_event


def as_data(body: dict) -> bytes:
    return json.dumps(body).encode()


class OutcomeContractTests(TestCase):
    def setUp(self) -> None:
        self.payment = pending_payment(make_user())

    def test_serializers_accept_exactly_the_schema_fields(self) -> None:
        for event_type, serializer_class in events.OUTCOME_SERIALIZERS.items():
            with self.subTest(event_type):
                schema = contract_schema(event_type)
                self.assertEqual(set(serializer_class().fields), set(schema["properties"]))
                self.assertEqual(set(schema["required"]), set(schema["properties"]))
                self.assertFalse(schema["additionalProperties"])

    def test_events_valid_under_the_schema_are_accepted(self) -> None:
        for body, attributes in (
            completion_event(self.payment),
            rollback_event(self.payment),
            rollback_event(self.payment, reason_code="processor_failure", refunded=True),
        ):
            with self.subTest(body["event_type"]):
                jsonschema.validate(
                    body, contract_schema(body["event_type"]), format_checker=jsonschema.FormatChecker()
                )
                event_type, event = parse_outcome(as_data(body), attributes)
                self.assertEqual(event_type, body["event_type"])

    def test_events_invalid_under_the_schema_are_poison(self) -> None:
        body, attributes = rollback_event(self.payment)
        schema = contract_schema("payment.rollback")
        for change in ({"reason_code": "bored"}, {"failed_step": "lunch"}, {"refunded": "yes"}, {"schema_version": 2}):
            invalid = {**body, **change}
            with self.subTest(change=change):
                with self.assertRaises(jsonschema.ValidationError):
                    jsonschema.validate(invalid, schema)
                with self.assertRaises(PoisonMessage):
                    parse_outcome(as_data(invalid), attributes)
