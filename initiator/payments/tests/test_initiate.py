from django.conf import settings
from django.test import TestCase, override_settings

from accounts.models import Account, Deposit, User
from core.models import IdempotencyRecord
from payments.models import OutboxEvent, Payment, PaymentStatus
from testing.fixtures import api_client, make_user

FORM = "application/x-www-form-urlencoded"


def row_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (User, Account, Deposit, Payment, OutboxEvent, IdempotencyRecord)
    }


class InitiatePaymentTests(TestCase):
    def setUp(self) -> None:
        self.client, _ = api_client()
        self.user = make_user(balance=1_000_000)

    def test_seed_curl_form_encoded(self) -> None:
        # curl -X POST -d "user_id=1&amount=100.00" .../initiate-payment  (with the user id of this test's user)
        response = self.client.post("/initiate-payment", f"user_id={self.user.pk}&amount=100.00", content_type=FORM)

        self.assertEqual(response.status_code, 202, response.content)
        body = response.json()
        payment = Payment.objects.get()
        self.assertEqual(body["id"], str(payment.pk))
        self.assertEqual(body["object"], "payment")
        self.assertEqual(body["status"], "pending")
        self.assertEqual(body["amount"], 10_000)
        self.assertEqual(body["currency"], "USD")
        self.assertEqual(body["links"], {"self": f"/payments/{payment.pk}"})
        self.assertEqual(response["Location"], f"/payments/{payment.pk}")
        account = Account.objects.get(user=self.user)
        self.assertEqual((account.balance, account.held, account.available), (1_000_000, 10_000, 990_000))
        event = OutboxEvent.objects.get()
        self.assertEqual(event.event_type, "payment.initiated")
        self.assertEqual(event.body["amount"], 10_000)
        self.assertEqual(event.body["payment_id"], str(payment.pk))
        self.assertEqual(event.attributes["correlation_id"], response["X-Correlation-ID"])

    def test_json_with_metadata_and_correlation_id(self) -> None:
        response = self.client.post(
            "/initiate-payment",
            {"user_id": self.user.pk, "amount": "12.34", "currency": "USD", "metadata": {"order": "A-1"}},
            content_type="application/json",
            HTTP_X_CORRELATION_ID="corr-123",
        )

        self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(response["X-Correlation-ID"], "corr-123")
        payment = Payment.objects.get()
        self.assertEqual((payment.amount, payment.currency, payment.metadata), (1234, "USD", {"order": "A-1"}))
        self.assertEqual(payment.correlation_id, "corr-123")
        self.assertEqual(OutboxEvent.objects.get().body["metadata"], {"order": "A-1"})

    def test_form_metadata_stripe_style(self) -> None:
        response = self.client.post(
            "/initiate-payment",
            f"user_id={self.user.pk}&amount=5&metadata[simulate_failure]=before_charge&metadata[order]=7",
            content_type=FORM,
        )

        self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(response.json()["metadata"], {"simulate_failure": "before_charge", "order": "7"})

    def test_get_payment_and_list_newest_first(self) -> None:
        ids = []
        for amount in ("1.00", "2.00", "3.00"):
            response = self.client.post(
                "/initiate-payment", {"user_id": self.user.pk, "amount": amount}, content_type="application/json"
            )
            ids.append(response.json()["id"])

        detail = self.client.get(f"/payments/{ids[0]}")
        self.assertEqual(detail.status_code, 200)
        self.assertEqual(detail.json()["amount"], 100)
        self.assertIn("saga_log", detail.json())

        first_page = self.client.get(f"/users/{self.user.pk}/payments?limit=2").json()
        self.assertEqual([p["id"] for p in first_page["data"]], [ids[2], ids[1]])
        self.assertTrue(first_page["has_more"])
        second_page = self.client.get(f"/users/{self.user.pk}/payments?limit=2&starting_after={ids[1]}").json()
        self.assertEqual([p["id"] for p in second_page["data"]], [ids[0]])
        self.assertFalse(second_page["has_more"])

    def test_unknown_payment_is_404(self) -> None:
        for payment_id in ("00000000-0000-4000-8000-000000000000", "not-a-uuid"):
            response = self.client.get(f"/payments/{payment_id}")
            self.assertEqual(response.status_code, 404)
            self.assertEqual(response.json()["error"]["code"], "resource_missing")


