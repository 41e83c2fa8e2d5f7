"""The payment-method API: the provider payment method (and customer) a user's payments are charged to,
set on POST /users and POST /users/<id>/payment-method, named or defaulted at initiation."""

from django.test import TestCase

from accounts.models import Account, User
from core.models import SCOPE_USERS_READ, USER_BOUND_SCOPES, IdempotencyRecord
from payments.models import OutboxEvent, Payment
from testing.fixtures import api_client, make_user


def payment_method_of(user: User) -> tuple[str | None, str | None]:
    user.refresh_from_db()
    return user.default_payment_method, user.provider_customer


class PaymentMethodApiTests(TestCase):
    def setUp(self) -> None:
        self.client, _ = api_client()
        self.user = make_user(balance=0, payment_method="pm_card_visa")

    def set_method(self, body, *, client=None, user_id=None, key: str | None = None, form: bool = False):
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        path = f"/users/{user_id or self.user.pk}/payment-method"
        if form:
            return (client or self.client).post(path, body, content_type="application/x-www-form-urlencoded", **headers)
        return (client or self.client).post(path, body, content_type="application/json", **headers)

    def assert_error(self, response, status: int, code: str, param: str | None) -> None:
        self.assertEqual(response.status_code, status, response.content)
        error = response.json()["error"]
        self.assertEqual((error["code"], error["param"]), (code, param))
        self.assertTrue(error["message"])

    def test_a_user_is_created_with_a_payment_method_and_customer(self) -> None:
        response = self.client.post(
            "/users",
            {
                "email": "card@example.com",
                "name": "Card Holder",
                "default_payment_method": "pm_card_mastercard",
                "provider_customer": "cus_Q1a2",
            },
            content_type="application/json",
        )

        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual(
            (body["default_payment_method"], body["provider_customer"]), ("pm_card_mastercard", "cus_Q1a2")
        )
        self.assertEqual(self.client.get(f"/users/{body['id']}").json(), body)
        self.assertEqual(payment_method_of(User.objects.get(pk=body["id"])), ("pm_card_mastercard", "cus_Q1a2"))
        plain = self.client.post("/users", {"email": "n@example.com", "name": "N"}, content_type="application/json")
        self.assertEqual((plain.json()["default_payment_method"], plain.json()["provider_customer"]), (None, None))

    def test_set_then_read_json_and_form(self) -> None:
        response = self.set_method({"default_payment_method": "pm_card_mastercard", "provider_customer": "cus_9"})

        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json(), self.client.get(f"/users/{self.user.pk}").json())
        self.assertEqual(
            (response.json()["default_payment_method"], response.json()["provider_customer"]),
            ("pm_card_mastercard", "cus_9"),
        )
        self.assertEqual(payment_method_of(self.user), ("pm_card_mastercard", "cus_9"))

        # The pair describes one payment method: a method given without a customer belongs to none.
        form = self.set_method("default_payment_method=pm_card_visa", form=True)
        self.assertEqual(form.status_code, 200, form.content)
        self.assertEqual(payment_method_of(self.user), ("pm_card_visa", None))

    def test_a_replayed_key_sets_once_and_answers_the_same(self) -> None:
        first = self.set_method({"default_payment_method": "pm_card_mastercard"}, key="pm-1")
        self.set_method({"default_payment_method": "pm_card_visa"}, key="pm-2")
        replay = self.set_method({"default_payment_method": "pm_card_mastercard"}, key="pm-1")

        self.assertEqual((replay.status_code, replay.json()), (200, first.json()))
        self.assertEqual(replay["Idempotent-Replayed"], "true")
        self.assertEqual(payment_method_of(self.user), ("pm_card_visa", None))

    def test_invalid_shapes_are_refused_with_a_structured_400_and_nothing_written(self) -> None:
        User.objects.filter(pk=self.user.pk).update(provider_customer="cus_kept")
        records = IdempotencyRecord.objects.count()
        cases = [
            ({}, "parameter_missing", "default_payment_method"),
            ({"default_payment_method": ""}, "parameter_missing", "default_payment_method"),
            ({"default_payment_method": "pm card"}, "parameter_invalid", "default_payment_method"),
            ({"default_payment_method": "pm_card-visa"}, "parameter_invalid", "default_payment_method"),
            ({"default_payment_method": 4242}, "parameter_invalid", "default_payment_method"),
            ({"default_payment_method": ["pm_card_visa"]}, "parameter_invalid", "default_payment_method"),
            ({"default_payment_method": "p" * 256}, "parameter_invalid", "default_payment_method"),
            (
                {"default_payment_method": "pm_card_visa", "provider_customer": "cus/1"},
                "parameter_invalid",
                "provider_customer",
            ),
            ({"default_payment_method": "pm_card_visa", "customer": "cus_1"}, "parameter_invalid", "customer"),
        ]
        for n, (body, code, param) in enumerate(cases):
            with self.subTest(body=body):
                self.assert_error(self.set_method(body, key=f"bad-{n}"), 400, code, param)
        self.assertEqual(payment_method_of(self.user), ("pm_card_visa", "cus_kept"))
        self.assertEqual(IdempotencyRecord.objects.count(), records)

        refused = self.client.post(
            "/users",
            {"email": "x@example.com", "name": "X", "default_payment_method": "pm_card_visa; drop"},
            content_type="application/json",
        )
        self.assert_error(refused, 400, "parameter_invalid", "default_payment_method")
        self.assertFalse(User.objects.filter(email="x@example.com").exists())

    def test_an_unknown_user_is_404_and_nothing_written(self) -> None:
        response = self.set_method({"default_payment_method": "pm_card_visa"}, user_id=987654)

        self.assert_error(response, 404, "resource_missing", None)
        self.assertFalse(IdempotencyRecord.objects.exists())

    def test_a_user_bound_key_reads_only_its_own_user_and_sets_no_payment_method(self) -> None:
        """A user-bound key never holds users:write: choosing the provider customer the user's payments
        are charged to is the platform's, not a client app's (it could point the user at another customer)."""
        other = make_user(balance=0, email="other@example.com", payment_method="pm_card_mastercard")
        bound, _ = api_client(scopes=USER_BOUND_SCOPES, user=self.user)

        self.assertEqual(bound.get(f"/users/{self.user.pk}").json()["default_payment_method"], "pm_card_visa")
        self.assert_error(bound.get(f"/users/{other.pk}"), 404, "resource_missing", None)
        for user in (self.user, other):
            with self.subTest(user=user.pk):
                refused = self.set_method({"default_payment_method": "pm_card_amex"}, client=bound, user_id=user.pk)
                self.assertEqual(refused.status_code, 403, refused.content)
                self.assertEqual(refused.json()["error"]["type"], "permission_error")
        reader, _ = api_client(scopes=(SCOPE_USERS_READ,))
        self.assertEqual(self.set_method({"default_payment_method": "pm_card_amex"}, client=reader).status_code, 403)
        self.assertEqual(payment_method_of(self.user), ("pm_card_visa", None))
        self.assertEqual(payment_method_of(other), ("pm_card_mastercard", None))


