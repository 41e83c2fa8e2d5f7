"""A person settles a payment that needs attention (`settle_payment`, the CLI, the admin) against the real
sandbox gateway (a model of Stripe's API), the Firestore emulator and the test database
(docs/protocol.md §6, "Operator"): under the payment's claim, recorded before any money moves, refusing
what the provider contradicts."""

import io
import json
import threading
from datetime import timedelta
from unittest.mock import patch

from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import Client, TestCase, TransactionTestCase
from django.utils import timezone

from accounts.models import Account
from binpay_common import steps
from binpay_common.gateway import Intent, IntentInWrongState, IntentStatus, PaymentRef, RefundStatus
from binpay_common.saga_log import Step
from payments import clients, operator, reconciler, settlement
from payments.models import OperatorAction, OperatorActionState, Payment, PaymentStatus
from payments.operator import ProviderUnavailable, SettleAction, SettleRefused, settle_payment
from payments.reconciler import reconcile
from payments.services import ClaimSuperseded, payment_register_claim
from payments.tests.invariant_checks import account_problems, payment_problems
from payments.tests.test_reconciler import age, step_names
from testing.fixtures import SandboxGatewayMixin, make_user, pending_payment, processor_logged, saga_steps, wait_until

TIMEOUT = 600
# Every provider call then takes this long (the latency knob), under the test client's 5 s read timeout.
SLOW_MS = 1500


class OperatorMixin(SandboxGatewayMixin):
    extra_settings = {"PAYMENT_TIMEOUT_SECONDS": TIMEOUT}

    def setUp(self) -> None:
        super().setUp()
        self.user = make_user(balance=100_000)

    def tearDown(self) -> None:
        self.gateway.knobs(sandbox_fail_rate=0, sandbox_latency_rate=0)
        super().tearDown()

    def parked(self, amount: int = 10_000, *, confirm: bool | None = True, extra=()) -> tuple[Payment, Intent | None]:
        """A payment the processor left with its intent (confirmed, unconfirmed, or none when `confirm` is None),
        parked as needs_attention: what an operator finds."""
        payment = pending_payment(self.user, amount=amount)
        intent = None if confirm is None else self.gateway.intent(payment, confirm=confirm)
        processor_logged(payment, intent=intent, extra=tuple(extra))
        settlement.hold_for_attention(
            payment_id=payment.pk, reason="gateway_unreachable", detail={"source": "reconciler"}
        )
        payment.refresh_from_db()
        return payment, intent

    def settle(self, payment: Payment, action: SettleAction, reason: str = "checked at the provider") -> Payment:
        return settle_payment(payment_id=payment.pk, action=action, reason=reason, actor="alice")

    def account(self) -> tuple[int, int]:
        account = Account.objects.get(user=self.user)
        return account.balance, account.held

    def refunds(self, intent: Intent):
        return self.gateway.port_client.refunds_of(intent.id)

    def assert_consistent(self, payment: Payment) -> None:
        self.assertEqual(payment_problems(payment), [])
        self.assertEqual(account_problems(self.user), [])


