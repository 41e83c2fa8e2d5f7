"""The reconciler against the real sandbox gateway (a model of Stripe's API), the Firestore emulator and the
test database (docs/protocol.md §6, "Reconciler")."""

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
from binpay_common import steps
from binpay_common.gateway import IntentInWrongState, IntentStatus, PaymentRef
from binpay_common.saga_log import Step
from payments import clients
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
    processor_logged,
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


def step_names(payment: Payment) -> list[str]:
    return [step["step"] for step in saga_steps(payment.pk)]


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

    def expired(self, amount: int = 10_000) -> Payment:
        return age(pending_payment(self.user, amount=amount), TIMEOUT + 60)

    def test_a_payment_whose_log_names_no_intent_is_released_without_asking_the_provider(self) -> None:
        """No intent logged means no confirm was ever sent: nothing can land."""
        never_seen = self.expired(1_000)
        calls_before = len(self.gateway.access_log())

        summary = reconcile(older_than_seconds=TIMEOUT)

        self.assertEqual((summary["examined"], summary["compensated"]), (1, 1))
        never_seen.refresh_from_db()
        self.assertEqual((never_seen.status, never_seen.failure_reason), (PaymentStatus.ROLLED_BACK, "expired"))
        self.assertEqual(step_names(never_seen), ["COMPENSATED"])
        # The processor never saw it: the reconciler created its document, fenced.
        self.assertTrue(saga_document(never_seen)["fenced"])
        self.assertEqual(len(self.gateway.access_log()), calls_before)
        self.assertEqual((self.account().balance, self.account().held), (100_000, 0))
        self.assertEqual(deliver(*completion_event(never_seen)), "rejected")

    def test_an_unconfirmed_intent_is_canceled_before_the_hold_is_released(self) -> None:
        payment = self.expired()
        intent = self.gateway.intent(payment, confirm=False)
        processor_logged(payment, intent=intent)

        summary = reconcile(older_than_seconds=TIMEOUT)

        self.assertEqual(summary["compensated"], 1)
        self.assertEqual(
            step_names(payment), ["RECEIVED", "INTENT_CREATED", "CANCEL_REQUESTED", "CHARGE_CANCELED", "COMPENSATED"]
        )
        self.assertEqual({s["detail"].get("source") for s in saga_steps(payment.pk)[2:]}, {"reconciler"})
        self.assertIs(self.gateway.port_client.retrieve_intent(intent.id).status, IntentStatus.CANCELED)
        # A confirm of the intent arriving now (a processor that woke up) is refused for good.
        with self.assertRaises(IntentInWrongState):
            self.gateway.port_client.confirm_intent(
                intent.id, PaymentRef(str(payment.pk), payment.amount, "USD", "pm_card_visa"), attempt=2
            )
        self.assertEqual((self.account().balance, self.account().held), (100_000, 0))

    def test_an_intent_that_took_the_money_is_captured_and_late_events_change_nothing(self) -> None:
        payment = self.expired()
        intent = self.gateway.intent(payment)  # confirmed; the processor died before logging it
        processor_logged(payment, intent=intent)

        summary = reconcile(older_than_seconds=TIMEOUT)

        self.assertEqual((summary["examined"], summary["captured"]), (1, 1))
        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.charge_id), (PaymentStatus.COMPLETED, intent.charge_id))
        self.assertEqual((self.account().balance, self.account().held), (90_000, 0))
        # The cancel was announced, refused because the money had moved, and that answer logged.
        self.assertEqual(step_names(payment), ["RECEIVED", "INTENT_CREATED", "CANCEL_REQUESTED", "CHARGED", "CAPTURED"])
        self.assertEqual(deliver(*completion_event(payment, charge_id=intent.charge_id)), "duplicate")
        self.assertEqual(deliver(*rollback_event(payment)), "rejected")
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["examined"], 0)
        self.assertEqual((self.account().balance, self.account().held), (90_000, 0))

    def test_a_decline_whose_cancel_never_came_is_canceled_and_released_with_its_code(self) -> None:
        payment = self.expired(2_051)  # magic 51: declined generic_decline
        intent = self.gateway.intent(payment)
        self.assertTrue(intent.declined)
        processor_logged(
            payment,
            intent=intent,
            extra=(
                Step(
                    steps.CHARGE_DECLINED,
                    {"intent_id": intent.id, "reason_code": "generic_decline"},
                    {"decline_code": "generic_decline"},
                ),
            ),
        )

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["compensated"], 1)

        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.failure_reason), (PaymentStatus.ROLLED_BACK, "generic_decline"))
        self.assertEqual(
            step_names(payment), ["RECEIVED", "INTENT_CREATED", "CHARGE_DECLINED", "CHARGE_CANCELED", "COMPENSATED"]
        )

    def test_an_intent_of_another_amount_needs_attention(self) -> None:
        payment = self.expired(5_000)
        intent = self.gateway.intent(payment, amount=4_000)
        processor_logged(payment, intent=intent)

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["needs_attention"], 1)

        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.failure_reason), (PaymentStatus.NEEDS_ATTENTION, "charge_mismatch"))
        self.assertIsNone(payment.next_attempt_at, "a mismatch waits for a person, not for the reconciler")
        self.assertEqual((self.account().balance, self.account().held), (100_000, 5_000))
        self.assertEqual(step_names(payment)[-1], "NEEDS_ATTENTION")

    def test_a_logged_outcome_whose_event_was_lost_is_followed(self) -> None:
        payment = self.expired(1_000)
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
        payment = self.expired()
        document = clients.firestore_client().collection(settings.FIRESTORE_COLLECTION).document(str(payment.pk))
        document.set(
            {
                "payment_id": str(payment.pk),
                "state": "RECEIVED",
                "version": 1,
                "steps_done": ["RECEIVED"],
                "lease_owner": "worker-1",
                "lease_holder": "processor",
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
        self.assertEqual(saga_document(payment)["steps_done"], ["RECEIVED", "COMPENSATED"])

    def test_an_unreachable_provider_backs_off_then_needs_attention_then_settles_once_it_answers(self) -> None:
        payment = self.expired()
        intent = self.gateway.intent(payment)
        processor_logged(payment, intent=intent)
        stopped = SandboxGateway()
        stopped.stop()
        clients.set_clients(gateway=gateway_client(stopped.url))

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["gateway_unreachable"], 1)
        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.reconcile_attempts), (PaymentStatus.PENDING, 1))
        self.assertGreater(payment.next_attempt_at, timezone.now())
        self.assertTrue(saga_document(payment)["fenced"])
        # Not due yet: the next pass spends nothing on it.
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["examined"], 0)

        age(payment, 2 * TIMEOUT + 1)
        Payment.objects.filter(pk=payment.pk).update(next_attempt_at=None)
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["needs_attention"], 1)
        payment.refresh_from_db()
        self.assertEqual(
            (payment.status, payment.failure_reason), (PaymentStatus.NEEDS_ATTENTION, "gateway_unreachable")
        )
        self.assertGreater(payment.next_attempt_at, timezone.now(), "retried by itself, later")
        self.assertEqual((self.account().balance, self.account().held), (100_000, 10_000))
        self.assertEqual(step_names(payment)[-1], "NEEDS_ATTENTION")
        client, _ = api_client()
        self.assertEqual(client.get(f"/payments/{payment.pk}").json()["status"], "needs_attention")

        # The provider answers again (the intent took the money): the pass that is due settles it by itself.
        clients.set_clients(gateway=self.gateway.port_client)
        Payment.objects.filter(pk=payment.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["captured"], 1)
        payment.refresh_from_db()
        self.assertEqual(
            (payment.status, payment.charge_id, payment.failure_reason), ("completed", intent.charge_id, None)
        )
        self.assertEqual((self.account().balance, self.account().held), (90_000, 0))
        self.assertEqual(step_names(payment)[-2:], ["CHARGED", "CAPTURED"])

    def test_parked_payments_never_starve_newer_work(self) -> None:
        """needs_attention(gateway_unreachable) payments back off between attempts, so against a provider
        that hangs they cannot be re-selected first on every pass and fill its budget."""
        parked = [self.expired(1_000 + n) for n in range(3)]
        Payment.objects.filter(pk__in=[p.pk for p in parked]).update(
            status=PaymentStatus.NEEDS_ATTENTION,
            failure_reason="gateway_unreachable",
            reconcile_attempts=3,
            next_attempt_at=timezone.now() + timedelta(minutes=8),
        )
        newer = self.expired(2_000)

        summary = reconcile(older_than_seconds=TIMEOUT)

        self.assertEqual((summary["examined"], summary["compensated"]), (1, 1))
        newer.refresh_from_db()
        self.assertEqual(newer.status, PaymentStatus.ROLLED_BACK)

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


