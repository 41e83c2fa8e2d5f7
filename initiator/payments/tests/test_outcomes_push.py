import json
import uuid

from django.test import Client, TestCase, override_settings
from google.api_core import exceptions as google_exceptions

from accounts.models import Account
from payments import clients
from payments.models import Payment, PaymentStatus, ProcessedEvent
from testing.fixtures import (
    GATEWAY_API_KEY,
    SandboxGateway,
    api_client,
    completion_event,
    make_user,
    pending_payment,
    push_envelope,
    rollback_event,
    saga_steps,
    unique_name,
)


class UnavailableFirestore:
    """Stands in for the Firestore client while Firestore is down."""

    def collection(self, *args, **kwargs):
        raise google_exceptions.ServiceUnavailable("firestore is down")

    def transaction(self, *args, **kwargs):
        raise google_exceptions.ServiceUnavailable("firestore is down")


class OutcomeTestCase(TestCase):
    def setUp(self) -> None:
        self.collection = override_settings(FIRESTORE_COLLECTION=unique_name("transactions"))
        self.collection.enable()
        self.push = Client(HTTP_HOST="localhost")
        self.user = make_user(balance=100_000)
        self.payment = pending_payment(self.user, amount=10_000)

    def tearDown(self) -> None:
        self.collection.disable()
        clients.reset_clients()

    def deliver(self, body, attributes):
        return self.push.post("/pubsub/push", push_envelope(body, attributes), content_type="application/json")

    def account(self) -> Account:
        return Account.objects.get(user=self.user)


class CompletionPushTests(OutcomeTestCase):
    def test_completion_delivered_twice_captures_once(self) -> None:
        body, attributes = completion_event(self.payment, charge_id="ch_abc")

        first = self.deliver(body, attributes)
        second = self.deliver(body, attributes)

        self.assertEqual((first.status_code, first.json()), (200, {"status": "applied"}))
        self.assertEqual((second.status_code, second.json()), (200, {"status": "duplicate"}))
        self.payment.refresh_from_db()
        self.assertEqual((self.payment.status, self.payment.charge_id), (PaymentStatus.COMPLETED, "ch_abc"))
        account = self.account()
        self.assertEqual((account.balance, account.held, account.available), (90_000, 0, 90_000))
        self.assertEqual(ProcessedEvent.objects.count(), 1)
        steps = saga_steps(self.payment.pk)
        self.assertEqual([(s["step"], s["seq"], s["service"]) for s in steps], [("CAPTURED", 1, "initiator")])
        self.assertEqual(steps[0]["detail"]["charge_id"], "ch_abc")

    def test_payment_api_shows_the_saga_log(self) -> None:
        api, _ = api_client()
        self.assertIsNone(api.get(f"/payments/{self.payment.pk}").json()["saga_log"])
        self.deliver(*completion_event(self.payment, charge_id="ch_log"))

        body = api.get(f"/payments/{self.payment.pk}").json()

        self.assertEqual((body["status"], body["charge_id"]), ("completed", "ch_log"))
        log = body["saga_log"]
        self.assertEqual((log["state"], log["version"]), ("CAPTURED", 1))
        self.assertEqual(
            [(s["step"], s["seq"], s["service"], s["detail"]["charge_id"]) for s in log["steps"]],
            [("CAPTURED", 1, "initiator", "ch_log")],
        )
        self.assertTrue(log["steps"][0]["at"].endswith("Z"))

    def test_payment_api_degrades_when_firestore_is_down(self) -> None:
        api, _ = api_client()
        clients.set_clients(firestore=UnavailableFirestore())

        response = api.get(f"/payments/{self.payment.pk}")

        self.assertEqual(response.status_code, 200)
        self.assertIsNone(response.json()["saga_log"])

    def test_captured_follows_the_processor_steps(self) -> None:
        document = clients.firestore_client().collection(self.collection.options["FIRESTORE_COLLECTION"])
        document = document.document(str(self.payment.pk))
        document.set(
            {
                "payment_id": str(self.payment.pk),
                "state": "COMPLETED",
                "version": 3,
                "steps_done": ["RECEIVED", "CHARGED", "COMPLETED"],
                "charge_id": "ch_abc",
            }
        )

        self.deliver(*completion_event(self.payment, charge_id="ch_abc"))

        self.assertEqual([s.id for s in document.collection("steps").stream()], ["04-CAPTURED"])
        parent = document.get().to_dict()
        self.assertEqual((parent["state"], parent["version"]), ("CAPTURED", 4))
        self.assertEqual(parent["steps_done"], ["RECEIVED", "CHARGED", "COMPLETED", "CAPTURED"])

    def test_a_second_completion_event_for_a_completed_payment_changes_nothing(self) -> None:
        self.deliver(*completion_event(self.payment))
        other_body, other_attributes = completion_event(self.payment, event_id=str(uuid.uuid4()))

        response = self.deliver(other_body, other_attributes)

        self.assertEqual(response.json(), {"status": "duplicate"})
        self.assertEqual(self.account().balance, 90_000)
        self.assertEqual(len(saga_steps(self.payment.pk)), 1)

    def test_firestore_down_answers_503_then_the_redelivery_writes_the_step(self) -> None:
        body, attributes = completion_event(self.payment)
        clients.set_clients(firestore=UnavailableFirestore())

        failed = self.deliver(body, attributes)

        self.assertEqual(failed.status_code, 503)
        self.assertEqual(failed.json()["error"]["code"], "temporarily_unavailable")
        # The database change is committed once; the redelivery must not apply it again.
        self.assertEqual(self.account().balance, 90_000)
        clients.reset_clients()

        retried = self.deliver(body, attributes)

        self.assertEqual((retried.status_code, retried.json()), (200, {"status": "duplicate"}))
        self.assertEqual(self.account().balance, 90_000)
        self.assertEqual([s["step"] for s in saga_steps(self.payment.pk)], ["CAPTURED"])


