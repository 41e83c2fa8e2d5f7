"""Finding 5: a way out of needs_attention — `manage.py settle_payment` and the admin actions, each
asking the real sandbox gateway first and refusing what contradicts its ledger."""

import io
import json

from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client, TestCase

from accounts.models import Account
from payments import clients, settlement
from payments.models import OperatorAction, Payment, PaymentStatus
from payments.tests.test_reconciler import GatewayMixin, gateway_client
from testing.fixtures import SandboxGateway, make_user, pending_payment, saga_steps


class SettlePaymentTests(GatewayMixin, TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.user = make_user(balance=100_000)
        self.payment = pending_payment(self.user, amount=10_000)
        settlement.hold_for_attention(payment_id=self.payment.pk, reason="gateway_unreachable", detail={})

    def settle(self, *flags: str) -> dict:
        out = io.StringIO()
        call_command("settle_payment", str(self.payment.pk), *flags, "--actor", "alice", stdout=out)
        return json.loads(out.getvalue())

    def account(self) -> tuple[int, int]:
        account = Account.objects.get(user=self.user)
        return account.balance, account.held

    def assert_unchanged(self, held: int = 10_000) -> None:
        self.payment.refresh_from_db()
        self.assertEqual(self.payment.status, PaymentStatus.NEEDS_ATTENTION)
        self.assertEqual(self.account(), (100_000, held))
        self.assertFalse(OperatorAction.objects.exists())

    def test_release_cancels_the_charge_key_then_releases_the_hold(self) -> None:
        answer = self.settle("--release", "--reason", "gateway support: nothing charged (ticket 7)")

        self.assertEqual(answer["status"], "rolled_back")
        self.assertEqual(self.account(), (100_000, 0))
        action = OperatorAction.objects.get()
        self.assertEqual((action.action, action.actor), ("release", "alice"))
        self.assertEqual(action.reason, "gateway support: nothing charged (ticket 7)")
        steps = saga_steps(self.payment.pk)
        self.assertEqual([s["step"] for s in steps], ["NEEDS_ATTENTION", "CHARGE_CANCELED", "COMPENSATED"])
        self.assertEqual(
            {(s["detail"].get("source"), s["detail"].get("actor")) for s in steps[1:]}, {("operator", "alice")}
        )
        late = self.gateway.charge(reference=str(self.payment.pk), amount=10_000)
        self.assertEqual(late["error"]["code"], "charge_canceled")

    def test_capture_needs_a_standing_charge_of_the_payment(self) -> None:
        with self.assertRaisesMessage(CommandError, "no_single_matching_charge"):
            self.settle("--capture", "--reason", "customer says they paid")
        self.assert_unchanged()

        charge = self.gateway.charge(reference=str(self.payment.pk), amount=10_000)
        self.assertEqual(self.settle("--capture", "--reason", "charge found at the gateway")["status"], "completed")

        self.payment.refresh_from_db()
        self.assertEqual(self.payment.charge_id, charge["id"])
        self.assertEqual(self.account(), (90_000, 0))
        self.assertEqual([s["step"] for s in saga_steps(self.payment.pk)], ["NEEDS_ATTENTION", "CHARGED", "CAPTURED"])

    def test_release_is_refused_while_a_charge_stands_and_refund_and_release_refunds_it(self) -> None:
        charge = self.gateway.charge(reference=str(self.payment.pk), amount=10_000)

        with self.assertRaisesMessage(CommandError, "charge_stands"):
            self.settle("--release", "--reason", "looks stuck")
        self.assert_unchanged()

        self.assertEqual(self.settle("--refund-and-release", "--reason", "customer cancelled")["status"], "rolled_back")
        ledger = self.gateway.ledger(str(self.payment.pk))
        self.assertEqual((ledger["refunds"], ledger["amount_refunded"]), (1, 10_000))
        self.assertEqual(self.account(), (100_000, 0))
        steps = saga_steps(self.payment.pk)
        self.assertEqual([s["step"] for s in steps], ["NEEDS_ATTENTION", "CHARGED", "REFUNDED", "COMPENSATED"])
        self.assertEqual(steps[2]["detail"]["charge_id"], charge["id"])
        self.assertEqual(OperatorAction.objects.get().detail["refund_ids"], [ledger_refund_id(self.gateway, charge)])

    def test_refusals_change_nothing(self) -> None:
        with self.assertRaisesMessage(CommandError, "reason_required"):
            self.settle("--release", "--reason", "  ")
        settled = pending_payment(self.user, amount=1_000)
        with self.assertRaisesMessage(CommandError, "payment_not_in_needs_attention"):
            call_command("settle_payment", str(settled.pk), "--release", "--reason", "why not")
        with self.assertRaisesMessage(CommandError, "resource_missing"):
            call_command("settle_payment", "not-a-payment", "--release", "--reason", "typo")
        stopped = SandboxGateway()
        stopped.stop()
        clients.set_clients(gateway=gateway_client(stopped.url))
        with self.assertRaisesMessage(CommandError, "gateway_unavailable"):
            self.settle("--release", "--reason", "gateway is down")
        self.assert_unchanged(held=10_000 + settled.amount)


def ledger_refund_id(gateway: SandboxGateway, charge: dict) -> str:
    # The refund's id as the gateway replays it for our deterministic key.
    return gateway.refund(charge["id"])["id"]


class SettleAdminActionTests(GatewayMixin, TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.user = make_user(balance=100_000)
        self.payment = pending_payment(self.user, amount=10_000)
        settlement.hold_for_attention(payment_id=self.payment.pk, reason="gateway_unreachable", detail={})
        staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
        self.admin = Client(HTTP_HOST="localhost")
        self.admin.force_login(staff)

    def post(self, **extra) -> object:
        return self.admin.post(
            "/admin/payments/payment/",
            {"action": "settle_release", "_selected_action": [str(self.payment.pk)], **extra},
            follow=True,
        )

    def test_the_admin_asks_for_a_reason_then_settles(self) -> None:
        page = self.post()
        self.assertContains(page, "Reason (required)")
        self.assertEqual(Payment.objects.get(pk=self.payment.pk).status, PaymentStatus.NEEDS_ATTENTION)

        self.post(confirm="yes", reason="")
        self.assertEqual(Payment.objects.get(pk=self.payment.pk).status, PaymentStatus.NEEDS_ATTENTION)

        done = self.post(confirm="yes", reason="verified with the gateway")
        self.assertContains(done, "release done")
        self.assertEqual(Payment.objects.get(pk=self.payment.pk).status, PaymentStatus.ROLLED_BACK)
        self.assertEqual(OperatorAction.objects.get().actor, "admin:ops")
