"""The operator console against the test database, the Firestore emulator and the real sandbox gateway."""

import io
import json
import tempfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client, TestCase
from django.utils import timezone

from accounts.models import Account
from binpay_common.gateway import Intent
from binpay_common.saga_log import Step
from payments import clients, settlement
from payments.handlers import handle_outcome_message
from payments.models import DeadLetter, OperatorAction, OperatorActionState, Payment, PaymentStatus
from testing.fixtures import (
    SandboxGatewayMixin,
    completion_event,
    free_port,
    gateway_client,
    make_user,
    pending_payment,
    processor_logged,
    saga_steps,
    unique_name,
)

PASSWORD = "a-long-console-password"


def operator(username: str, *, staff: bool = True):
    """A console user in the operator group (ensure_operator_group)."""
    call_command("ensure_operator_group", stdout=io.StringIO())
    user = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=staff)
    user.groups.add(Group.objects.get(name="operator"))
    return user


def sign_in(client: Client, *, staff: bool = True) -> None:
    client.force_login(operator(f"user-{unique_name('x')}", staff=staff))


class ConsoleTestCase(SandboxGatewayMixin, TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.client = Client(HTTP_HOST="localhost")


class AccessTests(ConsoleTestCase):
    PAGES = ("/console/", "/console/attention/", "/console/dead-letters/", "/console/system/")

    def test_anonymous_visitors_are_sent_to_the_login_page(self) -> None:
        for page in self.PAGES:
            with self.subTest(page):
                response = self.client.get(page)
                self.assertEqual(response.status_code, 302)
                self.assertTrue(response["Location"].startswith("/console/login/?next="))

    def test_signed_in_users_who_are_not_staff_are_refused(self) -> None:
        sign_in(self.client, staff=False)
        for page in self.PAGES:
            with self.subTest(page):
                self.assertEqual(self.client.get(page).status_code, 403)

    def test_staff_see_every_page(self) -> None:
        sign_in(self.client)
        for page in self.PAGES:
            with self.subTest(page):
                self.assertEqual(self.client.get(page).status_code, 200)

    def test_login_needs_the_csrf_token(self) -> None:
        operator("operator")
        browser = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
        refused = browser.post("/console/login/", {"username": "operator", "password": PASSWORD})
        self.assertEqual(refused.status_code, 403)

        form = browser.get("/console/login/")
        token = form.cookies[settings.CSRF_COOKIE_NAME].value
        signed_in = browser.post(
            "/console/login/", {"username": "operator", "password": PASSWORD, "csrfmiddlewaretoken": token}
        )
        self.assertEqual(signed_in.status_code, 302)
        self.assertEqual(signed_in["Location"], "/console/")
        self.assertEqual(browser.get("/console/").status_code, 200)

    def test_static_files_are_served_for_the_console_and_the_admin(self) -> None:
        # DEBUG is off, as under gunicorn: WhiteNoise serves them, not Django's runserver.
        for path in ("/static/console/console.css", "/static/admin/css/base.css"):
            with self.subTest(path):
                response = self.client.get(path)
                self.assertEqual(response.status_code, 200)
                self.assertIn("text/css", response["Content-Type"])


class PaymentListTests(ConsoleTestCase):
    def setUp(self) -> None:
        super().setUp()
        sign_in(self.client)
        self.alice = make_user(email="alice@example.com")
        self.bob = make_user(email="bob@example.com")
        self.small = pending_payment(self.alice, amount=1_000)
        self.large = pending_payment(self.bob, amount=50_000)
        self.old = pending_payment(self.bob, amount=2_000)
        Payment.objects.filter(pk=self.old.pk).update(
            created_at=timezone.now() - timedelta(hours=3), status=PaymentStatus.ROLLED_BACK
        )

    def listed(self, query: str) -> set:
        response = self.client.get(f"/console/?{query}")
        self.assertEqual(response.status_code, 200)
        return {payment.pk for payment in response.context["page"]}

    def test_filters_by_status_user_age_and_amount(self) -> None:
        self.assertEqual(self.listed(""), {self.small.pk, self.large.pk, self.old.pk})
        self.assertEqual(self.listed("status=rolled_back"), {self.old.pk})
        self.assertEqual(self.listed(f"user={self.bob.pk}"), {self.large.pk, self.old.pk})
        self.assertEqual(self.listed("older_than_minutes=60"), {self.old.pk})
        self.assertEqual(self.listed("newer_than_minutes=60"), {self.small.pk, self.large.pk})
        self.assertEqual(self.listed("amount_min=25.00"), {self.large.pk})
        self.assertEqual(self.listed("amount_max=20.00&currency=usd"), {self.small.pk, self.old.pk})

    def test_counts_by_status_and_the_last_hour(self) -> None:
        response = self.client.get("/console/")
        self.assertEqual(response.context["counts"]["pending"], 2)
        self.assertEqual(response.context["counts"]["rolled_back"], 1)
        self.assertEqual(response.context["counts"]["completed"], 0)
        self.assertEqual(response.context["rates"].initiated, 2)
        self.assertContains(response, 'data-status-count="pending">2<')

    def test_bad_filters_are_refused_with_the_reason(self) -> None:
        response = self.client.get("/console/?amount_min=12.345&currency=USD")
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "at most 2 decimal place", status_code=400)
        self.assertEqual(len(response.context["page"]), 0)
        self.assertEqual(self.client.get("/console/?currency=XYZ").status_code, 400)


