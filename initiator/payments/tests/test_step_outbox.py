"""Saga-log steps the initiator's settlements owe are never lost (docs/protocol.md §4 rule 7).

The reconciler, the sweeper, the consumer's late-charge refund and the operator commit a settlement's
step as a row in the settlement's own transaction, so a kill or a Firestore error after the commit
cannot lose it (nothing re-selects a settled payment) and the operator's record is always written. The
row is delivered right after the commit, by the relay when that failed, and by the next actor that
claims the payment before it does anything.
"""

import json
from datetime import timedelta

from django.db import connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from google.api_core import exceptions as google_exceptions

from binpay_common import steps
from payments import clients, saga_log
from payments.claims import claimed
from payments.models import OutboxStep, Payment, PaymentStatus
from payments.reconciler import reconcile
from payments.services import hold_capture, hold_release
from testing.fixtures import (
    SandboxGatewayMixin,
    completion_event,
    make_user,
    pending_payment,
    processor_logged,
    rollback_event,
    saga_steps,
)


class FirestoreDown:
    """Stands in for the saga log's Firestore client while Firestore refuses every call."""

    def collection(self, *args, **kwargs):
        return self

    def document(self, *args, **kwargs):
        raise google_exceptions.ServiceUnavailable("firestore is down")

    def transaction(self, *args, **kwargs):
        raise google_exceptions.ServiceUnavailable("firestore is down")

    def batch(self, *args, **kwargs):
        raise google_exceptions.ServiceUnavailable("firestore is down")


def relay_later() -> None:
    """The relay's pass, once the settling actor's grace has passed."""
    OutboxStep.objects.update(created_at=timezone.now() - saga_log.RELAY_GRACE - timedelta(seconds=1))
    saga_log.deliver_pending(limit=100)


class StepOutboxTests(SandboxGatewayMixin, TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.user = make_user(balance=100_000)

    def test_a_settlement_and_its_step_commit_together_and_the_relay_delivers_what_was_left(self) -> None:
        payment = pending_payment(self.user)
        body, _ = completion_event(payment)
        # The consumer commits the capture and is killed before it delivers the step.
        hold_capture(event=body, step_detail={"event_id": body["event_id"]})
        self.assertEqual(saga_steps(payment.pk), [])
        [row] = OutboxStep.objects.filter(payment=payment)
        self.assertEqual((row.step, row.delivered_at), ("CAPTURED", None))

        relay_later()

        self.assertEqual([s["step"] for s in saga_steps(payment.pk)], ["CAPTURED"])
        row.refresh_from_db()
        self.assertIsNotNone(row.delivered_at)
        relay_later()  # delivered once: a second pass writes nothing
        self.assertEqual([s["step"] for s in saga_steps(payment.pk)], ["CAPTURED"])

    def test_delivering_after_a_settlement_reads_the_outbox_once_and_not_the_payment_again(self) -> None:
        payment = pending_payment(self.user)
        body, _ = completion_event(payment)
        settled = hold_capture(event=body, step_detail={"event_id": body["event_id"]}).payment
        # Every settlement pays for this on the outcome's path: the pending rows, then marking them delivered.
        with self.assertNumQueries(2):
            self.assertEqual(saga_log.deliver(settled), 1)
        self.assertEqual([s["step"] for s in saga_steps(payment.pk)], ["CAPTURED"])

    def test_a_settlement_locks_its_account_by_the_payment_without_sorting(self) -> None:
        payment = pending_payment(self.user)
        body, _ = completion_event(payment)
        with CaptureQueriesContext(connection) as queries:
            hold_capture(event=body, step_detail={"event_id": body["event_id"]})
        [lock] = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "accounts_account"')]
        self.assertNotIn("ORDER BY", lock)  # one account per payment: nothing to sort on every settlement
        if connection.features.has_select_for_update:
            self.assertIn("FOR UPDATE", lock)

    def test_while_firestore_refuses_writes_the_step_waits_and_nothing_is_lost(self) -> None:
        payment = pending_payment(self.user)
        body, attributes = rollback_event(payment)
        real_log = clients.saga_log()
        down = type(real_log)(FirestoreDown(), "unused", 60, "initiator")
        clients.set_clients(saga_log=down)

        from payments.handlers import handle_outcome_message

        # The rollback is applied (the database is up); its step cannot reach Firestore now.
        self.assertEqual(handle_outcome_message(data=json.dumps(body).encode(), attributes=attributes), "applied")
        payment.refresh_from_db()
        self.assertEqual(payment.status, PaymentStatus.ROLLED_BACK)
        [row] = OutboxStep.objects.filter(payment=payment)
        self.assertIsNone(row.delivered_at)
        self.assertEqual(row.delivery_attempts, 1)
        self.assertIn("firestore is down", row.last_error)

        clients.set_clients(saga_log=real_log)  # Firestore answers again
        relay_later()
        self.assertEqual([s["step"] for s in saga_steps(payment.pk)], ["COMPENSATED"])

    def test_the_next_actor_to_claim_delivers_the_steps_its_predecessor_left_before_anything_else(self) -> None:
        """A reconciler killed after its settlement committed: the sweeper that claims the payment next
        first delivers COMPENSATED, so its own steps come after it in the log."""
        payment = pending_payment(self.user)
        intent = self.gateway.intent(payment, confirm=False)
        processor_logged(payment, intent=intent)
        hold_release(event=rollback_event(payment)[0], step_detail={"source": "reconciler", "reason_code": "expired"})
        self.assertEqual(saga_steps(payment.pk)[-1]["step"], "INTENT_CREATED")

        with claimed(Payment.objects.get(pk=payment.pk), "sweeper") as claim:
            self.assertTrue(claim.has(steps.COMPENSATED))
            claim.log(claim.step(steps.CANCEL_REQUESTED, intent.id, reason_code="late_charge"))

        self.assertEqual(
            [s["step"] for s in saga_steps(payment.pk)],
            ["RECEIVED", "INTENT_CREATED", "COMPENSATED", "CANCEL_REQUESTED"],
        )

    @override_settings(PAYMENT_TIMEOUT_SECONDS=600)
    def test_a_reconciler_killed_between_its_settlement_and_its_step_leaves_the_step_to_the_relay(self) -> None:
        payment = pending_payment(self.user)
        Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - timedelta(seconds=700))
        real_log = clients.saga_log()

        class DiesOnDelivery(type(real_log)):
            """The reconciler's process dies right after its settlement committed."""

            def deliver(self, *args, **kwargs):
                raise SystemExit("killed")

        clients.set_clients(saga_log=DiesOnDelivery(real_log.db, real_log.collection.id, 60, "initiator"))
        with self.assertRaises(SystemExit):
            reconcile(older_than_seconds=600)
        payment.refresh_from_db()
        self.assertEqual(payment.status, PaymentStatus.ROLLED_BACK)
        self.assertEqual(saga_steps(payment.pk), [])  # the step never reached Firestore

        clients.set_clients(saga_log=real_log)
        relay_later()
        self.assertEqual([s["step"] for s in saga_steps(payment.pk)], ["COMPENSATED"])
