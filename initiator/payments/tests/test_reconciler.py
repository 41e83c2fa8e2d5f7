"""The reconciler against the real sandbox gateway, the Firestore emulator and the test database."""

import io
import json
import signal
import subprocess
import sys
import threading
import time
import unittest
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.management import call_command
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from accounts.models import Account
from payments import clients, events
from payments.handlers import handle_outcome_message
from payments.models import Payment, PaymentStatus, ProcessedEvent, ReconcilerPass
from payments.reconciler import reconcile
from testing.fixtures import (
    GATEWAY_API_KEY,
    INITIATOR_DIR,
    SandboxGateway,
    SandboxGatewayMixin,
    api_client,
    child_env,
    completion_event,
    create_subscription,
    create_topic,
    gateway_client,
    is_postgresql,
    make_user,
    pending_payment,
    pull_messages,
    rollback_event,
    saga_steps,
    wait_until,
)

TIMEOUT = 600


def age(payment: Payment, seconds: int) -> Payment:
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))
    payment.refresh_from_db()
    return payment


def saga_document(payment: Payment) -> dict:
    snapshot = clients.firestore_client().collection(settings.FIRESTORE_COLLECTION).document(str(payment.pk)).get()
    return snapshot.to_dict() if snapshot.exists else {}


def deliver(body: dict, attributes: dict) -> str:
    return handle_outcome_message(data=json.dumps(body).encode(), attributes=attributes)


class GatewayMixin(SandboxGatewayMixin):
    extra_settings = {"PAYMENT_TIMEOUT_SECONDS": TIMEOUT}


