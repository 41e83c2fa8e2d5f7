"""Dead letters: a message nacked 5 times on a real emulator subscription with a dead-letter policy
reaches the dead-letter subscription and is stored once; its still-pending payment stays pending for
the reconciler (a dead letter is no proof of anything about the charge); by pull (consume_outcomes)
and by push (gunicorn)."""

import json
import sys
from pathlib import Path

from django.test import Client, TestCase, override_settings

from accounts.models import Account
from payments import clients
from payments.models import DeadLetter, PaymentStatus
from payments.tests.test_processes import ProcessTestCase, log_lines, stop, wait_for_http
from testing.fixtures import (
    completion_event,
    create_dead_lettered_subscription,
    create_subscription,
    create_topic,
    free_port,
    make_user,
    nack_until_dead_lettered,
    pending_payment,
    publish,
    push_envelope,
    saga_steps,
    unique_name,
    wait_until,
)

DEAD_LETTER_SUBSCRIPTION = "dead-letter-sub"


class DeadLetterPushTests(TestCase):
    def setUp(self) -> None:
        self.override = override_settings(FIRESTORE_COLLECTION=unique_name("transactions"))
        self.override.enable()
        self.push = Client(HTTP_HOST="localhost")
        self.user = make_user(balance=100_000)

    def tearDown(self) -> None:
        self.override.disable()
        clients.reset_clients()

    def deliver(self, envelope: dict) -> dict:
        response = self.push.post("/pubsub/push", envelope, content_type="application/json")
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()

    def dead_letter(self, body, attributes: dict, message_id: str = "dl-1") -> dict:
        envelope = push_envelope(body, attributes, subscription=DEAD_LETTER_SUBSCRIPTION)
        envelope["message"]["messageId"] = message_id
        envelope["deliveryAttempt"] = 1
        return envelope

    def test_a_pending_payment_is_stored_once_and_left_to_the_reconciler(self) -> None:
        payment = pending_payment(self.user, amount=10_000)
        envelope = self.dead_letter(*completion_event(payment))

        self.assertEqual(self.deliver(envelope), {"status": "stored"})
        self.assertEqual(self.deliver(envelope), {"status": "duplicate"})

        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.failure_reason), (PaymentStatus.PENDING, None))
        account = Account.objects.get(user=self.user)
        self.assertEqual((account.balance, account.held), (100_000, 10_000))
        stored = DeadLetter.objects.get()
        self.assertEqual((stored.message_id, stored.payment_id, stored.delivery_attempt), ("dl-1", payment.pk, 1))
        self.assertEqual(json.loads(bytes(stored.data))["payment_id"], str(payment.pk))
        self.assertEqual(stored.attributes["event_type"], "payment.completed")
        self.assertEqual(saga_steps(payment.pk), [])

    def test_settled_unknown_or_unnamed_payments_are_only_stored(self) -> None:
        completed = pending_payment(self.user)
        self.deliver(push_envelope(*completion_event(completed)))
        unknown_attributes = {"event_type": "payment.initiated", "payment_id": "00000000-0000-0000-0000-000000000001"}
        envelopes = [
            self.dead_letter(*completion_event(completed), message_id="dl-settled"),
            self.dead_letter(b"{}", unknown_attributes, message_id="dl-unknown"),
            self.dead_letter(b"\xff not json", {"payment_id": "not-a-uuid"}, message_id="dl-garbage"),
        ]
        undecodable = self.dead_letter(b"", {}, message_id="dl-not-base64")
        undecodable["message"]["data"] = "%%% not base64"
        envelopes.append(undecodable)

        for envelope in envelopes:
            self.assertEqual(self.deliver(envelope), {"status": "stored"})

        completed.refresh_from_db()
        self.assertEqual(completed.status, PaymentStatus.COMPLETED)
        self.assertEqual(DeadLetter.objects.count(), 4)
        self.assertEqual(bytes(DeadLetter.objects.get(message_id="dl-not-base64").data), b"%%% not base64")
        self.assertIsNone(DeadLetter.objects.get(message_id="dl-garbage").payment_id)
        self.assertEqual([s["step"] for s in saga_steps(completed.pk)], ["CAPTURED"])

    def test_only_the_configured_subscription_is_the_dead_letter_path(self) -> None:
        payment = pending_payment(self.user)
        envelope = push_envelope(*completion_event(payment), subscription="not-dead-letter-sub-either")

        self.assertEqual(self.deliver(envelope), {"status": "applied"})
        self.assertEqual(DeadLetter.objects.count(), 0)


