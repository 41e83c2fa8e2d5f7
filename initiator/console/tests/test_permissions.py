"""Issue 22 (M3, L9, L10): the console asks Django's permissions per action (view, settle), an "operator"
group made by a command holds just those, every settle attempt is recorded with who and why (refused
ones too), lists are bounded, out-of-range filters are a 400, sessions are short and pages carry a CSP."""

import io

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client

from console.tests.test_console import PASSWORD, ConsoleTestCase
from payments import settlement
from payments.models import OperatorAction, Payment, PaymentStatus
from testing.fixtures import make_user, pending_payment


def staff(username: str, *groups: str):
    user = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True)
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


class PermissionTests(ConsoleTestCase):
    def setUp(self) -> None:
        super().setUp()
        call_command("ensure_operator_group", stdout=io.StringIO())
        self.payment = pending_payment(make_user(balance=100_000), amount=10_000)
        settlement.hold_for_attention(payment_id=self.payment.pk, reason="gateway_unreachable", detail={})

    def client_for(self, user) -> Client:
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        return client

    def test_the_operator_group_holds_view_and_settle_only(self) -> None:
        group = Group.objects.get(name="operator")
        self.assertEqual(
            sorted(f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()),
            ["payments.change_payment", "payments.view_deadletter", "payments.view_payment"],
        )
        call_command("ensure_operator_group", stdout=io.StringIO())  # idempotent
        self.assertEqual(Group.objects.filter(name="operator").count(), 1)

    def test_staff_without_permissions_see_nothing_and_settle_nothing(self) -> None:
        client = self.client_for(staff("bare"))
        for path in (
            "/console/",
            "/console/attention/",
            f"/console/payments/{self.payment.pk}/",
            "/console/dead-letters/",
        ):
            self.assertEqual(client.get(path).status_code, 403, path)
        response = client.post(f"/console/payments/{self.payment.pk}/settle", {"action": "release", "reason": "x"})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(Payment.objects.get(pk=self.payment.pk).status, PaymentStatus.NEEDS_ATTENTION)

    def test_a_viewer_can_read_but_not_settle(self) -> None:
        viewer = staff("viewer")
        viewer.user_permissions.add(
            *Group.objects.get(name="operator").permissions.filter(codename__startswith="view_")
        )
        client = self.client_for(viewer)
        self.assertEqual(client.get("/console/attention/").status_code, 200)
        response = client.post(f"/console/payments/{self.payment.pk}/settle", {"action": "release", "reason": "x"})
        self.assertEqual(response.status_code, 403)
        self.assertFalse(OperatorAction.objects.exists())

    def test_every_settle_attempt_is_recorded_with_who_and_why(self) -> None:
        client = self.client_for(staff("alice", "operator"))
        refused = client.post(
            f"/console/payments/{self.payment.pk}/settle", {"action": "capture", "reason": "customer insists"}
        )
        self.assertEqual(refused.status_code, 302)
        done = client.post(f"/console/payments/{self.payment.pk}/settle", {"action": "release", "reason": "no charge"})
        self.assertEqual(done.status_code, 302)

        entries = list(LogEntry.objects.filter(object_id=str(self.payment.pk)).order_by("action_time"))
        self.assertEqual([entry.user.username for entry in entries], ["alice", "alice"])
        self.assertIn("customer insists", entries[0].change_message)
        self.assertIn("refused", entries[0].change_message)
        self.assertIn("no charge", entries[1].change_message)
        self.assertIn("settled", entries[1].change_message)

    def test_out_of_range_filters_are_a_400_not_a_500(self) -> None:
        client = self.client_for(staff("bob", "operator"))
        for query in (
            "older_than_minutes=10000000000000",
            "user=99999999999999999999",
            "newer_than_minutes=10000000000000",
        ):
            self.assertEqual(client.get(f"/console/?{query}").status_code, 400, query)

    def test_the_attention_queue_is_paged(self) -> None:
        user = make_user(balance=10_000_000, email="many@example.com")
        for _ in range(60):
            payment = pending_payment(user, amount=100)
            Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.NEEDS_ATTENTION)
        page = self.client_for(staff("carol", "operator")).get("/console/attention/")
        self.assertEqual(page.status_code, 200)
        self.assertLessEqual(len(page.context["page"].object_list), 50)

    def test_sessions_are_short_and_pages_carry_a_content_security_policy(self) -> None:
        self.assertLessEqual(settings.SESSION_COOKIE_AGE, 8 * 3600)
        response = self.client_for(staff("dave", "operator")).get("/console/")
        self.assertIn("default-src 'self'", response["Content-Security-Policy"])
        self.assertIn("frame-ancestors 'none'", response["Content-Security-Policy"])