class ReconcilerTests(GatewayMixin, TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.user = make_user(balance=100_000)

    def account(self) -> Account:
        return Account.objects.get(user=self.user)

    def test_a_standing_charge_is_logged_and_captured_and_late_events_change_nothing(self) -> None:
        payment = age(pending_payment(self.user, amount=10_000), TIMEOUT + 60)
        charge = self.gateway.charge(reference=str(payment.pk), amount=10_000)

        summary = reconcile(older_than_seconds=TIMEOUT)

        self.assertEqual((summary["examined"], summary["captured"]), (1, 1))
        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.charge_id), (PaymentStatus.COMPLETED, charge["id"]))
        self.assertEqual((self.account().balance, self.account().held), (90_000, 0))
        document = saga_document(payment)
        self.assertTrue(document["fenced"])
        # The charge the log never showed is logged before the capture: the saga log stays complete.
        self.assertEqual(document["steps_done"], ["CHARGED", "CAPTURED"])
        steps = saga_steps(payment.pk)
        self.assertEqual([s["detail"]["charge_id"] for s in steps], [charge["id"], charge["id"]])
        self.assertEqual({s["detail"]["source"] for s in steps}, {"reconciler"})

        self.assertEqual(deliver(*completion_event(payment, charge_id=charge["id"])), "duplicate")
        self.assertEqual(deliver(*rollback_event(payment)), "rejected")
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["examined"], 0)
        payment.refresh_from_db()
        self.assertEqual(payment.status, PaymentStatus.COMPLETED)
        self.assertEqual((self.account().balance, self.account().held), (90_000, 0))
        self.assertEqual([s["step"] for s in saga_steps(payment.pk)], ["CHARGED", "CAPTURED"])

    def test_a_canceled_charge_key_is_compensated_and_no_late_charge_can_land(self) -> None:
        never_charged = age(pending_payment(self.user, amount=1_000), TIMEOUT + 60)

        summary = reconcile(older_than_seconds=TIMEOUT)

        self.assertEqual((summary["examined"], summary["compensated"]), (1, 1))
        never_charged.refresh_from_db()
        self.assertEqual((never_charged.status, never_charged.failure_reason), (PaymentStatus.ROLLED_BACK, "expired"))
        steps = saga_steps(never_charged.pk)
        self.assertEqual([s["step"] for s in steps], ["CHARGE_CANCELED", "COMPENSATED"])
        # The processor never saw it: the reconciler created its document, fenced.
        self.assertTrue(saga_document(never_charged)["fenced"])
        # A charge request with the payment's key arriving now is refused for good.
        late = self.gateway.charge(reference=str(never_charged.pk), amount=1_000)
        self.assertEqual(late["error"]["code"], "charge_canceled")
        self.assertEqual(self.gateway.ledger(str(never_charged.pk))["charges_succeeded"], 0)
        self.assertEqual((self.account().balance, self.account().held), (100_000, 0))
        self.assertEqual(deliver(*completion_event(never_charged)), "rejected")
        self.assertEqual(self.account().balance, 100_000)

    def test_a_declined_or_refunded_charge_is_compensated(self) -> None:
        declined = age(pending_payment(self.user, amount=2_051), TIMEOUT + 60)
        refunded = age(pending_payment(self.user, amount=3_000), TIMEOUT + 60)
        self.assertEqual(
            self.gateway.charge(reference=str(declined.pk), amount=2_051)["error"]["code"], "card_declined"
        )
        self.gateway.refund(self.gateway.charge(reference=str(refunded.pk), amount=3_000)["id"])

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["compensated"], 2)

        declined.refresh_from_db()
        refunded.refresh_from_db()
        self.assertEqual((declined.status, declined.failure_reason), (PaymentStatus.ROLLED_BACK, "card_declined"))
        self.assertEqual((refunded.status, refunded.failure_reason), (PaymentStatus.ROLLED_BACK, "expired"))
        self.assertEqual([s["step"] for s in saga_steps(declined.pk)], ["CHARGE_DECLINED", "COMPENSATED"])
        self.assertEqual([s["step"] for s in saga_steps(refunded.pk)], ["CHARGED", "REFUNDED", "COMPENSATED"])
        self.assertEqual((self.account().balance, self.account().held), (100_000, 0))

    def test_a_charge_of_another_amount_needs_attention(self) -> None:
        payment = age(pending_payment(self.user, amount=5_000), TIMEOUT + 60)
        self.gateway.charge(reference=str(payment.pk), amount=4_000)

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["needs_attention"], 1)

        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.failure_reason), (PaymentStatus.NEEDS_ATTENTION, "charge_mismatch"))
        self.assertEqual((self.account().balance, self.account().held), (100_000, 5_000))
        self.assertEqual([s["step"] for s in saga_steps(payment.pk)], ["NEEDS_ATTENTION"])

    def test_a_logged_outcome_whose_event_was_lost_is_followed(self) -> None:
        payment = age(pending_payment(self.user, amount=1_000), TIMEOUT + 60)
        event, _ = rollback_event(payment, reason_code="card_declined")
        document = clients.firestore_client().collection(settings.FIRESTORE_COLLECTION).document(str(payment.pk))
        document.set(
            {
                "payment_id": str(payment.pk),
                "state": "FAILED",
                "version": 3,
                "steps_done": ["RECEIVED", "CHARGE_DECLINED", "FAILED"],
                "outcome": {"topic": "rollback", "event": event},
            }
        )

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["compensated"], 1)
        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.failure_reason), (PaymentStatus.ROLLED_BACK, "card_declined"))

    def test_young_payments_are_left_alone(self) -> None:
        payment = age(pending_payment(self.user), TIMEOUT - 60)

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["examined"], 0)
        self.assertEqual(saga_document(payment), {})
        self.assertEqual(reconcile(older_than_seconds=30)["compensated"], 1)

    def test_a_live_processor_lease_is_skipped_until_it_has_expired_with_grace(self) -> None:
        payment = age(pending_payment(self.user), TIMEOUT + 60)
        document = clients.firestore_client().collection(settings.FIRESTORE_COLLECTION).document(str(payment.pk))
        document.set(
            {
                "payment_id": str(payment.pk),
                "state": "RECEIVED",
                "version": 1,
                "steps_done": ["RECEIVED"],
                "lease_owner": "worker-1",
                # Expired 10 s ago, but inside the 30 s grace: still counts as live.
                "lease_expires_at": datetime.now(UTC) - timedelta(seconds=10),
            }
        )

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["skipped_lease_live"], 1)
        payment.refresh_from_db()
        self.assertEqual(payment.status, PaymentStatus.PENDING)
        self.assertNotIn("fenced", saga_document(payment))

        document.update({"lease_expires_at": datetime.now(UTC) - timedelta(seconds=45)})
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["compensated"], 1)
        self.assertTrue(saga_document(payment)["fenced"])
        self.assertEqual(saga_document(payment)["steps_done"], ["RECEIVED", "CHARGE_CANCELED", "COMPENSATED"])

    def test_an_unreachable_gateway_waits_then_needs_attention_then_settles_once_it_answers(self) -> None:
        stopped = SandboxGateway()
        stopped.stop()
        clients.set_clients(gateway=gateway_client(stopped.url))
        payment = age(pending_payment(self.user, amount=10_000), TIMEOUT + 60)

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["gateway_unreachable"], 1)
        payment.refresh_from_db()
        self.assertEqual(payment.status, PaymentStatus.PENDING)
        self.assertTrue(saga_document(payment)["fenced"])

        age(payment, 2 * TIMEOUT + 1)
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["needs_attention"], 1)
        payment.refresh_from_db()
        self.assertEqual(
            (payment.status, payment.failure_reason), (PaymentStatus.NEEDS_ATTENTION, "gateway_unreachable")
        )
        self.assertEqual((self.account().balance, self.account().held), (100_000, 10_000))
        self.assertEqual([s["step"] for s in saga_steps(payment.pk)], ["NEEDS_ATTENTION"])
        client, _ = api_client()
        self.assertEqual(client.get(f"/payments/{payment.pk}").json()["status"], "needs_attention")
        # Still unreachable: the payment keeps waiting, nothing is written.
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["gateway_unreachable"], 1)

        # The gateway answers again (it holds the charge): the next pass settles it by itself.
        clients.set_clients(gateway=gateway_client(self.gateway.url))
        charge = self.gateway.charge(reference=str(payment.pk), amount=10_000)
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["captured"], 1)
        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.charge_id, payment.failure_reason), ("completed", charge["id"], None))
        self.assertEqual((self.account().balance, self.account().held), (90_000, 0))
        self.assertEqual([s["step"] for s in saga_steps(payment.pk)], ["NEEDS_ATTENTION", "CHARGED", "CAPTURED"])

    def test_command_prints_a_summary_and_endpoint_needs_an_api_key(self) -> None:
        age(pending_payment(self.user), 120)
        out = io.StringIO()

        call_command("reconcile", "--older-than", "60", stdout=out)

        self.assertEqual(json.loads(out.getvalue())["compensated"], 1)
        self.assertEqual(ReconcilerPass.objects.first().counts["compensated"], 1)
        client, _ = api_client()
        self.assertEqual(client.post("/internal/reconcile").json()["compensated"], 0)
        anonymous = client.post("/internal/reconcile", HTTP_AUTHORIZATION="")
        self.assertEqual(anonymous.status_code, 401)
        self.assertEqual(anonymous.json()["error"]["type"], "authentication_error")

    @override_settings(RECONCILE_BATCH_SIZE=2)
    def test_a_pass_is_bounded_by_its_batch(self) -> None:
        for _ in range(3):
            age(pending_payment(self.user, amount=1_000), TIMEOUT + 60)

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["compensated"], 2)
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["compensated"], 1)


