"""Strict input: every refusal is a 4xx naming its parameter, and writes nothing."""

import json

from django.test import TestCase

from accounts.models import Account, Deposit, User
from accounts.services import BALANCE_MAX
from core.models import ApiKey, IdempotencyRecord
from core.parsers import JSON_MAX_DEPTH
from payments.models import OutboxEvent, Payment
from testing.fixtures import api_client, make_user

FORM = "application/x-www-form-urlencoded"
# Amounts Python's Decimal accepts and the API refuses: exponents, signs, digit separators, non-ASCII digits,
# spaces, more decimals than the currency has, zero.
REFUSED_AMOUNTS = [
    "1e3",
    "1E3",
    "+5",
    "1_000.00",
    "\uff11\uff10\uff10",  # full-width 100
    "\u0661\u0660\u0660",  # Arabic-Indic 100
    "1 000",
    " 100",
    "100 ",
    "10\u00a00",
    "1.001",
    "-5",
    "0",
    "0.00",
    "007",
    ".5",
    "5.",
    "NaN",
    "Infinity",
    "",
    100,
    100.5,
    True,
    None,
    ["100"],
]


def database_state() -> dict:
    return {
        "users": User.objects.count(),
        "balances": list(Account.objects.order_by("pk").values_list("balance", "held")),
        "deposits": Deposit.objects.count(),
        "payments": Payment.objects.count(),
        "outbox": OutboxEvent.objects.count(),
        "idempotency": IdempotencyRecord.objects.count(),
        "api_keys": ApiKey.objects.count(),
    }


class StrictInputTestCase(TestCase):
    def setUp(self) -> None:
        self.client, _ = api_client()
        self.user = make_user(balance=5_000_000)  # USD 50,000.00

    def post_json(self, path: str, body, **headers):
        raw = body if isinstance(body, str) else json.dumps(body)
        return self.client.post(path, raw, content_type="application/json", **headers)

    def assert_refused(self, response, status: int, param: str | None, before: dict, code: str | None = None) -> None:
        self.assertEqual(response.status_code, status, response.content[:300])
        error = response.json()["error"]
        self.assertEqual(set(error), {"type", "code", "message", "param"})
        self.assertEqual(error["param"], param, error)
        if code:
            self.assertEqual(error["code"], code, error)
        self.assertEqual(database_state(), before, "a refused request wrote something")


class AmountTests(StrictInputTestCase):
    def test_payment_amounts_that_are_not_plain_decimal_strings_are_refused(self) -> None:
        before = database_state()
        for amount in REFUSED_AMOUNTS:
            with self.subTest(amount=amount):
                response = self.post_json("/initiate-payment", {"user_id": self.user.pk, "amount": amount})
                self.assert_refused(response, 400, "amount", before)

    def test_form_amounts_are_held_to_the_same_rules(self) -> None:
        before = database_state()
        for amount in ("1e3", "%2B5", "1_000.00", "%EF%BC%91", "1%20000", "1.001"):
            with self.subTest(amount=amount):
                response = self.client.post(
                    "/initiate-payment", f"user_id={self.user.pk}&amount={amount}", content_type=FORM
                )
                self.assert_refused(response, 400, "amount", before)

    def test_deposit_amounts_that_are_not_plain_decimal_strings_are_refused(self) -> None:
        before = database_state()
        for number, amount in enumerate(REFUSED_AMOUNTS):
            with self.subTest(amount=amount):
                response = self.post_json(
                    f"/users/{self.user.pk}/deposits", {"amount": amount}, HTTP_IDEMPOTENCY_KEY=f"d-{number}"
                )
                self.assert_refused(response, 400, "amount", before)

    def test_decimals_follow_the_currency(self) -> None:
        yen = make_user(balance=1_000_000, currency="JPY", email="yen@example.com")
        dinar = make_user(balance=1_000_000, currency="KWD", email="kwd@example.com")
        before = database_state()
        for user, amount, currency in ((yen, "10.5", "JPY"), (self.user, "1.001", "USD"), (dinar, "1.0001", "KWD")):
            with self.subTest(currency=currency):
                response = self.post_json(
                    "/initiate-payment", {"user_id": user.pk, "amount": amount, "currency": currency}
                )
                self.assert_refused(response, 400, "amount", before)
        accepted = self.post_json("/initiate-payment", {"user_id": dinar.pk, "amount": "1.005", "currency": "KWD"})
        self.assertEqual((accepted.status_code, accepted.json()["amount"]), (202, 1_005))

    def test_lowercase_and_non_string_currencies_are_refused(self) -> None:
        before = database_state()
        for currency in ("usd", "Usd", 840, "US D", "\uff35SD"):
            with self.subTest(currency=currency):
                response = self.post_json(
                    "/initiate-payment", {"user_id": self.user.pk, "amount": "1.00", "currency": currency}
                )
                self.assert_refused(response, 400, "currency", before)