class RollbackPushTests(OutcomeTestCase):
    def test_rollback_delivered_twice_releases_once_and_is_logged_in_firestore(self) -> None:
        body, attributes = rollback_event(self.payment, reason_code="card_declined")

        first = self.deliver(body, attributes)
        second = self.deliver(body, attributes)

        self.assertEqual((first.json(), second.json()), ({"status": "applied"}, {"status": "duplicate"}))
        self.payment.refresh_from_db()
        self.assertEqual((self.payment.status, self.payment.failure_reason), ("rolled_back", "card_declined"))
        account = self.account()
        self.assertEqual((account.balance, account.held, account.available), (100_000, 0, 100_000))
        steps = saga_steps(self.payment.pk)
        self.assertEqual([s["step"] for s in steps], ["COMPENSATED"])
        self.assertEqual(steps[0]["detail"]["reason_code"], "card_declined")
        self.assertEqual(steps[0]["detail"]["event_id"], body["event_id"])

    def test_refunded_rollback_keeps_the_charge_id(self) -> None:
        self.deliver(*rollback_event(self.payment, reason_code="processor_failure", refunded=True))

        self.payment.refresh_from_db()
        self.assertEqual((self.payment.failure_reason, self.payment.charge_id), ("processor_failure", "ch_refunded_1"))
        self.assertTrue(saga_steps(self.payment.pk)[0]["detail"]["refunded"])