class AnnouncedRefundTests(GatewayMixin, TestCase):
    """A refund the processor announced under its lease and died with in flight: the reconciler finishes
    it and releases the hold, and never captures the charge standing beside it (the refund would then
    commit on a completed payment)."""

    def test_an_announced_refund_is_finished_and_the_hold_released_never_captured(self) -> None:
        user = make_user(balance=100_000)
        payment = age(pending_payment(user, amount=10_000), TIMEOUT + 60)
        intent = self.gateway.intent(payment)
        announced = Step(
            steps.REFUND_REQUESTED,
            {"intent_id": intent.id, "reason_code": "processor_failure"},
            {"refund_reason": "processor_failure"},
        )
        charged = Step(
            steps.CHARGED, {"intent_id": intent.id, "charge_id": intent.charge_id}, {"charge_id": intent.charge_id}
        )
        processor_logged(payment, intent=intent, extra=(charged, announced))

        summary = reconcile(older_than_seconds=TIMEOUT)

        self.assertEqual((summary["compensated"], summary["captured"]), (1, 0))
        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.failure_reason), (PaymentStatus.ROLLED_BACK, "processor_failure"))
        account = Account.objects.get(user=user)
        self.assertEqual((account.balance, account.held), (100_000, 0))
        [refund] = self.gateway.port_client.refunds_of(intent.id)
        self.assertEqual(refund.amount, 10_000)
        self.assertEqual(
            step_names(payment),
            ["RECEIVED", "INTENT_CREATED", "CHARGED", "REFUND_REQUESTED", "REFUNDED", "COMPENSATED"],
        )

    def test_an_announced_refund_that_fails_needs_attention_with_the_hold_kept(self) -> None:
        user = make_user(balance=100_000, payment_method="pm_card_refundFail")
        payment = age(pending_payment(user, amount=10_000), TIMEOUT + 60)
        ref = PaymentRef(str(payment.pk), 10_000, "USD", "pm_card_refundFail")
        port = self.gateway.port_client
        intent = port.confirm_intent(port.create_intent(ref).id, ref)
        refund = port.refund_intent(intent.id, payment_id=str(payment.pk))
        self.gateway.advance(3600)  # the refund fails after first answering succeeded
        self.assertEqual(port.retrieve_refund(refund.id).status, "failed")
        announced = Step(steps.REFUND_REQUESTED, {"intent_id": intent.id}, {"refund_reason": "processor_failure"})
        processor_logged(payment, intent=intent, extra=(announced,))

        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["needs_attention"], 1)

        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.failure_reason), (PaymentStatus.NEEDS_ATTENTION, "refund_failed"))
        self.assertEqual(step_names(payment)[-2:], ["REFUND_FAILED", "NEEDS_ATTENTION"])
        # Surfaced, not sent again: a person decides how the customer gets the money back.
        self.assertEqual(len(port.refunds_of(intent.id)), 1)


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
        self.assertEqual(json.loads(message.data)["payment_method"], "pm_card_visa")
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


