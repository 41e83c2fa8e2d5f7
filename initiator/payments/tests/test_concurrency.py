import threading
import unittest

from django.db import connection
from django.test import Client, TransactionTestCase, override_settings

from accounts.models import Account
from payments import clients
from payments.models import OutboxEvent, Payment, ProcessedEvent
from testing.fixtures import (
    api_client,
    completion_event,
    create_topic,
    is_postgresql,
    make_user,
    pending_payment,
    push_envelope,
    saga_steps,
    unique_name,
)

FORM = "application/x-www-form-urlencoded"


@unittest.skipUnless(
    is_postgresql(),
    "row-lock races need PostgreSQL: run with DATABASE_URL=postgres://... (SQLite serialises every writer)",
)
class ConcurrentOverspendTests(TransactionTestCase):
    def setUp(self) -> None:
        self.topic = override_settings(PUBSUB_TOPIC=create_topic())
        self.topic.enable()
        _, self.raw_key = api_client()

    def tearDown(self) -> None:
        self.topic.disable()

    def race(self, user_id: int, amounts: list[str]) -> list[int]:
        """POST all payments at the same moment, each on its own thread and database connection."""
        barrier = threading.Barrier(len(amounts))
        statuses: list[int] = []

        def pay(amount: str) -> None:
            client = Client(HTTP_AUTHORIZATION=f"Bearer {self.raw_key}", HTTP_HOST="localhost")
            try:
                barrier.wait()
                response = client.post("/initiate-payment", f"user_id={user_id}&amount={amount}", content_type=FORM)
                statuses.append(response.status_code)
            finally:
                connection.close()

        threads = [threading.Thread(target=pay, args=(amount,)) for amount in amounts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sorted(statuses)

    def test_two_payments_exceeding_the_balance_together_exactly_one_accepted(self) -> None:
        user = make_user(balance=10_000)  # USD 100.00

        statuses = self.race(user.pk, ["60.00", "60.00"])

        self.assertEqual(statuses, [202, 402])
        account = Account.objects.get(user=user)
        self.assertEqual((account.balance, account.held, account.available), (10_000, 6_000, 4_000))
        self.assertEqual(Payment.objects.count(), 1)
        self.assertEqual(OutboxEvent.objects.count(), 1)

    def test_many_concurrent_payments_never_overdraw(self) -> None:
        user = make_user(balance=10_000)

        statuses = self.race(user.pk, ["30.00"] * 6)

        self.assertEqual(statuses, [202, 202, 202, 402, 402, 402])
        account = Account.objects.get(user=user)
        self.assertEqual((account.held, account.available), (9_000, 1_000))
        self.assertEqual(sum(Payment.objects.values_list("amount", flat=True)), account.held)

    def test_concurrent_requests_with_one_idempotency_key_make_one_payment(self) -> None:
        user = make_user(balance=10_000)
        barrier = threading.Barrier(3)
        responses = []

        def pay() -> None:
            client = Client(HTTP_AUTHORIZATION=f"Bearer {self.raw_key}", HTTP_HOST="localhost")
            try:
                barrier.wait()
                responses.append(
                    client.post(
                        "/initiate-payment",
                        f"user_id={user.pk}&amount=10.00",
                        content_type=FORM,
                        HTTP_IDEMPOTENCY_KEY="same-key",
                    )
                )
            finally:
                connection.close()

        threads = [threading.Thread(target=pay) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        self.assertEqual([r.status_code for r in responses], [202, 202, 202])
        self.assertEqual(len({r.json()["id"] for r in responses}), 1)
        self.assertEqual(sum(r.get("Idempotent-Replayed") == "true" for r in responses), 2)
        self.assertEqual(Payment.objects.count(), 1)
        self.assertEqual(Account.objects.get(user=user).held, 1_000)


@unittest.skipUnless(is_postgresql(), "row-lock races need PostgreSQL (SQLite serialises every writer)")
class ConcurrentOutcomeTests(TransactionTestCase):
    def test_the_same_completion_delivered_concurrently_is_applied_once(self) -> None:
        collection = override_settings(FIRESTORE_COLLECTION=unique_name("transactions"), PUBSUB_TOPIC=create_topic())
        collection.enable()
        self.addCleanup(collection.disable)
        # The saga log client is built once per process with the collection of its time: rebuild it here.
        clients.reset_clients()
        self.addCleanup(clients.reset_clients)
        user = make_user(balance=10_000)
        payment = pending_payment(user, amount=4_000)
        envelope = push_envelope(*completion_event(payment))
        barrier = threading.Barrier(4)
        results = []

        def deliver() -> None:
            try:
                barrier.wait()
                response = Client(HTTP_HOST="localhost").post("/pubsub/push", envelope, content_type="application/json")
                results.append((response.status_code, response.json()["status"]))
            finally:
                connection.close()

        threads = [threading.Thread(target=deliver) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        self.assertEqual(sorted(results), [(200, "applied")] + [(200, "duplicate")] * 3)
        account = Account.objects.get(user=user)
        self.assertEqual((account.balance, account.held), (6_000, 0))
        self.assertEqual(ProcessedEvent.objects.count(), 1)
        self.assertEqual([s["step"] for s in saga_steps(payment.pk)], ["CAPTURED"])