class RedriveTests(GatewayMixin, TestCase):
    """A payment.initiated Pub/Sub accepted but no processor ever took up: the emulator, measured, does not
    deliver again the messages a SIGKILLed subscriber held (README), and a dead-lettered message is never
    delivered again. Before its timeout, the reconciler publishes it again rather than cancel it later."""

    REDRIVE_AFTER = 120

    def setUp(self) -> None:
        super().setUp()
        self.user = make_user(balance=100_000)
        self.topic = create_topic()
        self.subscription = create_subscription(self.topic)
        self.topic_override = override_settings(
            PUBSUB_TOPIC=self.topic, PAYMENT_REDRIVE_AFTER_SECONDS=self.REDRIVE_AFTER
        )
        self.topic_override.enable()

    def tearDown(self) -> None:
        self.topic_override.disable()
        super().tearDown()

    def published_long_ago(self, seconds: int) -> Payment:
        """A pending payment whose payment.initiated went out `seconds` ago (and was lost)."""
        payment = age(pending_payment(self.user), seconds)
        payment.outbox_events.update(published_at=timezone.now() - timedelta(seconds=seconds))
        return payment

    def test_a_payment_no_processor_took_up_is_published_again_with_its_event_id(self) -> None:
        payment = self.published_long_ago(self.REDRIVE_AFTER + 30)
        event = payment.outbox_events.get()

        summary = reconcile(older_than_seconds=TIMEOUT)

        self.assertEqual(summary["redriven"], 1)
        [message] = pull_messages(self.subscription, expected=1)
        self.assertEqual(
            (message.attributes["event_id"], message.attributes["payment_id"]), (str(event.pk), str(payment.pk))
        )
        event.refresh_from_db()
        self.assertGreater(event.published_at, timezone.now() - timedelta(seconds=30))
        payment.refresh_from_db()
        self.assertEqual(payment.status, PaymentStatus.PENDING)
        self.assertEqual(saga_document(payment), {})  # nothing fenced: the processor may still take it
        # Published again just now: the next pass leaves it to the processor.
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["redriven"], 0)

    def test_a_payment_a_processor_holds_or_finished_or_that_is_young_is_not_published_again(self) -> None:
        young = self.published_long_ago(self.REDRIVE_AFTER - 30)
        held = self.published_long_ago(self.REDRIVE_AFTER + 30)
        finished = self.published_long_ago(self.REDRIVE_AFTER + 30)
        collection = clients.firestore_client().collection(settings.FIRESTORE_COLLECTION)
        collection.document(str(held.pk)).set(
            {
                "state": "RECEIVED",
                "lease_owner": "worker-1",
                "lease_expires_at": datetime.now(UTC) + timedelta(seconds=60),
            }
        )
        collection.document(str(finished.pk)).set({"state": "COMPLETED", "outcome_published": True})

        summary = reconcile(older_than_seconds=TIMEOUT)

        self.assertEqual((summary["redriven"], summary["skipped_in_progress"]), (0, 2))
        self.assertEqual(pull_messages(self.subscription, expected=1, deadline_seconds=2), [])
        self.assertEqual(saga_document(young), {})


