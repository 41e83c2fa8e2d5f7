"""Who may move whose money: every public endpoint × every kind of caller, against a live
gunicorn, with the database compared before and after every refusal."""

import uuid
from dataclasses import dataclass
from datetime import timedelta

import requests
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Account, Deposit, User
from core.models import SCOPES, ApiKey, IdempotencyRecord
from core.services import api_key_create
from payments.models import OutboxEvent, Payment
from payments.tests.test_processes import GunicornTestCase
from testing.fixtures import make_user, pending_payment

CALLERS = (
    "no key",
    "unknown key",
    "revoked key",
    "expired key",
    "user-bound key, own user",
    "user-bound key, other user",
    "secret key with the scope",
    "secret key without the scope",
)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {user} and {payment} are filled in with the target user's objects
    scope: str | None
    success: int
    # What a user-bound key gets on its own user's objects and on another user's.
    own: int
    other: int
    body: dict | None = None


ENDPOINTS = (
    Endpoint("GET", "/healthz", None, 200, 200, 200),
    Endpoint("GET", "/readyz", None, 200, 200, 200),
    # A list has no "other user": a user-bound key sees its own user only (checked below).
    Endpoint("GET", "/users", "users:read", 200, 200, 200),
    Endpoint("POST", "/users", "users:write", 201, 403, 403, {"email": "new@example.com", "name": "New"}),
    Endpoint("GET", "/users/{user}", "users:read", 200, 200, 404),
    Endpoint("GET", "/users/{user}/deposits", "users:read", 200, 200, 404),
    Endpoint("POST", "/users/{user}/deposits", "deposits:write", 201, 403, 403, {"amount": "1.00"}),
    Endpoint("GET", "/users/{user}/payments", "payments:read", 200, 200, 404),
    Endpoint("POST", "/initiate-payment", "payments:write", 202, 202, 404, {"user_id": "{user}", "amount": "1.00"}),
    Endpoint("GET", "/payments/{payment}", "payments:read", 200, 200, 404),
)


def expected_status(endpoint: Endpoint, caller: str) -> int:
    if endpoint.scope is None:
        return endpoint.success
    if caller in CALLERS[:4]:
        return 401
    if caller == "user-bound key, own user":
        return endpoint.own
    if caller == "user-bound key, other user":
        return endpoint.other
    return endpoint.success if caller == "secret key with the scope" else 403


def database_state() -> dict:
    return {
        "users": sorted(User.objects.values_list("id", "email", "name")),
        "accounts": sorted(Account.objects.values_list("user_id", "currency", "balance", "held")),
        "balance_total": Account.objects.aggregate(Sum("balance"))["balance__sum"],
        "deposits": Deposit.objects.count(),
        "payments": sorted((str(p), s) for p, s in Payment.objects.values_list("id", "status")),
        "outbox": OutboxEvent.objects.count(),
        "idempotency": IdempotencyRecord.objects.count(),
        # Not last_used_at: a refused request still used its key.
        "api_keys": sorted(ApiKey.objects.values_list("id", "scopes", "user_id", "revoked_at", "expires_at")),
    }


class TenancyMatrixTests(GunicornTestCase):
    def setUp(self) -> None:
        self.session = requests.Session()
        self.own = make_user(balance=1_000_000, email="own@example.com")
        self.other = make_user(balance=1_000_000, email="other@example.com")
        self.payments = {self.own.pk: pending_payment(self.own), self.other.pk: pending_payment(self.other)}
        _, self.bound_key = api_key_create(name="app of own user", user=self.own)
        revoked, self.revoked_key = api_key_create(name="revoked", scopes=SCOPES)
        ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
        expired, self.expired_key = api_key_create(name="expired", scopes=SCOPES)
        ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
        self.keys_with = {scope: api_key_create(name=f"only {scope}", scopes=[scope])[1] for scope in SCOPES}
        self.keys_without = {
            scope: api_key_create(name=f"all but {scope}", scopes=[s for s in SCOPES if s != scope])[1]
            for scope in SCOPES
        }

    def tearDown(self) -> None:
        self.session.close()

    def key_for(self, endpoint: Endpoint, caller: str) -> str | None:
        scope = endpoint.scope or "users:read"
        return {
            "no key": None,
            "unknown key": "bpk_" + uuid.uuid4().hex,
            "revoked key": self.revoked_key,
            "expired key": self.expired_key,
            "user-bound key, own user": self.bound_key,
            "user-bound key, other user": self.bound_key,
            "secret key with the scope": self.keys_with[scope],
            "secret key without the scope": self.keys_without[scope],
        }[caller]

    def call(self, endpoint: Endpoint, caller: str) -> requests.Response:
        target = self.other if caller == "user-bound key, other user" else self.own
        fill = {"user": target.pk, "payment": self.payments[target.pk].pk}
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        key = self.key_for(endpoint, caller)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = None
        if endpoint.body is not None:
            body = {name: (target.pk if value == "{user}" else value) for name, value in endpoint.body.items()}
            if "email" in body:
                body["email"] = f"{uuid.uuid4().hex[:8]}@example.com"
        return self.session.request(
            endpoint.method, self.base + endpoint.path.format(**fill), json=body, headers=headers, timeout=30
        )

    def test_every_endpoint_for_every_caller(self) -> None:
        for endpoint in ENDPOINTS:
            for caller in CALLERS:
                expected = expected_status(endpoint, caller)
                with self.subTest(f"{endpoint.method} {endpoint.path} / {caller}"):
                    before = database_state()
                    response = self.call(endpoint, caller)
                    self.assertEqual(response.status_code, expected, response.text[:300])
                    if expected >= 400:
                        error = response.json()["error"]
                        self.assertEqual(set(error), {"type", "code", "message", "param"})
                        self.assertEqual(database_state(), before, "a refused request wrote something")
                    if expected == 404:
                        # Another user's object answers exactly like one that does not exist.
                        self.assertEqual(error["code"], "resource_missing")
                    if expected == 403:
                        self.assertEqual((error["type"], error["code"]), ("permission_error", "insufficient_scope"))

    def test_a_user_bound_key_lists_only_its_user(self) -> None:
        response = self.session.get(f"{self.base}/users", headers={"Authorization": f"Bearer {self.bound_key}"})
        self.assertEqual([user["id"] for user in response.json()["data"]], [self.own.pk])
        response = self.session.get(
            f"{self.base}/users", headers={"Authorization": f"Bearer {self.keys_with['users:read']}"}
        )
        self.assertEqual({user["id"] for user in response.json()["data"]}, {self.own.pk, self.other.pk})

    def test_a_deposit_records_the_key_that_made_it(self) -> None:
        response = self.session.post(
            f"{self.base}/users/{self.other.pk}/deposits",
            json={"amount": "25.00"},
            headers={"Authorization": f"Bearer {self.keys_with['deposits:write']}", "Idempotency-Key": "audit-1"},
            timeout=30,
        )
        self.assertEqual(response.status_code, 201, response.text)
        deposit = Deposit.objects.get(pk=response.json()["id"])
        self.assertEqual(deposit.created_by.name, "only deposits:write")
