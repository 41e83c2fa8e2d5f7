"""The sweeper against the real sandbox gateway (a model of Stripe's API), the Firestore emulator and the
test database (docs/protocol.md §6, "Sweeper"): money found standing at the provider where none should."""

from datetime import timedelta

from django.test import TestCase
from django.utils import timezone

from accounts.models import Account
from binpay_common.gateway import Intent, IntentStatus, PaymentRef, RefundStatus
from payments import clients, saga_log, sweeper
from payments.handlers import TransientError
from payments.models import Payment, PaymentStatus
from payments.reconciler import Result, reconcile, reconcile_payment
from payments.tests.invariant_checks import account_problems, payment_problems
from payments.tests.test_reconciler import age, deliver, step_names
from testing.fixtures import (
    SandboxGatewayMixin,
    completion_event,
    make_user,
    pending_payment,
    processor_logged,
    saga_steps,
)

TIMEOUT = 600
SEARCH_LAG = 900
INTERVAL = 3600
WINDOW = 7 * 24 * 3600
# The sandbox settles refunds SANDBOX_REFUND_SETTLE_SECONDS (5) after they answered.
SETTLE = 60


def last_steps(payment: Payment, count: int) -> list[tuple]:
    """The last steps of the payment's log: (name, the intent it names, the actor's source)."""
    return [
        (step["step"], step["detail"].get("intent_id"), step["detail"].get("source"))
        for step in saga_steps(payment.pk)[-count:]
    ]


class SweeperMixin(SandboxGatewayMixin):
    extra_settings = {
        "PAYMENT_TIMEOUT_SECONDS": TIMEOUT,
        "PROVIDER_SEARCH_LAG_SECONDS": SEARCH_LAG,
        "LATE_CHARGE_CHECK_INTERVAL_SECONDS": INTERVAL,
        "LATE_CHARGE_WINDOW_SECONDS": WINDOW,
    }

    def setUp(self) -> None:
        super().setUp()
        self.user = make_user(balance=1_000_000)

    def rolled_back(self, amount: int = 10_000, *, age_seconds: int = SEARCH_LAG + 60) -> tuple[Payment, Intent]:
        """A payment the reconciler rolled back after canceling its own (never confirmed) intent."""
        payment = pending_payment(self.user, amount=amount)
        own = self.gateway.intent(payment, confirm=False)
        processor_logged(payment, intent=own)
        self.assertEqual(reconcile_payment(payment, timeout=timedelta(seconds=TIMEOUT)), Result.COMPENSATED)
        return age(payment, age_seconds), own

    def completed(self, amount: int = 10_000, *, age_seconds: int = SEARCH_LAG + 60) -> tuple[Payment, Intent]:
        """A payment the reconciler captured: its own intent succeeded."""
        payment = pending_payment(self.user, amount=amount)
        own = self.gateway.intent(payment)
        processor_logged(payment, intent=own)
        self.assertEqual(reconcile_payment(payment, timeout=timedelta(seconds=TIMEOUT)), Result.CAPTURED)
        return age(payment, age_seconds), own

    def made_outside(self, payment: Payment, *, confirm: bool = True, method: str = "pm_card_visa") -> Intent:
        """An intent for the payment made outside the saga (the dashboard, another integration): its metadata
        names the payment, its keys are its own, and no saga-log step names it."""
        ref = PaymentRef(str(payment.pk), payment.amount, payment.currency, method)
        port = self.gateway.port_client
        intent = port.create_intent(ref, attempt=7)
        return port.confirm_intent(intent.id, ref, attempt=7) if confirm else intent

    @staticmethod
    def make_due(payment: Payment) -> None:
        Payment.objects.filter(pk=payment.pk).update(sweep_due_at=timezone.now() - timedelta(seconds=1))

    def calls(self, method: str, path: str) -> int:
        return sum(
            1 for line in self.gateway.access_log() if line["http_method"] == method and line["path"].startswith(path)
        )

    def refund_requests(self, intent: Intent) -> list[dict]:
        """The refund POSTs the sandbox answered for the intent (its access-log lines)."""
        return [
            line
            for line in self.gateway.access_log()
            if (line["http_method"], line["path"]) == ("POST", "/v1/refunds")
            and (line["idempotency_key"] or "").startswith(f"refund-{intent.id}")
        ]

    def refunds(self, intent: Intent):
        return self.gateway.port_client.refunds_of(intent.id)

    def sweep(self) -> dict[str, int]:
        summary = reconcile(older_than_seconds=TIMEOUT)
        self.assertEqual(summary["error"], 0, summary)
        return summary

    def assert_consistent(self, payment: Payment) -> None:
        self.assertEqual(payment_problems(payment), [])
        self.assertEqual(account_problems(self.user), [])