class DeadLetterPolicyTests(ProcessTestCase):
    """Real subscriptions: the source nacked 5 times, the emulator forwards to the dead-letter topic."""

    def dead_letter_a_payment(self, dead_letter_topic: str):
        source_topic = create_topic()
        source = create_dead_lettered_subscription(source_topic, dead_letter_topic, max_delivery_attempts=5)
        user = make_user(balance=100_000)
        payment = pending_payment(user, amount=10_000)
        publish(source_topic, *completion_event(payment))
        attempts = nack_until_dead_lettered(source)
        self.assertEqual(attempts, [1, 2, 3, 4, 5])
        return payment, user

    def assert_stored_and_left_pending(self, payment, user) -> None:
        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.failure_reason), (PaymentStatus.PENDING, None))
        account = Account.objects.get(user=user)
        self.assertEqual((account.balance, account.held), (100_000, 10_000))
        stored = DeadLetter.objects.get()
        self.assertEqual((stored.payment_id, stored.attributes["event_type"]), (payment.pk, "payment.completed"))
        self.assertEqual(saga_steps(payment.pk), [])

    def test_pull_consumer_stores_the_dead_letter(self) -> None:
        dead_letter_topic = create_topic()
        dead_letter_subscription = create_subscription(dead_letter_topic)
        payment, user = self.dead_letter_a_payment(dead_letter_topic)
        consumer, consumer_log = self.start(
            [sys.executable, "manage.py", "consume_outcomes"],
            "consumer.log",
            PUBSUB_COMPLETION_SUBSCRIPTION=create_subscription(create_topic()),
            PUBSUB_ROLLBACK_SUBSCRIPTION=create_subscription(create_topic()),
            PUBSUB_DEAD_LETTER_SUBSCRIPTION=dead_letter_subscription,
        )

        stored = wait_until(lambda: DeadLetter.objects.exists(), deadline_seconds=30)

        self.assertTrue(stored, consumer_log.read_text()[-3000:])
        self.assertEqual(stop(consumer), 0, consumer_log.read_text()[-3000:])
        self.assert_stored_and_left_pending(payment, user)
        self.assertEqual(DeadLetter.objects.get().subscription, dead_letter_subscription)

    def test_push_to_gunicorn_stores_the_dead_letter(self) -> None:
        dead_letter_topic = create_topic()
        dead_letter_subscription = unique_name("dead-letter-sub")
        port = free_port()
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        server, server_log = self.start(
            [gunicorn, "binpay_initiator.wsgi:application", "-b", f"127.0.0.1:{port}"],
            "gunicorn.log",
            PUBSUB_DEAD_LETTER_SUBSCRIPTION=dead_letter_subscription,
        )
        wait_for_http(f"http://127.0.0.1:{port}/healthz", server, server_log)
        create_subscription(
            dead_letter_topic, name=dead_letter_subscription, push_endpoint=f"http://127.0.0.1:{port}/pubsub/push"
        )
        payment, user = self.dead_letter_a_payment(dead_letter_topic)

        def pushed() -> bool:
            return any(line["message"].startswith("push delivery") for line in log_lines(server_log))

        self.assertTrue(wait_until(pushed, deadline_seconds=30), server_log.read_text()[-3000:])
        self.assert_stored_and_left_pending(payment, user)
        self.assertTrue(DeadLetter.objects.get().subscription.endswith(f"/subscriptions/{dead_letter_subscription}"))
        self.assertEqual(json.loads(bytes(DeadLetter.objects.get().data))["payment_id"], str(payment.pk))