class LateChargeTests(GatewayMixin, TestCase):
    """Finding 3: a standing charge on a rolled-back payment is found and refunded."""

    def setUp(self) -> None:
        super().setUp()
        self.user = make_user(balance=100_000)
        self.payment = pending_payment(self.user, amount=7_000)
        self.assertEqual(deliver(*rollback_event(self.payment)), "applied")
        # The gateway committed a charge anyway (under another key: ours is never reused after a cancel).
        self.charge = self.gateway.charge(reference=str(self.payment.pk), amount=7_000, key=f"late-{self.payment.pk}")
        self.assertEqual(self.gateway.ledger(str(self.payment.pk))["charges_succeeded"], 1)

    def assert_refunded(self, source: str) -> None:
        row = self.gateway.ledger(str(self.payment.pk))
        self.assertEqual((row["refunds"], row["amount_refunded"]), (1, 7_000))
        steps = saga_steps(self.payment.pk)
        self.assertEqual([s["step"] for s in steps], ["COMPENSATED", "CHARGED", "REFUNDED"])
        self.assertEqual((steps[-1]["detail"]["charge_id"], steps[-1]["detail"]["source"]), (self.charge["id"], source))
        self.payment.refresh_from_db()
        self.assertEqual(self.payment.status, PaymentStatus.ROLLED_BACK)
        account = Account.objects.get(user=self.user)
        self.assertEqual((account.balance, account.held), (100_000, 0))

    def test_a_completion_for_a_rolled_back_payment_refunds_its_charge(self) -> None:
        result = deliver(*completion_event(self.payment, charge_id=self.charge["id"]))

        self.assertEqual(result, "late_charge_refunded")
        self.assert_refunded("consumer")
        # Redelivered: nothing more to refund.
        self.assertEqual(deliver(*completion_event(self.payment, charge_id=self.charge["id"])), "rejected")
        self.assertEqual(self.gateway.ledger(str(self.payment.pk))["refunds"], 1)

    @override_settings(LATE_CHARGE_CHECK_INTERVAL_SECONDS=3600)
    def test_the_sweeper_refunds_a_standing_charge_once(self) -> None:
        summary = reconcile(older_than_seconds=TIMEOUT)

        self.assertEqual(summary["late_charges_refunded"], 1)
        self.assert_refunded("reconciler")
        # Checked now: the next pass leaves it alone until the interval has passed.
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["examined"], 0)

    @override_settings(LATE_CHARGE_WINDOW_SECONDS=60)
    def test_rollbacks_older_than_the_window_are_not_swept(self) -> None:
        Payment.objects.filter(pk=self.payment.pk).update(updated_at=timezone.now() - timedelta(seconds=120))

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["examined"], 0)