class SettlePaymentTests(OperatorMixin, TestCase):
    def assert_untouched(self, payment: Payment, held: int = 10_000) -> None:
        payment.refresh_from_db()
        self.assertEqual(
            (payment.status, payment.failure_reason), (PaymentStatus.NEEDS_ATTENTION, "gateway_unreachable")
        )
        self.assertEqual(self.account(), (100_000, held))
        self.assertNotIn("CAPTURED", step_names(payment))
        self.assertNotIn("COMPENSATED", step_names(payment))

    def refuse(self, payment: Payment, action: SettleAction, code: str, error=SettleRefused) -> SettleRefused:
        with self.assertRaises(error) as raised:
            self.settle(payment, action)
        self.assertEqual(raised.exception.code, code)
        return raised.exception

    def assert_refused_record(self, payment: Payment, action: SettleAction) -> None:
        record = OperatorAction.objects.filter(payment=payment).first()
        self.assertEqual(
            (record.action, record.actor, record.state), (action.value, "alice", OperatorActionState.REFUSED)
        )
        self.assertIsNotNone(record.finished_at)
        self.assertTrue(record.detail["refused"])

    def test_capture_settles_an_intent_that_took_the_payments_amount(self) -> None:
        payment, intent = self.parked()

        settled = self.settle(payment, SettleAction.CAPTURE, "customer confirmed; provider shows it succeeded")

        self.assertEqual(
            (settled.status, settled.charge_id, settled.failure_reason), ("completed", intent.charge_id, None)
        )
        self.assertEqual(self.account(), (90_000, 0))
        logged = saga_steps(payment.pk)
        self.assertEqual([s["step"] for s in logged[-3:]], ["NEEDS_ATTENTION", "CHARGED", "CAPTURED"])
        self.assertEqual(
            {(s["detail"]["source"], s["detail"]["actor"], s["detail"]["reason"]) for s in logged[-2:]},
            {("operator", "alice", "customer confirmed; provider shows it succeeded")},
        )
        record = OperatorAction.objects.get(payment=payment)
        self.assertEqual((record.action, record.actor, record.state), ("capture", "alice", OperatorActionState.DONE))
        self.assertEqual(record.reason, "customer confirmed; provider shows it succeeded")
        self.assertIsNotNone(record.finished_at)
        self.assertEqual(self.refunds(intent), [])
        self.assert_consistent(payment)

    def test_release_cancels_the_intent_at_the_provider_then_releases_the_hold(self) -> None:
        payment, intent = self.parked(confirm=False)

        settled = self.settle(payment, SettleAction.RELEASE)

        self.assertEqual((settled.status, settled.failure_reason), ("rolled_back", "released_by_operator"))
        self.assertEqual(self.account(), (100_000, 0))
        self.assertEqual(
            step_names(payment)[-4:], ["NEEDS_ATTENTION", "CANCEL_REQUESTED", "CHARGE_CANCELED", "COMPENSATED"]
        )
        self.assertIs(self.gateway.port_client.retrieve_intent(intent.id).status, IntentStatus.CANCELED)
        # A confirm still on its way (a processor waking up) can never take the money now.
        with self.assertRaises(IntentInWrongState):
            self.gateway.port_client.confirm_intent(
                intent.id, PaymentRef(str(payment.pk), payment.amount, "USD", "pm_card_visa"), attempt=2
            )
        self.assertEqual(OperatorAction.objects.get(payment=payment).state, OperatorActionState.DONE)
        self.assert_consistent(payment)

    def test_release_of_a_payment_whose_log_names_no_intent_asks_the_provider_nothing(self) -> None:
        payment, _ = self.parked(confirm=None)
        calls = len(self.gateway.access_log())

        self.assertEqual(self.settle(payment, SettleAction.RELEASE).status, "rolled_back")

        self.assertEqual(len(self.gateway.access_log()), calls)
        self.assertEqual(step_names(payment)[-2:], ["NEEDS_ATTENTION", "COMPENSATED"])
        self.assert_consistent(payment)

    def test_refund_and_release_refunds_an_intent_that_took_the_money(self) -> None:
        payment, intent = self.parked()

        settled = self.settle(payment, SettleAction.REFUND_AND_RELEASE, "customer cancelled the order")

        self.assertEqual((settled.status, settled.failure_reason), ("rolled_back", "released_by_operator"))
        self.assertEqual(settled.charge_id, intent.charge_id, "a refunded rollback keeps the charge it gave back")
        self.assertEqual(self.account(), (100_000, 0))
        [refund] = self.refunds(intent)
        self.assertEqual((refund.amount, refund.status), (10_000, RefundStatus.SUCCEEDED))
        self.assertEqual(
            step_names(payment)[-6:],
            ["NEEDS_ATTENTION", "CANCEL_REQUESTED", "CHARGED", "REFUND_REQUESTED", "REFUNDED", "COMPENSATED"],
        )
        self.assertEqual(saga_steps(payment.pk)[-2]["detail"]["refund_id"], refund.id)
        self.assertEqual(saga_steps(payment.pk)[-1]["detail"]["charge_id"], intent.charge_id)
        self.assert_consistent(payment)

        # Unconfirmed: nothing to refund, the cancel is enough.
        unconfirmed, unconfirmed_intent = self.parked(2_000, confirm=False)
        self.assertEqual(self.settle(unconfirmed, SettleAction.REFUND_AND_RELEASE).status, "rolled_back")
        self.assertEqual(self.refunds(unconfirmed_intent), [])
        self.assertEqual(step_names(unconfirmed)[-3:], ["CANCEL_REQUESTED", "CHARGE_CANCELED", "COMPENSATED"])
        self.assert_consistent(unconfirmed)

    def test_refusals_change_nothing_and_are_recorded_as_refused(self) -> None:
        unconfirmed, _ = self.parked(confirm=False)
        self.refuse(unconfirmed, SettleAction.CAPTURE, "no_charge_to_capture")
        self.assert_refused_record(unconfirmed, SettleAction.CAPTURE)
        self.assert_untouched(unconfirmed)

        other_amount, _ = self.parked(3_000, confirm=None)
        odd = self.gateway.intent(other_amount, amount=2_500)  # took another amount than the payment's
        clients.saga_log().document(str(other_amount.pk)).update({"intent_id": odd.id})
        self.refuse(other_amount, SettleAction.CAPTURE, "charge_not_capturable")
        self.assert_refused_record(other_amount, SettleAction.CAPTURE)
        self.assert_untouched(other_amount, held=13_000)

        refunded, refunded_intent = self.parked(4_000)
        self.gateway.port_client.refund_intent(refunded_intent.id, payment_id=str(refunded.pk))  # the dashboard
        self.refuse(refunded, SettleAction.CAPTURE, "charge_not_capturable")
        self.assert_refused_record(refunded, SettleAction.CAPTURE)
        self.assert_untouched(refunded, held=17_000)

        charged, charged_intent = self.parked(5_000)
        self.refuse(charged, SettleAction.RELEASE, "charge_stands")
        self.assert_refused_record(charged, SettleAction.RELEASE)
        self.assert_untouched(charged, held=22_000)
        self.assertEqual(self.refunds(charged_intent), [])
        # What the provider answered is logged (facts); no settlement step.
        self.assertEqual(step_names(charged)[-3:], ["NEEDS_ATTENTION", "CANCEL_REQUESTED", "CHARGED"])
        self.assertEqual(account_problems(self.user), [])

    def test_refusals_before_the_provider_is_asked_write_nothing(self) -> None:
        payment, _ = self.parked()
        pending = pending_payment(self.user, amount=1_000)
        calls = len(self.gateway.access_log())
        cases = [
            (payment.pk, "  ", "reason_required", 400),
            (pending.pk, "why not", "payment_not_in_needs_attention", 409),
            ("not-a-payment", "typo", "resource_missing", 404),
        ]
        for payment_id, reason, code, status in cases:
            with self.subTest(code=code):
                with self.assertRaises(Exception) as raised:
                    settle_payment(payment_id=payment_id, action=SettleAction.RELEASE, reason=reason, actor="alice")
                self.assertEqual((raised.exception.code, raised.exception.status_code), (code, status))
        self.assertFalse(OperatorAction.objects.exists())
        self.assertEqual(len(self.gateway.access_log()), calls)
        self.assert_untouched(payment, held=11_000)
        self.assertEqual(saga_steps(pending.pk), [])

    def test_an_announced_refund_allows_only_refund_and_release(self) -> None:
        payment = pending_payment(self.user, amount=10_000)
        intent = self.gateway.intent(payment)
        charged = Step(
            steps.CHARGED, {"intent_id": intent.id, "charge_id": intent.charge_id}, {"charge_id": intent.charge_id}
        )
        announced = Step(steps.REFUND_REQUESTED, {"intent_id": intent.id, "reason_code": "processor_failure"})
        processor_logged(payment, intent=intent, extra=(charged, announced))
        settlement.hold_for_attention(payment_id=payment.pk, reason="gateway_unreachable", detail={})

        for action in (SettleAction.CAPTURE, SettleAction.RELEASE):
            with self.subTest(action=action):
                self.refuse(payment, action, "refund_in_flight")
                self.assert_untouched(payment)
        self.assertEqual(self.refunds(intent), [])

        settled = self.settle(payment, SettleAction.REFUND_AND_RELEASE)

        self.assertEqual((settled.status, settled.charge_id), ("rolled_back", intent.charge_id))
        self.assertEqual(len(self.refunds(intent)), 1)
        self.assertEqual(step_names(payment)[-3:], ["NEEDS_ATTENTION", "REFUNDED", "COMPENSATED"])
        self.assertEqual(self.account(), (100_000, 0))
        self.assert_consistent(payment)

    def test_a_provider_that_cannot_answer_settles_nothing(self) -> None:
        payment, intent = self.parked()
        self.gateway.knobs(sandbox_fail_rate=1)  # every call: 503 before execution

        for action in SettleAction:
            with self.subTest(action=action):
                error = self.refuse(payment, action, "provider_unavailable", error=ProviderUnavailable)
                self.assertEqual(error.status_code, 503)
                self.assert_untouched(payment)
        self.assertTrue(any(line["fault"] == "unavailable" for line in self.gateway.access_log()))
        self.assertEqual(
            list(OperatorAction.objects.filter(payment=payment).values_list("state", flat=True)),
            [OperatorActionState.REFUSED] * 3,
        )

        self.gateway.knobs(sandbox_fail_rate=0)
        self.assertEqual(self.settle(payment, SettleAction.CAPTURE).status, "completed")
        self.assertEqual(self.refunds(intent), [])
        self.assert_consistent(payment)

    def test_release_of_a_declined_intent_logs_its_cancel_before_compensated(self) -> None:
        """Review finding F5: a release on a declined charge wrote COMPENSATED with nothing before it that
        says no money can land, a path steps.json does not allow."""
        lost_decline, lost_intent = self.parked(10_051)  # magic 51: declined; the answer was lost
        self.assertTrue(lost_intent.declined)
        logged_decline = pending_payment(self.user, amount=2_051)
        logged_intent = self.gateway.intent(logged_decline)
        decline = Step(steps.CHARGE_DECLINED, {"intent_id": logged_intent.id, "reason_code": "generic_decline"})
        processor_logged(logged_decline, intent=logged_intent, extra=(decline,))
        settlement.hold_for_attention(payment_id=logged_decline.pk, reason="gateway_unreachable", detail={})

        for payment, intent, tail in (
            (lost_decline, lost_intent, ["NEEDS_ATTENTION", "CANCEL_REQUESTED", "CHARGE_CANCELED", "COMPENSATED"]),
            (logged_decline, logged_intent, ["CHARGE_DECLINED", "NEEDS_ATTENTION", "CHARGE_CANCELED", "COMPENSATED"]),
        ):
            with self.subTest(payment=payment.amount):
                self.assertEqual(self.settle(payment, SettleAction.RELEASE).status, "rolled_back")
                self.assertEqual(step_names(payment)[-4:], tail)
                self.assertIs(self.gateway.port_client.retrieve_intent(intent.id).status, IntentStatus.CANCELED)
                self.assert_consistent(payment)


