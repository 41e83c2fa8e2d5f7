from django.test import TestCase

from accounts.models import Account, Deposit, User
from core.models import IdempotencyRecord
from testing.fixtures import api_client, make_user


class UserApiTests(TestCase):
    def setUp(self) -> None:
        self.client, _ = api_client()

    def test_create_and_read_a_user(self) -> None:
        response = self.client.post(
            "/users", {"email": "ada@example.com", "name": "Ada"}, content_type="application/json"
        )

        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual(
            {key: body[key] for key in ("object", "email", "name", "account")},
            {
                "object": "user",
                "email": "ada@example.com",
                "name": "Ada",
                "account": {"currency": "USD", "balance": 0, "held": 0, "available": 0},
            },
        )
        self.assertEqual(self.client.get(f"/users/{body['id']}").json(), body)

    def test_create_user_form_encoded_with_currency(self) -> None:
        response = self.client.post(
            "/users", "email=yen%40example.com&name=Yen&currency=JPY", content_type="application/x-www-form-urlencoded"
        )
        self.assertEqual(response.status_code, 201)
        self.assertEqual(response.json()["account"]["currency"], "JPY")

    def test_invalid_users_are_refused_and_nothing_written(self) -> None:
        cases = [
            ({"name": "No Email"}, 400, "parameter_missing", "email"),
            ({"email": "not-an-email", "name": "X"}, 400, "parameter_invalid", "email"),
            ({"email": "a@example.com"}, 400, "parameter_missing", "name"),
            ({"email": "a@example.com", "name": "X", "currency": "XYZ"}, 422, "currency_unsupported", "currency"),
        ]
        for payload, status, code, param in cases:
            with self.subTest(payload=payload):
                response = self.client.post("/users", payload, content_type="application/json")
                self.assertEqual(response.status_code, status)
                self.assertEqual((response.json()["error"]["code"], response.json()["error"]["param"]), (code, param))
        self.assertEqual((User.objects.count(), Account.objects.count()), (0, 0))

    def test_unknown_user_is_404(self) -> None:
        response = self.client.get("/users/424242")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(response.json()["error"]["code"], "resource_missing")

    def test_list_is_paginated_newest_first(self) -> None:
        users = [make_user(email=f"u{i}@example.com", balance=0) for i in range(5)]
        ids = [user.pk for user in reversed(users)]

        first = self.client.get("/users?limit=3").json()
        second = self.client.get(f"/users?limit=3&starting_after={first['data'][-1]['id']}").json()

        self.assertEqual(first["object"], "list")
        self.assertEqual([u["id"] for u in first["data"]], ids[:3])
        self.assertTrue(first["has_more"])
        self.assertEqual([u["id"] for u in second["data"]], ids[3:])
        self.assertFalse(second["has_more"])
        for query in ("limit=0", "limit=101", "limit=x", "starting_after=abc"):
            with self.subTest(query=query):
                self.assertEqual(self.client.get(f"/users?{query}").status_code, 400)


class DepositApiTests(TestCase):
    def setUp(self) -> None:
        self.client, _ = api_client()
        self.user = make_user(balance=0)

    def deposit(self, payload: dict, key: str | None = "dep-1"):
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        return self.client.post(f"/users/{self.user.pk}/deposits", payload, content_type="application/json", **headers)

    def test_deposit_credits_the_account_once_per_key(self) -> None:
        first = self.deposit({"amount": "50.00"})
        replay = self.deposit({"amount": "50.00"})

        self.assertEqual(first.status_code, 201, first.content)
        body = first.json()
        self.assertEqual(
            {key: body[key] for key in ("object", "user_id", "amount", "currency")},
            {"object": "deposit", "user_id": self.user.pk, "amount": 5_000, "currency": "USD"},
        )
        self.assertEqual((replay.status_code, replay.json()), (201, body))
        self.assertEqual(replay["Idempotent-Replayed"], "true")
        self.assertEqual(Account.objects.get(user=self.user).balance, 5_000)
        self.assertEqual(Deposit.objects.count(), 1)

    def test_deposit_refusals_write_nothing(self) -> None:
        self.deposit({"amount": "50.00"}, key="used")
        before = (Deposit.objects.count(), IdempotencyRecord.objects.count())
        cases = [
            ({"amount": "50.00"}, None, 400, "parameter_missing"),
            ({"amount": "60.00"}, "used", 409, "idempotency_key_reused"),
            ({"amount": "-1"}, "k1", 400, "parameter_invalid"),
            ({"amount": "1.234"}, "k2", 400, "parameter_invalid"),
            ({"amount": "1.00", "currency": "EUR"}, "k3", 422, "currency_mismatch"),
            ({}, "k4", 400, "parameter_missing"),
        ]
        for payload, key, status, code in cases:
            with self.subTest(payload=payload, key=key):
                response = self.deposit(payload, key=key)
                self.assertEqual(response.status_code, status, response.content)
                self.assertEqual(response.json()["error"]["code"], code)
        self.assertEqual((Deposit.objects.count(), IdempotencyRecord.objects.count()), before)
        self.assertEqual(Account.objects.get(user=self.user).balance, 5_000)

    def test_deposit_to_unknown_user_is_404(self) -> None:
        response = self.client.post(
            "/users/999999/deposits", {"amount": "1.00"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="x"
        )
        self.assertEqual(response.status_code, 404)

    def test_deposits_are_listed_newest_first_as_post_returns_them(self) -> None:
        created = [self.deposit({"amount": f"{n}.00"}, key=f"list-{n}").json() for n in range(1, 6)]
        other_user = make_user(email="other@example.com", balance=700)

        first = self.client.get(f"/users/{self.user.pk}/deposits?limit=3").json()
        second = self.client.get(f"/users/{self.user.pk}/deposits?limit=3&starting_after={first['data'][-1]['id']}")

        self.assertEqual(
            (first["object"], first["url"], first["has_more"]), ("list", f"/users/{self.user.pk}/deposits", True)
        )
        self.assertEqual(first["data"], list(reversed(created))[:3])
        self.assertEqual(second.json()["data"], list(reversed(created))[3:])
        self.assertFalse(second.json()["has_more"])
        other = self.client.get(f"/users/{other_user.pk}/deposits").json()["data"]
        self.assertEqual([(d["user_id"], d["amount"]) for d in other], [(other_user.pk, 700)])
        for query in ("limit=0", "limit=101", "starting_after=abc"):
            with self.subTest(query=query):
                self.assertEqual(self.client.get(f"/users/{self.user.pk}/deposits?{query}").status_code, 400)
        self.assertEqual(self.client.get("/users/999999/deposits").status_code, 404)
