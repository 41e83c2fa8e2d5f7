from django.contrib.auth import get_user_model
from django.test import TestCase

from testing.fixtures import api_client, make_user, pending_payment


class AdminTests(TestCase):
    def setUp(self) -> None:
        admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "a-long-test-password")
        self.client.force_login(admin)
        api_client()
        self.payment = pending_payment(make_user())

    def test_changelists_and_payment_page_render(self) -> None:
        for model in (
            "accounts/user",
            "accounts/account",
            "accounts/deposit",
            "payments/payment",
            "payments/outboxevent",
            "payments/processedevent",
            "core/apikey",
        ):
            with self.subTest(model):
                self.assertEqual(self.client.get(f"/admin/{model}/", HTTP_HOST="localhost").status_code, 200)
        page = self.client.get(f"/admin/payments/payment/{self.payment.pk}/change/", HTTP_HOST="localhost")
        self.assertEqual(page.status_code, 200)

    def test_payments_are_read_only(self) -> None:
        response = self.client.post(
            f"/admin/payments/payment/{self.payment.pk}/change/", {"status": "completed"}, HTTP_HOST="localhost"
        )
        self.assertEqual(response.status_code, 403)
        self.payment.refresh_from_db()
        self.assertEqual(self.payment.status, "pending")

    def test_admin_needs_a_django_login(self) -> None:
        self.client.logout()
        response = self.client.get("/admin/payments/payment/", HTTP_HOST="localhost")
        self.assertEqual(response.status_code, 302)