class ClaimRegistrationTests(OperatorMixin, TestCase):
    def test_the_newest_claim_wins_whatever_order_the_registrations_arrive_in(self) -> None:
        payment = pending_payment(self.user, amount=10_000)
        payment_register_claim(payment_id=payment.pk, claim_seq=3)
        with self.assertRaises(ClaimSuperseded):
            payment_register_claim(payment_id=payment.pk, claim_seq=2)  # taken before 3, registered after it
        payment.refresh_from_db()
        self.assertEqual(payment.settling_claim, 3)
        with self.assertRaises(ClaimSuperseded):
            settlement.hold_for_attention(payment_id=payment.pk, reason="gateway_unreachable", detail={}, claim_seq=2)
        payment.refresh_from_db()
        self.assertEqual(payment.status, PaymentStatus.PENDING)
        self.assertEqual(step_names(payment), [])


class SettleCommandAndAdminTests(OperatorMixin, TestCase):
    def test_the_command_prints_the_settled_payment_and_refusals_are_command_errors(self) -> None:
        payment, _ = self.parked()
        out = io.StringIO()

        with self.assertRaisesMessage(CommandError, "charge_stands"):
            call_command("settle_payment", str(payment.pk), "--release", "--reason", "looks stuck", stdout=out)
        call_command("settle_payment", str(payment.pk), "--refund-and-release", "--reason", "ticket 7", stdout=out)

        self.assertEqual(
            json.loads(out.getvalue()), {"id": str(payment.pk), "status": "rolled_back", "action": "refund_and_release"}
        )
        records = list(OperatorAction.objects.filter(payment=payment).values_list("action", "state", "actor"))
        self.assertEqual([record[:2] for record in records], [("refund_and_release", "done"), ("release", "refused")])
        self.assertTrue(all(actor.startswith("cli:") for _, _, actor in records), records)

    def test_the_admin_asks_for_a_reason_then_settles(self) -> None:
        payment, _ = self.parked(confirm=False)
        staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
        admin = Client(HTTP_HOST="localhost")
        admin.force_login(staff)

        def post(**extra):
            return admin.post(
                "/admin/payments/payment/",
                {"action": "settle_release", "_selected_action": [str(payment.pk)], **extra},
                follow=True,
            )

        self.assertContains(post(), "Reason (required)")
        self.assertContains(post(confirm="yes", reason=""), "A reason is required.")
        self.assertEqual(Payment.objects.get(pk=payment.pk).status, PaymentStatus.NEEDS_ATTENTION)

        self.assertContains(post(confirm="yes", reason="verified at the provider"), "release done")

        self.assertEqual(Payment.objects.get(pk=payment.pk).status, PaymentStatus.ROLLED_BACK)
        self.assertEqual(OperatorAction.objects.get(payment=payment).actor, "admin:ops")
        self.assertEqual(self.account(), (100_000, 0))