class LimitTests(StrictInputTestCase):
    def test_payment_limits_are_per_currency(self) -> None:
        yen = make_user(balance=3_000_000, currency="JPY", email="yen@example.com")
        before = database_state()
        for user, amount, currency in ((self.user, "10000.01", "USD"), (yen, "1500001", "JPY")):
            with self.subTest(currency=currency):
                response = self.post_json(
                    "/initiate-payment", {"user_id": user.pk, "amount": amount, "currency": currency}
                )
                self.assert_refused(response, 422, "amount", before, code="amount_too_large")
        # The same number of minor units is within the yen limit: one limit per currency, not one for all.
        accepted = self.post_json("/initiate-payment", {"user_id": yen.pk, "amount": "1500000", "currency": "JPY"})
        self.assertEqual(accepted.status_code, 202, accepted.content)
        accepted = self.post_json("/initiate-payment", {"user_id": self.user.pk, "amount": "10000.00"})
        self.assertEqual(accepted.status_code, 202, accepted.content)

    def test_deposit_limits_are_per_currency(self) -> None:
        before = database_state()
        response = self.post_json(
            f"/users/{self.user.pk}/deposits", {"amount": "100000.01"}, HTTP_IDEMPOTENCY_KEY="too-much"
        )
        self.assert_refused(response, 422, "amount", before, code="amount_too_large")
        accepted = self.post_json(
            f"/users/{self.user.pk}/deposits", {"amount": "100000.00"}, HTTP_IDEMPOTENCY_KEY="at-the-limit"
        )
        self.assertEqual(accepted.status_code, 201, accepted.content)

    def test_a_deposit_never_overflows_the_balance_column(self) -> None:
        Account.objects.filter(user=self.user).update(balance=BALANCE_MAX - 50)
        before = database_state()
        response = self.post_json(f"/users/{self.user.pk}/deposits", {"amount": "1.00"}, HTTP_IDEMPOTENCY_KEY="ovf")
        self.assert_refused(response, 422, "amount", before, code="balance_too_large")
        self.assertEqual(Account.objects.get(user=self.user).balance, BALANCE_MAX - 50)


class MetadataTests(StrictInputTestCase):
    def pay(self, metadata):
        return self.post_json("/initiate-payment", {"user_id": self.user.pk, "amount": "1.00", "metadata": metadata})

    def test_stripe_limits(self) -> None:
        before = database_state()
        cases = {
            "51 keys": {f"k{n}": "v" for n in range(51)},
            "key of 41 characters": {"k" * 41: "v"},
            "empty key": {"": "v"},
            "value of 501 characters": {"k": "v" * 501},
            "number value": {"k": 7},
            "null value": {"k": None},
            "nested value": {"k": {"a": "b"}},
            "not an object": "k=v",
        }
        for label, metadata in cases.items():
            with self.subTest(label):
                response = self.pay(metadata)
                # The param names the key when one key is at fault: metadata.k
                self.assert_refused(response, 400, response.json()["error"]["param"], before)
                self.assertIn(response.json()["error"]["param"], {"metadata", "metadata.k"})
        at_the_limits = {f"{n:02d}" + "k" * 38: "v" * 500 for n in range(50)}
        accepted = self.pay(at_the_limits)
        self.assertEqual(accepted.status_code, 202, accepted.content[:300])

    def test_nul_and_lone_surrogates_are_refused_not_a_server_error(self) -> None:
        before = database_state()
        cases = {
            "NUL in a key": {"a\u0000b": "v"},
            "NUL in a value": {"k": "a\u0000b"},
            "lone surrogate in a key": {"a\ud800": "v"},
            "lone surrogate in a value": {"k": "\udfff"},
            "escape character in a value": {"k": "\u001b[31m"},
        }
        for label, metadata in cases.items():
            with self.subTest(label):
                response = self.pay(metadata)
                self.assertEqual(response.status_code, 400, response.content[:300])
                self.assertTrue(response.json()["error"]["param"].startswith("metadata"))
                self.assertEqual(database_state(), before)
        accepted = self.pay({"note": "Grüße, 東京 🚀"})
        self.assertEqual(accepted.status_code, 202, accepted.content[:300])

    def test_form_metadata_with_nul_is_refused(self) -> None:
        before = database_state()
        response = self.client.post(
            "/initiate-payment", f"user_id={self.user.pk}&amount=1.00&metadata[k]=a%00b", content_type=FORM
        )
        self.assertEqual(response.status_code, 400, response.content)
        self.assertEqual(database_state(), before)

    def test_user_names_with_nul_or_lone_surrogates_are_refused(self) -> None:
        before = database_state()
        for name in ("a\u0000b", "a\ud800b"):
            with self.subTest(name=repr(name)):
                response = self.post_json("/users", {"email": "n@example.com", "name": name})
                self.assert_refused(response, 400, "name", before)