class InitiationPaymentMethodTests(TestCase):
    def setUp(self) -> None:
        self.client, _ = api_client()

    def initiate(self, user: User, *, key: str | None = None, client=None, **extra):
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        return (client or self.client).post(
            "/initiate-payment",
            {"user_id": user.pk, "amount": "25.00", **extra},
            content_type="application/json",
            **headers,
        )

    def test_without_any_payment_method_422_and_no_hold_payment_or_event(self) -> None:
        user = make_user(balance=100_000, payment_method=None)
        records = IdempotencyRecord.objects.count()

        refused = self.initiate(user, key="pay-1")

        self.assertEqual(refused.status_code, 422, refused.content)
        error = refused.json()["error"]
        self.assertEqual((error["code"], error["param"]), ("payment_method_required", "payment_method"))
        self.assertIn("/payment-method", error["message"])
        account = Account.objects.get(user=user)
        self.assertEqual((account.balance, account.held), (100_000, 0))
        self.assertFalse(Payment.objects.exists())
        self.assertFalse(OutboxEvent.objects.exists())
        self.assertEqual(IdempotencyRecord.objects.count(), records)

        # Nothing was stored under the key: once the user has a method, the same request goes through.
        self.client.post(
            f"/users/{user.pk}/payment-method",
            {"default_payment_method": "pm_card_visa", "provider_customer": "cus_77"},
            content_type="application/json",
        )
        accepted = self.initiate(user, key="pay-1")
        self.assertEqual(accepted.status_code, 202, accepted.content)
        event = OutboxEvent.objects.get()
        self.assertEqual((event.body["payment_method"], event.body["customer"]), ("pm_card_visa", "cus_77"))
        self.assertEqual(Account.objects.get(user=user).held, 2_500)

    def test_a_named_payment_method_is_charged_and_carried_by_the_event(self) -> None:
        user = make_user(balance=100_000, payment_method="pm_card_visa")
        User.objects.filter(pk=user.pk).update(provider_customer="cus_5")

        named = self.initiate(user, payment_method="pm_card_mastercard")
        defaulted = self.initiate(user)

        self.assertEqual((named.status_code, defaulted.status_code), (202, 202))
        self.assertEqual(named.json()["payment_method"], "pm_card_mastercard")
        self.assertEqual(defaulted.json()["payment_method"], "pm_card_visa")
        for response, method in ((named, "pm_card_mastercard"), (defaulted, "pm_card_visa")):
            payment = Payment.objects.get(pk=response.json()["id"])
            event = payment.outbox_events.get()
            self.assertEqual((payment.payment_method, payment.provider_customer), (method, "cus_5"))
            self.assertEqual((event.body["payment_method"], event.body["customer"]), (method, "cus_5"))

    def test_a_named_payment_method_also_serves_a_user_without_a_default(self) -> None:
        user = make_user(balance=100_000, payment_method=None)
        bound, _ = api_client(scopes=USER_BOUND_SCOPES, user=user)

        response = self.initiate(user, client=bound, payment_method="pm_card_visa")

        self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(OutboxEvent.objects.get().body["payment_method"], "pm_card_visa")

    def test_a_malformed_payment_method_is_400_and_nothing_written(self) -> None:
        user = make_user(balance=100_000)
        for value in ("pm card", "", 42, "x" * 256):
            with self.subTest(value=value):
                response = self.initiate(user, payment_method=value)
                self.assertEqual(response.status_code, 400, response.content)
                self.assertEqual(response.json()["error"]["param"], "payment_method")
        self.assertEqual(Account.objects.get(user=user).held, 0)
        self.assertFalse(Payment.objects.exists())
        self.assertFalse(OutboxEvent.objects.exists())