class SweeperTests(SweeperMixin, TestCase):
    def test_a_late_intent_that_succeeded_is_refunded_once_under_steps_of_its_own(self) -> None:
        payment, own = self.rolled_back()
        self.assertIsNotNone(payment.sweep_due_at, "a rollback schedules the sweep")
        late = self.made_outside(payment)
        self.make_due(payment)

        with self.assertLogs("payments.sweeper", "ERROR") as logs:
            summary = self.sweep()

        self.assertEqual((summary["late_charges_refunded"], summary["swept"]), (1, 0))
        self.assertIn(f"intent {late.id}", "\n".join(logs.output))
        [refund] = self.refunds(late)
        self.assertEqual((refund.amount, refund.status), (payment.amount, RefundStatus.SUCCEEDED))
        self.assertEqual(self.refunds(own), [])
        steps = saga_steps(payment.pk)
        self.assertEqual(
            [(s["step"], s["detail"].get("intent_id"), s["detail"].get("source")) for s in steps[-2:]],
            [("REFUND_REQUESTED", late.id, "sweeper"), ("REFUNDED", late.id, "sweeper")],
        )
        self.assertEqual(steps[-1]["detail"]["refund_id"], refund.id)
        document = saga_log.read_saga_log(payment.pk)
        self.assertEqual(document["intent_id"], own.id)
        self.assertIn(f"REFUNDED:{late.id}", clients.saga_log().read(str(payment.pk))["steps_done"])
        payment.refresh_from_db()
        self.assertEqual(payment.status, PaymentStatus.ROLLED_BACK)
        self.assertGreater(payment.sweep_due_at, timezone.now(), "looked at again after the interval")
        self.assert_consistent(payment)

        # Due again: found again, already refunded, never refunded twice.
        self.make_due(payment)
        summary = self.sweep()

        self.assertEqual((summary["late_charges_refunded"], summary["swept"]), (0, 1))
        self.assertEqual(len(self.refunds(late)), 1)
        self.assertEqual(len(self.refund_requests(late)), 1)
        self.assertEqual(len(saga_steps(payment.pk)), len(steps))
        self.assertEqual(Account.objects.get(user=self.user).balance, 1_000_000)

    def test_the_search_is_used_only_once_its_lag_has_passed(self) -> None:
        """Search is eventually consistent (docs.stripe.com/search): before PROVIDER_SEARCH_LAG_SECONDS a
        sweep looks only at the intents the log names."""
        payment, _ = self.rolled_back(age_seconds=SEARCH_LAG - 300)
        late = self.made_outside(payment)
        searches = self.calls("GET", "/v1/payment_intents/search")
        self.make_due(payment)

        self.assertEqual(self.sweep()["swept"], 1)

        self.assertEqual(self.calls("GET", "/v1/payment_intents/search"), searches)
        self.assertEqual(self.refunds(late), [])

        age(payment, SEARCH_LAG)
        self.make_due(payment)
        self.assertEqual(self.sweep()["late_charges_refunded"], 1)
        self.assertEqual(self.calls("GET", "/v1/payment_intents/search"), searches + 1)
        self.assertEqual(len(self.refunds(late)), 1)
        self.assert_consistent(payment)

    def test_an_unconfirmed_late_intent_is_canceled_so_it_never_takes_money(self) -> None:
        payment, _ = self.rolled_back()
        late = self.made_outside(payment, confirm=False)
        self.make_due(payment)

        self.assertEqual(self.sweep()["swept"], 1)

        self.assertIs(self.gateway.port_client.retrieve_intent(late.id).status, IntentStatus.CANCELED)
        self.assertEqual(self.refunds(late), [])
        self.assertEqual(
            [(s["step"], s["detail"].get("intent_id")) for s in saga_steps(payment.pk)[-2:]],
            [("CANCEL_REQUESTED", late.id), ("CHARGE_CANCELED", late.id)],
        )
        self.assert_consistent(payment)

    def test_a_completed_payment_is_swept_only_when_poked_and_its_own_intent_is_never_refunded(self) -> None:
        payment, own = self.completed()
        self.assertIsNone(payment.sweep_due_at, "a completed payment is not swept on a schedule")
        late = self.made_outside(payment)

        summary = self.sweep()

        self.assertEqual((summary["swept"], summary["late_charges_refunded"]), (0, 0))
        self.assertEqual(self.refunds(late), [])

        # A poke (a webhook about its intents) makes it due.
        self.make_due(payment)
        summary = self.sweep()

        self.assertEqual(summary["late_charges_refunded"], 1)
        self.assertEqual(len(self.refunds(late)), 1)
        self.assertEqual(self.refunds(own), [])
        payment.refresh_from_db()
        self.assertEqual((payment.status, payment.charge_id), (PaymentStatus.COMPLETED, own.charge_id))
        self.assertIsNone(payment.sweep_due_at)
        self.assertEqual(Account.objects.get(user=self.user).balance, 1_000_000 - payment.amount)
        self.assertEqual(step_names(payment)[-3:], ["CAPTURED", "REFUND_REQUESTED", "REFUNDED"])
        self.assert_consistent(payment)

        self.make_due(payment)
        self.assertEqual(self.sweep()["swept"], 1)
        self.assertEqual((len(self.refunds(late)), self.refunds(own)), (1, []))

    def test_a_completed_payment_poked_before_its_search_caught_up_is_looked_at_again_once_it_has(self) -> None:
        payment, _ = self.completed(age_seconds=SEARCH_LAG - 300)
        late = self.made_outside(payment)
        searches = self.calls("GET", "/v1/payment_intents/search")
        self.make_due(payment)

        self.assertEqual(self.sweep()["swept"], 1)

        self.assertEqual((self.calls("GET", "/v1/payment_intents/search"), self.refunds(late)), (searches, []))
        payment.refresh_from_db()
        self.assertEqual(payment.sweep_due_at, payment.created_at + timedelta(seconds=SEARCH_LAG))

        # Time passes to then.
        age(payment, SEARCH_LAG + 60)
        self.make_due(payment)
        self.assertEqual(self.sweep()["late_charges_refunded"], 1)
        self.assertEqual(len(self.refunds(late)), 1)
        payment.refresh_from_db()
        self.assertIsNone(payment.sweep_due_at)
        self.assert_consistent(payment)

    def test_a_pending_refund_is_followed_until_it_succeeded(self) -> None:
        payment, _ = self.rolled_back(10_064)  # magic 64: refunds answer pending, succeed later
        late = self.made_outside(payment)
        self.make_due(payment)

        self.assertEqual(self.sweep()["late_charges_refunded"], 1)

        [refund] = self.refunds(late)
        self.assertEqual(refund.status, RefundStatus.PENDING)
        self.assertEqual(saga_steps(payment.pk)[-1]["detail"]["refund_status"], "pending")
        payment.refresh_from_db()
        self.assertLess(payment.sweep_due_at, timezone.now() + timedelta(seconds=INTERVAL / 2), "followed sooner")
        self.assertEqual([line["fault"] for line in self.refund_requests(late)], ["refund_pending"])

        self.make_due(payment)
        self.assertEqual(self.sweep()["swept"], 1)
        payment.refresh_from_db()
        self.assertLess(payment.sweep_due_at, timezone.now() + timedelta(seconds=INTERVAL / 2), "still pending")

        self.gateway.advance(SETTLE)
        self.make_due(payment)
        self.assertEqual(self.sweep()["swept"], 1)

        [refund] = self.refunds(late)
        self.assertEqual(refund.status, RefundStatus.SUCCEEDED)
        payment.refresh_from_db()
        self.assertGreater(
            payment.sweep_due_at, timezone.now() + timedelta(seconds=INTERVAL / 2), "back to the interval"
        )
        self.assertEqual(len(self.refund_requests(late)), 1)
        self.assert_consistent(payment)

    def test_a_refund_that_fails_later_is_surfaced_once_and_never_sent_again(self) -> None:
        cases = {
            "refund-fail card": {"amount": 10_000, "method": "pm_card_refundFail", "first": RefundStatus.SUCCEEDED},
            "magic 63": {"amount": 10_063, "method": "pm_card_visa", "first": RefundStatus.PENDING},
        }
        for name, case in cases.items():
            with self.subTest(name):
                payment, _ = self.rolled_back(case["amount"])
                late = self.made_outside(payment, method=case["method"])
                self.make_due(payment)
                self.assertEqual(len(sweeper.sweep_payment(payment, holder="sweeper")), 1)
                [refund] = self.refunds(late)
                self.assertEqual(refund.status, case["first"])

                self.gateway.advance(SETTLE)  # the refund fails now
                self.assertEqual(self.gateway.port_client.retrieve_refund(refund.id).status, RefundStatus.FAILED)
                with self.assertLogs("payments.sweeper", "ERROR") as logs:
                    made = sweeper.sweep_payment(payment, holder="sweeper")

                self.assertEqual(made, [], "a failed refund is not a refund made")
                self.assertEqual(len(logs.output), 1, logs.output)
                self.assertIn(f"refund {refund.id} of intent {late.id} failed", logs.output[0])
                payment.refresh_from_db()
                self.assertIsNotNone(payment.refund_failed_at)
                failed_at = payment.refund_failed_at
                self.assertEqual(last_steps(payment, 1), [("REFUND_FAILED", late.id, "sweeper")])
                self.assertEqual(saga_steps(payment.pk)[-1]["detail"]["refund_id"], refund.id)
                self.assert_consistent(payment)

                # Every later sweep leaves it to a person: no new refund, no new step, no new alert.
                steps_logged = len(saga_steps(payment.pk))
                self.make_due(payment)
                with self.assertNoLogs("payments.sweeper", "ERROR"):
                    self.assertEqual(self.sweep()["swept"], 1)
                self.assertEqual([r.id for r in self.refunds(late)], [refund.id])
                self.assertEqual(len(self.refund_requests(late)), 1)
                self.assertEqual(len(saga_steps(payment.pk)), steps_logged)
                payment.refresh_from_db()
                self.assertEqual(payment.refund_failed_at, failed_at)

    def test_rolled_back_payments_are_swept_every_interval_until_the_window_closes(self) -> None:
        payment, _ = self.rolled_back()
        payment.refresh_from_db()
        self.assertAlmostEqual(
            (payment.sweep_due_at - payment.updated_at).total_seconds(), INTERVAL, delta=5, msg="first look"
        )

        # Not due yet: a pass leaves it alone.
        self.assertEqual(self.sweep()["examined"], 0)

        self.make_due(payment)
        before = timezone.now()
        self.assertEqual(self.sweep()["swept"], 1)
        payment.refresh_from_db()
        self.assertGreaterEqual(payment.sweep_due_at, before + timedelta(seconds=INTERVAL))
        self.assertLessEqual(payment.sweep_due_at, timezone.now() + timedelta(seconds=INTERVAL))

        # Settled long ago: the next look would fall past the window, so this is the last one.
        Payment.objects.filter(pk=payment.pk).update(
            updated_at=timezone.now() - timedelta(seconds=WINDOW - INTERVAL / 2)
        )
        self.make_due(payment)
        self.assertEqual(self.sweep()["swept"], 1)
        payment.refresh_from_db()
        self.assertIsNone(payment.sweep_due_at)
        self.assertEqual(self.sweep()["examined"], 0)