class BodyShapeTests(StrictInputTestCase):
    def test_deeply_nested_json_is_a_400(self) -> None:
        before = database_state()
        for depth in (JSON_MAX_DEPTH + 1, 50_000):
            body = "[" * depth + "]" * depth
            for path in ("/initiate-payment", "/users", f"/users/{self.user.pk}/deposits"):
                with self.subTest(depth=depth, path=path):
                    response = self.post_json(path, body, HTTP_IDEMPOTENCY_KEY=f"deep-{depth}")
                    self.assert_refused(response, 400, None, before, code="body_invalid")
        nested_object = {"user_id": self.user.pk, "amount": "1.00", "metadata": {"k": "v"}}
        self.assertEqual(self.post_json("/initiate-payment", nested_object).status_code, 202)

    def test_other_media_types_are_a_documented_415(self) -> None:
        before = database_state()
        response = self.client.post(
            "/initiate-payment", f"user_id={self.user.pk}&amount=1.00", content_type="text/plain"
        )
        self.assert_refused(response, 415, None, before, code="unsupported_media_type")

    def test_unknown_parameters_are_refused(self) -> None:
        before = database_state()
        cases = [
            ("/initiate-payment", {"user_id": self.user.pk, "amount": "1.00", "amount_minor": 100}, "amount_minor"),
            ("/users", {"email": "x@example.com", "name": "X", "balance": 100}, "balance"),
            (f"/users/{self.user.pk}/deposits", {"amount": "1.00", "user_id": 2}, "user_id"),
        ]
        for path, body, param in cases:
            with self.subTest(path=path):
                response = self.post_json(path, body, HTTP_IDEMPOTENCY_KEY="unknown-param")
                self.assert_refused(response, 400, param, before)
        response = self.client.post(
            "/initiate-payment", f"user_id={self.user.pk}&amount=1.00&surprise=1", content_type=FORM
        )
        self.assert_refused(response, 400, "surprise", before)

    def test_user_ids_are_json_integers_within_the_bigint_range(self) -> None:
        before = database_state()
        for user_id in (str(self.user.pk), float(self.user.pk), True, 0, -1, 2**63, 10**30):
            with self.subTest(user_id=user_id):
                response = self.post_json("/initiate-payment", {"user_id": user_id, "amount": "1.00"})
                self.assert_refused(response, 400, "user_id", before)

    def test_ids_beyond_the_bigint_range_are_not_server_errors(self) -> None:
        for path in ("/users/99999999999999999999", "/users/99999999999999999999/payments"):
            with self.subTest(path=path):
                self.assertEqual(self.client.get(path).status_code, 404)
        for path in ("/users", f"/users/{self.user.pk}/deposits"):
            with self.subTest(path=path):
                response = self.client.get(f"{path}?starting_after=99999999999999999999")
                self.assertEqual((response.status_code, response.json()["error"]["param"]), (400, "starting_after"))
        payments = f"/users/{self.user.pk}/payments"
        for cursor, status in (("not-a-payment-id", 400), ("00000000-0000-4000-8000-000000000000", 404)):
            with self.subTest(cursor=cursor):
                response = self.client.get(f"{payments}?starting_after={cursor}")
                self.assertEqual((response.status_code, response.json()["error"]["param"]), (status, "starting_after"))