class InFlightChargeTests(SandboxGatewayMixin, TestCase):
    """Finding 2: the reconciler fences a payment whose charge is still running at a slow gateway."""

    gateway_knobs = {"SANDBOX_LATENCY_MS": "3000"}  # magic-57 charges take 3 s

    def test_the_in_flight_charge_is_canceled_before_the_payment_is_compensated(self) -> None:
        user = make_user(balance=100_000)
        payment = age(pending_payment(user, amount=10_057), TIMEOUT + 60)  # magic 57: 3 s at the gateway
        in_flight: dict = {}

        def processor_charge():
            in_flight["answer"] = self.gateway.charge(reference=str(payment.pk), amount=10_057)

        thread = threading.Thread(target=processor_charge)
        thread.start()
        time.sleep(0.5)  # the charge now holds its key at the gateway; no lease protects it (lost, expired)
        summary = reconcile(older_than_seconds=TIMEOUT)
        thread.join()

        # The fault happened: the charge was still in flight when the reconciler decided.
        self.assertEqual(in_flight["answer"]["error"]["code"], "charge_canceled")
        self.assertEqual(summary["compensated"], 1)
        payment.refresh_from_db()
        self.assertEqual(payment.status, PaymentStatus.ROLLED_BACK)
        self.assertEqual(self.gateway.ledger(str(payment.pk))["charges_succeeded"], 0)


class ReconcilerProcessTests(GatewayMixin, TransactionTestCase):
    """`manage.py reconcile` as real processes sharing the test database."""

    def run_reconcile(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "manage.py", "reconcile", *args],
            cwd=INITIATOR_DIR,
            env=child_env(
                FIRESTORE_COLLECTION=self.collection,
                PAYMENT_GATEWAY_URL=self.gateway.url,
                PAYMENT_GATEWAY_API_KEY=GATEWAY_API_KEY,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def test_loop_settles_payments_and_exits_cleanly_on_sigterm(self) -> None:
        user = make_user(balance=100_000)
        payment = age(pending_payment(user), 120)
        process = self.run_reconcile("--loop", "--interval", "0.5", "--older-than", "60")
        try:
            settled = wait_until(
                lambda: Payment.objects.get(pk=payment.pk).status == PaymentStatus.ROLLED_BACK, deadline_seconds=60
            )
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
        self.assertTrue(settled, output[-3000:])
        self.assertEqual(process.returncode, 0, output[-3000:])

    @unittest.skipUnless(is_postgresql(), "concurrent reconcilers race on row locks only on PostgreSQL")
    def test_two_reconcilers_at_once_settle_each_payment_once(self) -> None:
        user = make_user(balance=1_000_000)
        payments = [age(pending_payment(user, amount=1_000 + n), 120) for n in range(8)]
        charged = {str(p.pk): self.gateway.charge(reference=str(p.pk), amount=p.amount)["id"] for p in payments[::2]}

        processes = [self.run_reconcile("--older-than", "60") for _ in range(2)]
        outputs = [process.communicate(timeout=120)[0] for process in processes]

        for process, output in zip(processes, outputs, strict=True):
            self.assertEqual(process.returncode, 0, output[-3000:])
        summaries = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
        self.assertEqual(sum(s["captured"] for s in summaries), 4)
        self.assertEqual(sum(s["compensated"] for s in summaries), 4)
        for payment in payments:
            payment.refresh_from_db()
            expected = PaymentStatus.COMPLETED if str(payment.pk) in charged else PaymentStatus.ROLLED_BACK
            self.assertEqual(payment.status, expected)
            self.assertEqual(payment.charge_id, charged.get(str(payment.pk)))
            self.assertEqual(ProcessedEvent.objects.filter(payment=payment).count(), 1)
            steps = (
                ["CHARGED", "CAPTURED"] if expected == PaymentStatus.COMPLETED else ["CHARGE_CANCELED", "COMPENSATED"]
            )
            self.assertEqual([s["step"] for s in saga_steps(payment.pk)], steps)
        completed = sum(p.amount for p in payments if str(p.pk) in charged)
        account = Account.objects.get(user=user)
        self.assertEqual((account.balance, account.held), (1_000_000 - completed, 0))
        self.assertEqual(
            set(ProcessedEvent.objects.values_list("event_type", flat=True)),
            {events.PAYMENT_COMPLETED, events.PAYMENT_ROLLBACK},
        )