class SweepDuringAnOutageTests(SweeperMixin, TestCase):
    def tearDown(self) -> None:
        self.gateway.knobs(sandbox_fail_rate=0)
        super().tearDown()

    def test_a_sweep_the_provider_cannot_answer_is_tried_again_later_not_counted_as_an_error(self) -> None:
        """A provider outage is not a reconciler failure: a one-shot `reconcile` (a scheduled job) exits 1 on
        errors, which would page someone for every outage while rolled-back payments are due a sweep."""
        payment, _ = self.rolled_back()
        self.make_due(payment)
        self.gateway.knobs(sandbox_fail_rate=1)

        summary = reconcile(older_than_seconds=TIMEOUT)

        self.assertEqual((summary["error"], summary["gateway_unreachable"]), (0, 1), summary)
        payment.refresh_from_db()
        self.assertGreater(payment.sweep_due_at, timezone.now())
        self.assertEqual(payment.status, PaymentStatus.ROLLED_BACK)


class ConsumerSweepTests(SweeperMixin, TestCase):
    """A payment.completed for a payment already rolled back: the consumer sweeps it at once, under its claim."""

    def test_a_completion_for_a_rolled_back_payment_refunds_at_once_and_waits_for_a_held_claim(self) -> None:
        payment, _ = self.rolled_back()
        late = self.made_outside(payment)
        completion = completion_event(payment, charge_id=late.charge_id, intent_id=late.id)
        log = clients.saga_log()
        held = log.claim_settlement(saga_log.payment_fields(payment), "another-actor", "operator:bob")
        self.assertTrue(held.claimed)

        with self.assertRaises(TransientError):
            deliver(*completion)

        self.assertEqual(self.refunds(late), [])
        log.release(str(payment.pk), "another-actor")

        self.assertEqual(deliver(*completion), "late_charge_refunded")

        self.assertEqual(len(self.refunds(late)), 1)
        self.assertEqual(
            last_steps(payment, 2),
            [("REFUND_REQUESTED", late.id, "consumer"), ("REFUNDED", late.id, "consumer")],
        )
        payment.refresh_from_db()
        self.assertEqual(payment.status, PaymentStatus.ROLLED_BACK)
        self.assertEqual(Account.objects.get(user=self.user).balance, 1_000_000)
        self.assert_consistent(payment)
        # Redelivered once more: nothing left to refund.
        self.assertEqual(deliver(*completion), "rejected")
        self.assertEqual(len(self.refunds(late)), 1)
