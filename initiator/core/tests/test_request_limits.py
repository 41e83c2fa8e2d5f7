"""Issue 22 (M5, M4): request bodies are bounded before anything parses them, and every client is held to
its budget, per API key and per client address, with separate read and write budgets, answered 429 with
Retry-After and the API's error body. Login pages are throttled too. Against live gunicorns that share
one database: the limit holds across instances."""

import json
import uuid

import requests

from accounts.models import User
from core.services import api_key_create
from payments.models import Payment
from payments.tests.test_processes import wait_for_http
from testing.fixtures import free_port, make_user
from testing.live import LiveGunicornTestCase


def chunks(body: bytes, size: int = 8192):
    for start in range(0, len(body), size):
        yield body[start : start + size]


class BodyLimitTests(LiveGunicornTestCase):
    server_env = {"RATE_LIMIT_ENABLED": "false"}

    def setUp(self) -> None:
        self.user = make_user()
        _, self.key = api_key_create(name="body", user=self.user)
        self.headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def big_payment(self) -> bytes:
        metadata = {f"k{i}": "v" * 400 for i in range(2_000)}  # about 820 kB
        return json.dumps({"user_id": self.user.pk, "amount": "1.00", "metadata": metadata}).encode()

    def assert_refused_413(self, response: requests.Response) -> None:
        self.assertEqual(response.status_code, 413, response.text[:300])
        error = response.json()["error"]
        self.assertEqual((error["type"], error["code"]), ("invalid_request_error", "body_too_large"))
        self.assertEqual(Payment.objects.count(), 0)

    def test_a_body_over_the_limit_is_refused_by_its_content_length(self) -> None:
        response = requests.post(
            f"{self.base}/initiate-payment", data=self.big_payment(), headers=self.headers, timeout=30
        )
        self.assert_refused_413(response)

    def test_a_chunked_body_over_the_limit_is_refused(self) -> None:
        response = requests.post(
            f"{self.base}/initiate-payment", data=chunks(self.big_payment()), headers=self.headers, timeout=30
        )
        self.assertNotIn("Content-Length", response.request.headers)
        self.assert_refused_413(response)

    def test_a_chunked_body_under_the_limit_is_served(self) -> None:
        body = json.dumps({"user_id": self.user.pk, "amount": "1.00", "metadata": {"order": "42"}}).encode()
        response = requests.post(
            f"{self.base}/initiate-payment", data=chunks(body, 16), headers=self.headers, timeout=30
        )
        self.assertEqual(response.status_code, 202, response.text)
        self.assertEqual(Payment.objects.get().metadata, {"order": "42"})


class RateLimitTests(LiveGunicornTestCase):
    LIMITS = {
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_KEY_READ": "5/60",
        "RATE_LIMIT_KEY_WRITE": "3/60",
        "RATE_LIMIT_ADDRESS_READ": "8/60",
        "RATE_LIMIT_ADDRESS_WRITE": "8/60",
        "RATE_LIMIT_LOGIN": "4/60",
    }
    server_env = LIMITS

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        # A second instance on the same database: one budget, whichever instance a request reaches.
        port = free_port()
        cls.second = f"http://127.0.0.1:{port}"
        server, log = cls.start(
            [cls.server.args[0], "binpay_initiator.wsgi:application", "-b", f"127.0.0.1:{port}"],
            "gunicorn-2.log",
            **cls.LIMITS,
        )
        wait_for_http(f"{cls.second}/healthz", server, log)

    def get_user(self, base: str, key: str, user: User) -> requests.Response:
        return requests.get(f"{base}/users/{user.pk}", headers={"Authorization": f"Bearer {key}"}, timeout=10)

    def assert_limited(self, response: requests.Response) -> None:
        self.assertEqual(response.status_code, 429, response.text)
        self.assertEqual(response.json()["error"]["type"], "rate_limit_error")
        self.assertEqual(response.json()["error"]["code"], "rate_limit")
        self.assertGreaterEqual(int(response.headers["Retry-After"]), 1)

    def test_a_key_over_its_read_budget_gets_429_on_either_instance_and_writes_have_their_own(self) -> None:
        user = make_user()
        _, key = api_key_create(name="reader", user=user)
        answers = [self.get_user(base, key, user).status_code for base in (self.base, self.second) * 2 + (self.base,)]
        self.assertEqual(answers, [200] * 5)
        self.assert_limited(self.get_user(self.second, key, user))

        # The write budget is separate: the key can still pay.
        paid = requests.post(
            f"{self.base}/initiate-payment",
            data={"user_id": user.pk, "amount": "1.00"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        self.assertEqual(paid.status_code, 202, paid.text)

    def test_an_address_is_limited_across_keys_even_unknown_ones(self) -> None:
        statuses = [
            requests.get(f"{self.base}/users", headers={"Authorization": f"Bearer bpk_{uuid.uuid4().hex}"}, timeout=10)
            for _ in range(9)
        ]
        self.assertEqual([r.status_code for r in statuses[:8]], [401] * 8)
        self.assert_limited(statuses[-1])

    def test_login_pages_are_throttled_per_address(self) -> None:
        session = requests.Session()
        statuses = []
        for attempt in range(5):
            page = session.get(f"{self.base}/console/login/", timeout=10)
            token = session.cookies.get("csrftoken")
            response = session.post(
                f"{self.base}/console/login/",
                data={"csrfmiddlewaretoken": token, "username": "operator", "password": f"wrong{attempt}"},
                headers={"Referer": page.url},
                timeout=10,
            )
            statuses.append(response.status_code)
        self.assertEqual(statuses[:4], [200] * 4)
        self.assertEqual(statuses[4], 429)
        admin = requests.post(f"{self.second}/admin/login/", data={"username": "x", "password": "y"}, timeout=10)
        self.assertEqual(admin.status_code, 429)