class Pause:
    """Fault injection: the wrapped function stops before it runs until `resume` is set."""

    def __init__(self) -> None:
        self.reached, self.resume = threading.Event(), threading.Event()

    def before(self, function):
        def paused(*args, **kwargs):
            self.reached.set()
            self.resume.wait(60)
            return function(*args, **kwargs)

        return paused


def in_thread(work) -> tuple[threading.Thread, dict]:
    """Run `work` in a thread with its own database connection; its result or exception lands in the dict."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except Exception as error:
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


class ConcurrentSettlementTests(OperatorMixin, TransactionTestCase):
    """Operators beside the reconciler and beside each other, with the provider slowed by the latency knob."""

    def slow_provider(self) -> None:
        self.gateway.knobs(sandbox_latency_rate=1, sandbox_latency_ms=SLOW_MS)

    def started_record(self, payment: Payment) -> bool:
        """An operator's record of the payment is committed (read on this thread's own connection)."""
        return OperatorAction.objects.filter(payment=payment, state=OperatorActionState.STARTED).exists()

    def test_the_record_is_committed_before_money_moves(self) -> None:
        payment, intent = self.parked()
        self.slow_provider()
        thread, outcome = in_thread(
            lambda: self.settle(payment, SettleAction.REFUND_AND_RELEASE, "duplicate order, customer asked")
        )
        try:
            cancel = f"/v1/payment_intents/{intent.id}/cancel"
            called = wait_until(
                lambda: any(line["path"] == cancel for line in self.gateway.access_log()), deadline_seconds=30
            )
            # The provider has been called: the record (who, why) is already there for anyone to read.
            record = OperatorAction.objects.get(payment=payment)
            payment.refresh_from_db()
        finally:
            thread.join(timeout=60)
        self.assertTrue(called)
        self.assertEqual(
            (record.action, record.actor, record.reason, record.state),
            ("refund_and_release", "alice", "duplicate order, customer asked", OperatorActionState.STARTED),
        )
        self.assertEqual(payment.status, PaymentStatus.NEEDS_ATTENTION)
        self.assertNotIn("error", outcome)
        record.refresh_from_db()
        self.assertEqual(record.state, OperatorActionState.DONE)
        self.assertEqual(len(self.refunds(intent)), 1)

    def test_refund_and_release_beside_a_reconcile_pass_ends_rolled_back_and_refunded(self) -> None:
        """Review finding F1: the operator's refund-and-release raced the reconciler's capture of the same
        needs_attention(gateway_unreachable) payment: it ended completed with its charge refunded."""
        payment = age(pending_payment(self.user, amount=10_000), 2 * TIMEOUT + 1)
        intent = self.gateway.intent(payment)  # the processor's confirm took the money; its answer was lost
        processor_logged(payment, intent=intent)
        self.gateway.knobs(sandbox_fail_rate=1)
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["needs_attention"], 1)
        payment.refresh_from_db()
        self.assertEqual(
            (payment.status, payment.failure_reason), (PaymentStatus.NEEDS_ATTENTION, "gateway_unreachable")
        )
        # The provider answers again, slowly; the reconciler's retry is due.
        self.gateway.knobs(sandbox_fail_rate=0)
        self.slow_provider()
        Payment.objects.filter(pk=payment.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))

        thread, outcome = in_thread(lambda: self.settle(payment, SettleAction.REFUND_AND_RELEASE, "customer asked"))
        try:
            self.assertTrue(wait_until(lambda: self.started_record(payment), deadline_seconds=30))
            summary = reconcile(older_than_seconds=TIMEOUT)
        finally:
            thread.join(timeout=60)

        self.assertEqual((summary["skipped_lease_live"], summary["captured"]), (1, 0), summary)
        self.assertNotIn("error", outcome, outcome)
        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.failure_reason), (PaymentStatus.ROLLED_BACK, "released_by_operator"))
        [refund] = self.refunds(intent)
        self.assertEqual((refund.amount, refund.gives_money_back), (10_000, True))
        self.assertEqual(self.account(), (100_000, 0))
        names = step_names(payment)
        self.assertNotIn("CAPTURED", names)
        self.assertEqual(names[-4:], ["CHARGED", "REFUND_REQUESTED", "REFUNDED", "COMPENSATED"])
        self.assertEqual(OperatorAction.objects.get(payment=payment).state, OperatorActionState.DONE)
        self.assert_consistent(payment)
        self.assertEqual(reconcile(older_than_seconds=TIMEOUT)["examined"], 0)

    def test_a_reconciler_paused_past_its_lease_cannot_capture_what_an_operator_refunded(self) -> None:
        """The spin model's counterexample (protocol/README.md, "The hole"): a reconciler decides to capture,
        pauses past its claim's lease (a stopped VM, a throttled CPU); an operator claims, refunds the charge
        and is about to release; the reconciler wakes and commits its capture. Its claim is no longer the
        newest registered on the payment, so the capture is refused and the operator's release stands."""
        payment, intent = self.parked()
        Payment.objects.filter(pk=payment.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        reconciler_paused, operator_paused = Pause(), Pause()

        with (
            patch("payments.reconciler._capture", reconciler_paused.before(reconciler._capture)),
            patch("payments.operator._released", operator_paused.before(operator._released)),
        ):
            reconciling, reconciled = in_thread(lambda: reconcile(older_than_seconds=TIMEOUT))
            operating, operated = in_thread(lambda: None)
            try:
                self.assertTrue(reconciler_paused.reached.wait(30), reconciled)
                # The pause outlasts the reconciler's lease: to everyone else its claim has lapsed.
                clients.saga_log().document(str(payment.pk)).update(
                    {"lease_expires_at": timezone.now() - timedelta(minutes=5)}
                )
                operating, operated = in_thread(
                    lambda: self.settle(payment, SettleAction.REFUND_AND_RELEASE, "customer asked")
                )
                self.assertTrue(operator_paused.reached.wait(30), operated)
                [refund] = self.refunds(intent)  # the operator gave the money back and has not released yet
                reconciler_paused.resume.set()
                reconciling.join(timeout=60)
            finally:
                reconciler_paused.resume.set()
                operator_paused.resume.set()
                reconciling.join(timeout=60)
                operating.join(timeout=60)

        self.assertEqual(reconciled["result"]["skipped_lease_live"], 1, reconciled)
        self.assertNotIn("error", operated, operated)
        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.failure_reason), (PaymentStatus.ROLLED_BACK, "released_by_operator"))
        self.assertTrue(refund.gives_money_back)
        self.assertEqual(self.account(), (100_000, 0))
        self.assertNotIn("CAPTURED", step_names(payment))
        self.assert_consistent(payment)

    def test_two_operators_at_once_one_is_refused_as_busy(self) -> None:
        orders = [
            (SettleAction.REFUND_AND_RELEASE, SettleAction.CAPTURE, PaymentStatus.ROLLED_BACK),
            (SettleAction.CAPTURE, SettleAction.REFUND_AND_RELEASE, PaymentStatus.COMPLETED),
        ]
        for first, second, ends in orders:
            with self.subTest(first=first):
                payment, intent = self.parked(10_000)
                self.slow_provider()
                thread, outcome = in_thread(lambda: self.settle(payment, first, "first operator"))  # noqa: B023
                try:
                    self.assertTrue(wait_until(lambda: self.started_record(payment), deadline_seconds=30))  # noqa: B023
                    with self.assertRaises(SettleRefused) as refused:
                        settle_payment(payment_id=payment.pk, action=second, reason="second operator", actor="bob")
                finally:
                    thread.join(timeout=60)
                self.gateway.knobs(sandbox_latency_rate=0)

                self.assertEqual((refused.exception.code, refused.exception.status_code), ("payment_busy", 409))
                self.assertNotIn("error", outcome, outcome)
                payment.refresh_from_db()
                self.assertEqual(payment.status, ends)
                self.assertEqual(
                    list(OperatorAction.objects.filter(payment=payment).values_list("actor", "state")),
                    [("alice", OperatorActionState.DONE)],
                )
                self.assertEqual(len(self.refunds(intent)), 1 if ends == PaymentStatus.ROLLED_BACK else 0)
                self.assert_consistent(payment)