class IllegalTransitionTests(OutcomeTestCase):
    def test_rollback_after_completion_changes_nothing_and_is_logged(self) -> None:
        self.deliver(*completion_event(self.payment))
        account_before = self.account()

        with self.assertLogs("payments.services", level="ERROR") as logs:
            response = self.deliver(*rollback_event(self.payment))

        self.assertEqual((response.status_code, response.json()), (200, {"status": "rejected"}))
        self.assertIn("illegal transition", logs.output[0])
        self.payment.refresh_from_db()
        self.assertEqual((self.payment.status, self.payment.failure_reason), ("completed", None))
        account = self.account()
        self.assertEqual((account.balance, account.held), (account_before.balance, account_before.held))
        self.assertEqual(ProcessedEvent.objects.count(), 1)
        self.assertEqual([s["step"] for s in saga_steps(self.payment.pk)], ["CAPTURED"])

    def test_completion_after_rollback_changes_nothing_once_the_gateway_shows_no_charge(self) -> None:
        self.deliver(*rollback_event(self.payment))
        gateway = SandboxGateway()
        self.addCleanup(gateway.stop)

        with override_settings(PAYMENT_GATEWAY_URL=gateway.url, PAYMENT_GATEWAY_API_KEY=GATEWAY_API_KEY):
            clients.reset_clients()
            with self.assertLogs("payments.services", level="ERROR"):
                response = self.deliver(*completion_event(self.payment))

        self.assertEqual(response.json(), {"status": "rejected"})
        self.payment.refresh_from_db()
        self.assertEqual((self.payment.status, self.payment.charge_id), ("rolled_back", None))
        self.assertEqual((self.account().balance, self.account().held), (100_000, 0))

    def test_completion_after_rollback_is_redelivered_while_the_gateway_cannot_be_asked(self) -> None:
        self.deliver(*rollback_event(self.payment))
        stopped = SandboxGateway()
        stopped.stop()

        with override_settings(PAYMENT_GATEWAY_URL=stopped.url):
            clients.reset_clients()
            response = self.deliver(*completion_event(self.payment))

        # A charge may stand: only the gateway can say, so Pub/Sub must try again.
        self.assertEqual(response.status_code, 503)
        self.payment.refresh_from_db()
        self.assertEqual(self.payment.status, "rolled_back")

    def test_completion_with_another_amount_changes_nothing(self) -> None:
        body, attributes = completion_event(self.payment)
        body["amount"] = self.payment.amount + 1

        with self.assertLogs("payments.services", level="ERROR"):
            response = self.deliver(body, attributes)

        self.assertEqual(response.json(), {"status": "rejected"})
        self.assertEqual(Payment.objects.get().status, "pending")
        self.assertEqual(self.account().held, 10_000)


class PoisonPushTests(OutcomeTestCase):
    def test_poison_messages_are_acknowledged_without_effect(self) -> None:
        body, attributes = completion_event(self.payment)
        cases = {
            "not json": (b"{nope", attributes),
            "unknown event type": (body, {**attributes, "event_type": "payment.exploded"}),
            "schema version 2": (body, {**attributes, "schema_version": "2"}),
            "missing field": ({k: v for k, v in body.items() if k != "charge_id"}, attributes),
            "extra field": ({**body, "surprise": 1}, attributes),
            "amount as string": ({**body, "amount": "10000"}, attributes),
            "attribute/body mismatch": (body, {**attributes, "payment_id": str(uuid.uuid4())}),
            "unknown payment": (
                {**body, "payment_id": str(uuid.uuid4())},
                {k: v for k, v in attributes.items() if k != "payment_id"},
            ),
        }
        for name, (case_body, case_attributes) in cases.items():
            with self.subTest(name):
                with self.assertLogs("payments.handlers", level="ERROR"):
                    response = self.deliver(case_body, case_attributes)
                self.assertEqual((response.status_code, response.json()), (200, {"status": "poison"}))
        self.assertEqual(Payment.objects.get().status, "pending")
        self.assertEqual(ProcessedEvent.objects.count(), 0)

    def test_envelope_without_a_message_is_acknowledged(self) -> None:
        with self.assertLogs("payments.push", level="ERROR"):
            response = self.push.post("/pubsub/push", json.dumps({"nothing": 1}), content_type="application/json")
        self.assertEqual(response.status_code, 200)