class PaymentDetailTests(ConsoleTestCase):
    def setUp(self) -> None:
        super().setUp()
        sign_in(self.client)
        self.user = make_user()

    def complete(self, payment: Payment, *, processor_steps: bool) -> Intent:
        """The intent takes the money (its steps logged by the processor, or only its id if not asked),
        then payment.completed is delivered."""
        intent = self.gateway.intent(payment)
        charged = (
            Step("CHARGED", {"intent_id": intent.id, "charge_id": intent.charge_id}, {"charge_id": intent.charge_id}),
            Step("COMPLETED", {}),
        )
        processor_logged(payment, intent=intent, extra=charged if processor_steps else ())
        body, attributes = completion_event(payment, charge_id=intent.charge_id, intent_id=intent.id)
        self.assertEqual(handle_outcome_message(data=json.dumps(body).encode(), attributes=attributes), "applied")
        return intent

    def test_the_timeline_shows_all_three_sources_and_nothing_inconsistent(self) -> None:
        payment = pending_payment(self.user)
        intent = self.complete(payment, processor_steps=True)
        response = self.client.get(f"/console/payments/{payment.pk}/")
        self.assertEqual(response.status_code, 200)
        timeline = response.context["timeline"]
        saga = [(entry.title, entry.service) for entry in timeline.entries if entry.source == "saga_log"]
        self.assertEqual(
            saga,
            [
                ("1. RECEIVED", "processor"),
                ("2. INTENT_CREATED", "processor"),
                ("3. CHARGED", "processor"),
                ("4. COMPLETED", "processor"),
                ("5. CAPTURED", "initiator"),
            ],
        )
        self.assertEqual([i.id for i in timeline.intents], [intent.id])
        initiator = [entry.title for entry in timeline.entries if entry.source == "initiator"]
        self.assertIn("payment created, amount held", initiator)
        self.assertIn("payment.completed applied", initiator)
        self.assertEqual(timeline.problems, {})
        self.assertNotContains(response, 'id="problems"')
        self.assertContains(response, intent.id)
        self.assertContains(response, intent.charge_id)

    def test_what_the_sources_disagree_on_is_highlighted(self) -> None:
        payment = pending_payment(self.user)
        # Completed in the database and captured in the log, but the processor never logged the charge
        # and the provider refunded it since: both columns are flagged.
        intent = self.complete(payment, processor_steps=False)
        self.gateway.port_client.refund_intent(intent.id, payment_id=str(payment.pk))
        response = self.client.get(f"/console/payments/{payment.pk}/")
        problems = response.context["timeline"].problems
        self.assertIn("step CAPTURED cannot follow INTENT_CREATED", " ".join(problems["saga_log"]))
        self.assertIn("completed but the money stands in", " ".join(problems["provider"]))
        self.assertNotIn("initiator", problems)
        self.assertContains(response, 'id="problems"')
        self.assertContains(response, 'class="inconsistent"')

    def test_an_unreachable_provider_is_shown_not_fatal(self) -> None:
        payment = pending_payment(self.user)
        processor_logged(payment, intent=self.gateway.intent(payment, confirm=False))
        clients.set_clients(gateway=gateway_client(f"http://127.0.0.1:{free_port()}"))
        response = self.client.get(f"/console/payments/{payment.pk}/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "The provider could not be asked")
        self.assertIsNone(response.context["timeline"].intents)

    def test_an_unknown_payment_is_404(self) -> None:
        self.assertEqual(self.client.get("/console/payments/00000000-0000-0000-0000-000000000000/").status_code, 404)


class QueueTests(ConsoleTestCase):
    def setUp(self) -> None:
        super().setUp()
        sign_in(self.client)

    def test_dead_letters_show_their_payment_attempts_and_payload(self) -> None:
        payment = pending_payment(make_user())
        DeadLetter.objects.create(
            subscription="completion-sub",
            message_id="m-1",
            attributes={"event_type": "payment.completed", "payment_id": str(payment.pk)},
            data=b'{"broken": true}',
            delivery_attempt=5,
            payment_id=payment.pk,
        )
        response = self.client.get("/console/dead-letters/")
        self.assertContains(response, f"/console/payments/{payment.pk}/")
        self.assertContains(response, "{&quot;broken&quot;: true}")
        self.assertContains(response, '<td class="num">5</td>')

    def test_the_system_page_shows_outbox_and_consumer_lag(self) -> None:
        pending_payment(make_user())
        response = self.client.get("/console/system/")
        system = response.context["system"]
        self.assertEqual(system.unpublished + system.publish_lag.count, 1)
        self.assertIsNotNone(system.oldest_pending_age)


class StaffCommandTests(TestCase):
    def test_creates_a_staff_login_with_a_kept_password(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            password_file = Path(directory) / "console-password"
            call_command("ensure_console_staff", "--password-file", str(password_file), stdout=io.StringIO())
            password = password_file.read_text().strip()
            call_command("ensure_console_staff", "--password-file", str(password_file), stdout=io.StringIO())
            self.assertEqual(password_file.read_text().strip(), password)
        user = get_user_model().objects.get(username="operator")
        self.assertTrue(user.is_staff)
        self.assertTrue(user.check_password(password))


class SettleTests(ConsoleTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.staff = operator("operator")
        self.client.force_login(self.staff)
        self.user = make_user(balance=100_000)
        self.payment = pending_payment(self.user, amount=10_000)
        processor_logged(self.payment, intent=self.gateway.intent(self.payment, confirm=False))
        settlement.hold_for_attention(payment_id=self.payment.pk, reason="gateway_unreachable", detail={})

    def settle(self, client: Client | None = None, **form) -> object:
        return (client or self.client).post(f"/console/payments/{self.payment.pk}/settle", form, follow=True)

    def assert_unchanged(self) -> None:
        self.payment.refresh_from_db()
        self.assertEqual(self.payment.status, PaymentStatus.NEEDS_ATTENTION)
        self.assertEqual(Account.objects.get(user=self.user).held, 10_000)
        # A refusal is recorded (who, why, what refused it); nothing was done.
        self.assertFalse(OperatorAction.objects.exclude(state=OperatorActionState.REFUSED).exists())

    def test_the_queue_lists_the_payment_with_its_reason_and_the_settle_form(self) -> None:
        response = self.client.get("/console/attention/")
        self.assertContains(response, str(self.payment.pk))
        self.assertContains(response, "gateway_unreachable")
        self.assertContains(response, f'action="/console/payments/{self.payment.pk}/settle"')

    def test_release_records_who_and_why_and_releases_the_hold(self) -> None:
        response = self.settle(action="release", reason="gateway says: nothing charged")

        self.assertContains(response, "Released: the payment is rolled_back")
        self.payment.refresh_from_db()
        self.assertEqual(self.payment.status, PaymentStatus.ROLLED_BACK)
        self.assertEqual(Account.objects.get(user=self.user).held, 0)
        action = OperatorAction.objects.get()
        self.assertEqual(
            (action.action, action.actor, action.reason), ("release", "operator", "gateway says: nothing charged")
        )
        steps = [step["step"] for step in saga_steps(self.payment.pk)]
        self.assertEqual(steps[2:], ["NEEDS_ATTENTION", "CANCEL_REQUESTED", "CHARGE_CANCELED", "COMPENSATED"])
        timeline = response.context["timeline"]
        self.assertIn("release by operator", [entry.title for entry in timeline.entries])

    def test_a_reason_is_required(self) -> None:
        response = self.settle(action="release", reason="  ")
        self.assertContains(response, "Nothing settled: reason")
        self.assert_unchanged()

    def test_an_action_the_gateway_contradicts_is_refused(self) -> None:
        # The intent never took the money: there is nothing to capture.
        response = self.settle(action="capture", reason="customer says it went through")
        self.assertContains(response, "Refused (")
        self.assert_unchanged()

    def test_settling_needs_staff_and_the_csrf_token(self) -> None:
        browser = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
        browser.force_login(self.staff)
        self.assertEqual(self.settle(browser, action="release", reason="x").status_code, 403)
        other = Client(HTTP_HOST="localhost")
        sign_in(other, staff=False)
        self.assertEqual(self.settle(other, action="release", reason="x").status_code, 403)
        self.assert_unchanged()
