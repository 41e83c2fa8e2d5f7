import json
import threading
import uuid

import jsonschema
from django.core.management import call_command
from django.db import connection
from django.db.backends.signals import connection_created
from django.test import TransactionTestCase, override_settings

from payments.models import OutboxEvent
from payments.outbox import commit_publisher, relay_batch
from testing.fixtures import api_client, contract_schema, create_subscription, create_topic, make_user, pull_messages

FORM = "application/x-www-form-urlencoded"


class OutboxPublishingTests(TransactionTestCase):
    """Real commits: the commit publisher's thread reads the rows on a connection of its own."""

    def setUp(self) -> None:
        self.topic = create_topic()
        self.subscription = create_subscription(self.topic)
        self.settings_override = override_settings(PUBSUB_TOPIC=self.topic)
        self.settings_override.enable()
        self.client, _ = api_client()
        self.user = make_user()

    def tearDown(self) -> None:
        self.settings_override.disable()

    def initiate(self, amount: str = "100.00", **headers):
        return self.client.post(
            "/initiate-payment", f"user_id={self.user.pk}&amount={amount}", content_type=FORM, **headers
        )

    def test_payments_one_after_another_are_published_on_one_connection(self) -> None:
        opened = []

        def note(sender, connection, **kwargs) -> None:
            opened.append(threading.current_thread().name)

        connection_created.connect(note)
        try:
            for _ in range(3):  # a steady trickle: the publisher's queue runs empty after each payment
                self.assertEqual(self.initiate().status_code, 202)
                self.assertTrue(commit_publisher.flush(timeout=30))
        finally:
            connection_created.disconnect(note)
        self.assertEqual(OutboxEvent.objects.filter(published_at__isnull=True).count(), 0)
        self.assertLessEqual(opened.count("outbox-commit-publisher"), 1, opened)

    def test_published_after_commit_with_the_contract_body_and_attributes(self) -> None:
        with self.assertLogs("payments.outbox", "INFO") as logs:
            response = self.initiate(HTTP_X_CORRELATION_ID="corr-pub-1")
            self.assertEqual(response.status_code, 202)
            self.assertTrue(commit_publisher.flush(timeout=30))
        # The request never waited for Pub/Sub: the commit publisher's thread published the row.
        [published] = [record for record in logs.records if record.getMessage().startswith("outbox: published")]
        self.assertEqual(published.threadName, "outbox-commit-publisher")

        messages = pull_messages(self.subscription, expected=1)

        self.assertEqual(len(messages), 1)
        body = json.loads(messages[0].data)
        jsonschema.validate(body, contract_schema("payment.initiated"), format_checker=jsonschema.FormatChecker())
        payment_id = response.json()["id"]
        self.assertEqual(
            {key: body[key] for key in ("payment_id", "user_id", "amount", "currency", "event_type", "schema_version")},
            {
                "payment_id": payment_id,
                "user_id": self.user.pk,
                "amount": 10_000,
                "currency": "USD",
                "event_type": "payment.initiated",
                "schema_version": 1,
            },
        )
        self.assertEqual(
            dict(messages[0].attributes),
            {
                "event_type": "payment.initiated",
                "event_id": body["event_id"],
                "payment_id": payment_id,
                "schema_version": "1",
                "correlation_id": "corr-pub-1",
            },
        )
        event = OutboxEvent.objects.get()
        self.assertIsNotNone(event.published_at)
        self.assertEqual(event.publish_attempts, 1)

    def test_relay_publishes_a_row_left_unpublished_by_a_crash(self) -> None:
        # Nothing published after the commit: as if the web process died right after it.
        with override_settings(OUTBOX_PUBLISH_ON_COMMIT=False):
            response = self.initiate()
        event = OutboxEvent.objects.get()
        self.assertIsNone(event.published_at)
        self.assertEqual(pull_messages(self.subscription, expected=1, deadline_seconds=1), [])

        call_command("relay_outbox", "--once", stdout=open("/dev/null", "w"))

        messages = pull_messages(self.subscription, expected=1)
        self.assertEqual(len(messages), 1)
        self.assertEqual(json.loads(messages[0].data)["payment_id"], response.json()["id"])
        self.assertEqual(messages[0].attributes["event_id"], str(event.pk))
        event.refresh_from_db()
        self.assertIsNotNone(event.published_at)

    def test_crash_between_publish_and_mark_republishes_the_same_event_id(self) -> None:
        self.initiate()
        self.assertTrue(commit_publisher.flush(timeout=30))
        first = pull_messages(self.subscription, expected=1)
        # The mark was lost: the relay publishes again, with the same event_id (consumers dedupe on it).
        OutboxEvent.objects.update(published_at=None)

        self.assertEqual(relay_batch(batch_size=10), (1, 1))

        second = pull_messages(self.subscription, expected=1)
        self.assertEqual(len(second), 1)
        self.assertEqual(second[0].attributes["event_id"], first[0].attributes["event_id"])
        self.assertNotEqual(second[0].message_id, first[0].message_id)
        self.assertEqual(relay_batch(batch_size=10), (0, 0))

    def test_publish_failure_leaves_the_row_for_the_relay(self) -> None:
        with override_settings(PUBSUB_TOPIC=f"missing-{uuid.uuid4().hex[:8]}"):
            response = self.initiate()
            self.assertTrue(commit_publisher.flush(timeout=30))
        self.assertEqual(response.status_code, 202)
        event = OutboxEvent.objects.get()
        self.assertIsNone(event.published_at)
        self.assertEqual(event.publish_attempts, 1)
        self.assertIn("NotFound", event.last_error)


class ConcurrentRelayTests(TransactionTestCase):
    """Two relays at once publish every row exactly once (SKIP LOCKED on PostgreSQL)."""

    def test_two_relays_never_publish_a_row_twice(self) -> None:
        topic = create_topic()
        subscription = create_subscription(topic)
        with override_settings(PUBSUB_TOPIC=topic):
            client, _ = api_client()
            user = make_user()
            for _ in range(30):
                response = client.post("/initiate-payment", f"user_id={user.pk}&amount=1.00", content_type=FORM)
                self.assertEqual(response.status_code, 202)
            # Those requests published on commit; make every row look unpublished again.
            self.assertTrue(commit_publisher.flush(timeout=30))
            pull_messages(subscription, expected=30)
            OutboxEvent.objects.update(published_at=None)

            barrier = threading.Barrier(2)
            results = []

            def relay() -> None:
                try:
                    barrier.wait()
                    published = 0
                    while True:
                        taken, done = relay_batch(batch_size=3)
                        published += done
                        if taken == 0:
                            break
                    results.append(published)
                finally:
                    connection.close()

            threads = [threading.Thread(target=relay) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        messages = pull_messages(subscription, expected=31, deadline_seconds=3)
        event_ids = [message.attributes["event_id"] for message in messages]
        self.assertEqual(sum(results), 30)
        self.assertEqual(len(event_ids), 30)
        self.assertEqual(len(set(event_ids)), 30)
        self.assertFalse(OutboxEvent.objects.filter(published_at__isnull=True).exists())