class InFlightConfirmTests(SandboxGatewayMixin, TestCase):
    """The reconciler claims a payment whose confirm is still running at a slow provider (the delivery that
    sent it lost its lease). A search then shows nothing decided; the cancel is what decides."""

    gateway_knobs = {"SANDBOX_LATENCY_MS": "3000"}  # magic-57 confirms take 3 s, holding their key
    extra_settings = {"PAYMENT_TIMEOUT_SECONDS": TIMEOUT}

    def test_the_cancel_and_the_confirm_in_flight_are_decided_by_the_provider(self) -> None:
        user = make_user(balance=100_000)
        payment = age(pending_payment(user, amount=10_057), TIMEOUT + 60)
        intent = self.gateway.intent(payment, confirm=False)
        processor_logged(payment, intent=intent)
        in_flight: dict = {}

        def processor_confirm():
            ref = PaymentRef(str(payment.pk), 10_057, "USD", "pm_card_visa")
            try:
                in_flight["answer"] = self.gateway.port_client.confirm_intent(intent.id, ref)
            except Exception as error:
                in_flight["answer"] = error

        thread = threading.Thread(target=processor_confirm)
        thread.start()
        time.sleep(0.5)  # the confirm now holds its key at the provider
        self.assertEqual(
            [i.status for i in self.gateway.port_client.search_intents(str(payment.pk))],
            [IntentStatus.REQUIRES_CONFIRMATION],
        )
        summary = reconcile(older_than_seconds=TIMEOUT)
        thread.join()

        payment.refresh_from_db()
        final = self.gateway.port_client.retrieve_intent(intent.id)
        if payment.status == PaymentStatus.ROLLED_BACK:
            self.assertEqual((summary["compensated"], final.status), (1, IntentStatus.CANCELED))
            # The fault happened: the confirm was still in flight and the provider refused it after the cancel.
            self.assertIn("unexpected_state", str(in_flight["answer"]) + str(getattr(in_flight["answer"], "code", "")))
        else:
            self.assertEqual((payment.status, final.status), (PaymentStatus.COMPLETED, IntentStatus.SUCCEEDED))


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
        charged = {}
        for n, payment in enumerate(payments):
            intent = self.gateway.intent(payment, confirm=n % 2 == 0)
            processor_logged(payment, intent=intent)
            if n % 2 == 0:
                charged[str(payment.pk)] = intent.charge_id

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
            last = (
                ["CHARGED", "CAPTURED"] if expected == PaymentStatus.COMPLETED else ["CHARGE_CANCELED", "COMPENSATED"]
            )
            self.assertEqual(step_names(payment)[-2:], last)
        completed = sum(p.amount for p in payments if str(p.pk) in charged)
        account = Account.objects.get(user=user)
        self.assertEqual((account.balance, account.held), (1_000_000 - completed, 0))