@override_settings(PAYMENT_MAX_AMOUNTS={**settings.PAYMENT_MAX_AMOUNTS, "USD": 500_000})
class InitiatePaymentValidationTests(TestCase):
    """Every refusal answers a structured error and writes nothing."""

    def setUp(self) -> None:
        self.client, _ = api_client()
        self.user = make_user(balance=100_000)  # USD 1,000.00

    def assert_refused(self, response, status: int, code: str, param: str | None) -> None:
        self.assertEqual(response.status_code, status, response.content)
        error = response.json()["error"]
        self.assertEqual(set(error), {"type", "code", "message", "param"})
        self.assertEqual((error["code"], error["param"]), (code, param))
        self.assertTrue(error["message"])

    def test_each_invalid_request_is_refused_and_writes_nothing(self) -> None:
        user_id = self.user.pk
        cases = [
            ({"amount": "1.00"}, 400, "parameter_missing", "user_id"),
            ({"user_id": user_id}, 400, "parameter_missing", "amount"),
            ({"user_id": "abc", "amount": "1.00"}, 400, "parameter_invalid", "user_id"),
            ({"user_id": user_id, "amount": "ten"}, 400, "parameter_invalid", "amount"),
            ({"user_id": user_id, "amount": "0"}, 400, "parameter_invalid", "amount"),
            ({"user_id": user_id, "amount": "-5.00"}, 400, "parameter_invalid", "amount"),
            ({"user_id": user_id, "amount": "1.001"}, 400, "parameter_invalid", "amount"),
            ({"user_id": user_id, "amount": "1e3"}, 400, "parameter_invalid", "amount"),
            ({"user_id": user_id, "amount": "NaN"}, 400, "parameter_invalid", "amount"),
            ({"user_id": user_id, "amount": "1.00", "currency": "US"}, 400, "parameter_invalid", "currency"),
            ({"user_id": user_id, "amount": "1.00", "metadata": "x"}, 400, "parameter_invalid", "metadata"),
            ({"user_id": user_id, "amount": "1.00", "metadata": {"k" * 41: "v"}}, 400, "parameter_invalid", "metadata"),
            ({"user_id": 999_999, "amount": "1.00"}, 404, "resource_missing", "user_id"),
            ({"user_id": user_id, "amount": "5000.01"}, 422, "amount_too_large", "amount"),
            ({"user_id": user_id, "amount": "1.00", "currency": "EUR"}, 422, "currency_mismatch", "currency"),
            ({"user_id": user_id, "amount": "1.00", "currency": "XYZ"}, 422, "currency_unsupported", "currency"),
            ({"user_id": user_id, "amount": "1000.01"}, 402, "insufficient_funds", "amount"),
        ]
        before = row_counts()
        for payload, status, code, param in cases:
            with self.subTest(payload=payload):
                response = self.client.post("/initiate-payment", payload, content_type="application/json")
                self.assert_refused(response, status, code, param)
                self.assertEqual(row_counts(), before)
        account = Account.objects.get(user=self.user)
        self.assertEqual((account.balance, account.held), (100_000, 0))

    def test_malformed_json_body(self) -> None:
        before = row_counts()
        response = self.client.post("/initiate-payment", "{not json", content_type="application/json")
        self.assert_refused(response, 400, "body_invalid", None)
        self.assertEqual(row_counts(), before)

    def test_yen_allows_no_decimals(self) -> None:
        yen_user = make_user(balance=10_000, currency="JPY")
        response = self.client.post(
            "/initiate-payment",
            {"user_id": yen_user.pk, "amount": "10.5", "currency": "JPY"},
            content_type="application/json",
        )
        self.assert_refused(response, 400, "parameter_invalid", "amount")
        response = self.client.post(
            "/initiate-payment",
            {"user_id": yen_user.pk, "amount": "500", "currency": "JPY"},
            content_type="application/json",
        )
        self.assertEqual(response.status_code, 202)
        self.assertEqual(response.json()["amount"], 500)

    def test_without_api_key_401_and_nothing_written(self) -> None:
        before = row_counts()
        anonymous = self.client_class(HTTP_HOST="localhost")
        response = anonymous.post("/initiate-payment", f"user_id={self.user.pk}&amount=1.00", content_type=FORM)
        self.assert_refused(response, 401, "api_key_missing", None)
        response = anonymous.post(
            "/initiate-payment",
            f"user_id={self.user.pk}&amount=1.00",
            content_type=FORM,
            HTTP_AUTHORIZATION="Bearer bpk_wrong",
        )
        self.assert_refused(response, 401, "invalid_api_key", None)
        self.assertEqual(row_counts(), before)


class IdempotentInitiationTests(TestCase):
    def setUp(self) -> None:
        self.client, _ = api_client()
        self.user = make_user(balance=100_000)

    def post(self, amount: str, key: str):
        return self.client.post(
            "/initiate-payment", f"user_id={self.user.pk}&amount={amount}", content_type=FORM, HTTP_IDEMPOTENCY_KEY=key
        )

    def test_same_key_same_params_replays_without_a_second_reservation(self) -> None:
        first = self.post("100.00", "key-1")
        replay = self.post("100.00", "key-1")

        self.assertEqual((first.status_code, replay.status_code), (202, 202))
        self.assertEqual(replay.json(), first.json())
        self.assertEqual(replay["Location"], first["Location"])
        self.assertEqual(replay["Idempotent-Replayed"], "true")
        self.assertNotIn("Idempotent-Replayed", first)
        self.assertEqual(Payment.objects.count(), 1)
        self.assertEqual(OutboxEvent.objects.count(), 1)
        self.assertEqual(Account.objects.get(user=self.user).held, 10_000)

    def test_same_key_different_params_is_409_and_writes_nothing(self) -> None:
        self.post("100.00", "key-2")
        before = row_counts()

        response = self.post("200.00", "key-2")

        self.assertEqual(response.status_code, 409)
        self.assertEqual(response.json()["error"]["code"], "idempotency_key_reused")
        self.assertEqual(row_counts(), before)
        self.assertEqual(Account.objects.get(user=self.user).held, 10_000)

    def test_a_refused_request_stores_nothing_so_the_key_can_be_retried(self) -> None:
        refused = self.post("5000.00", "key-3")
        self.assertEqual(refused.status_code, 402)
        self.assertEqual(IdempotencyRecord.objects.count(), 0)

    def test_keys_are_scoped_to_the_api_key(self) -> None:
        other_client, _ = api_client()
        first = self.post("1.00", "shared")
        second = other_client.post(
            "/initiate-payment", f"user_id={self.user.pk}&amount=1.00", content_type=FORM, HTTP_IDEMPOTENCY_KEY="shared"
        )
        self.assertEqual((first.status_code, second.status_code), (202, 202))
        self.assertNotEqual(first.json()["id"], second.json()["id"])

    def test_needs_attention_status_is_visible_in_the_api(self) -> None:
        payment_id = self.post("1.00", "key-4").json()["id"]
        Payment.objects.filter(pk=payment_id).update(status=PaymentStatus.NEEDS_ATTENTION)

        self.assertEqual(self.client.get(f"/payments/{payment_id}").json()["status"], "needs_attention")
