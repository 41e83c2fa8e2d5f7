"""OIDC verification of push and scheduler requests, with tokens signed by a key made for this test run.

The emulator sends no Authorization header, so the tests sign their own RS256 tokens and serve
the matching certificate from a local HTTP server (PUBSUB_PUSH_CERTS_URL). Cloud Run's IAM front
end is modelled by what it forwards to a private service: the same token with its signature
replaced by SIGNATURE_REMOVED_BY_GOOGLE.
"""

import base64
import datetime
import json
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.test import Client, TestCase, override_settings
from google.auth import crypt, jwt

from payments import clients
from payments.models import PaymentStatus
from payments.tests.test_processes import ProcessTestCase, wait_for_http
from testing.fixtures import (
    api_client,
    completion_event,
    free_port,
    make_user,
    pending_payment,
    push_envelope,
    unique_name,
)

AUDIENCE = "https://initiator.binpay.test/pubsub/push"
SERVICE_ACCOUNT = "pubsub-push@binpay-local.iam.gserviceaccount.com"
RECONCILE_AUDIENCE = "https://initiator.binpay.test/internal/reconcile"
SCHEDULER_ACCOUNT = "binpay-scheduler@binpay-local.iam.gserviceaccount.com"
KEY_ID = "test-key-1"


def _key_and_certificate() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "binpay test signer")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private_pem, certificate.public_bytes(serialization.Encoding.PEM)


class CountingCertsServer:
    """Google's certificate endpoint as a test serves it: one path per `endpoint` call, each with its own
    certificates and Cache-Control, counting the GETs it answers."""

    def __init__(self) -> None:
        self.endpoints: dict[str, tuple[bytes, str | None]] = {}
        self.fetches: Counter[str] = Counter()
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path not in served.endpoints:
                    self.send_error(404)
                    return
                served.fetches[self.path] += 1
                body, cache_control = served.endpoints[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if cache_control:
                    self.send_header("Cache-Control", cache_control)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def endpoint(self, certs: dict[str, str], cache_control: str | None) -> str:
        path = f"/certs/{uuid.uuid4().hex}"
        self.endpoints[path] = (json.dumps(certs).encode(), cache_control)
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def fetch_count(self, url: str) -> int:
        return self.fetches[urlsplit(url).path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def push_claims(**claims) -> dict:
    """Pub/Sub's push token claims for AUDIENCE, with `claims` on top."""
    now = int(time.time())
    return {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "sub": "1234567890",
        "email": SERVICE_ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 600,
        **claims,
    }


def unsigned_push_token(**claims) -> str:
    """A push-account token anyone can write: Pub/Sub's claims, no key, no signature."""

    def segment(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{segment({'alg': 'RS256', 'typ': 'JWT'})}.{segment(push_claims(**claims))}.SIGNATURE_REMOVED_BY_GOOGLE"


class PushTokenTests(TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        private_pem, certificate_pem = _key_and_certificate()
        cls.signer = crypt.RSASigner.from_string(private_pem, key_id=KEY_ID)
        other_private_pem, _ = _key_and_certificate()
        cls.stranger = crypt.RSASigner.from_string(other_private_pem, key_id=KEY_ID)
        cls.certs_server = CountingCertsServer()
        cls.certs_url = cls.certs_server.endpoint({KEY_ID: certificate_pem.decode()}, cache_control=None)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.certs_server.close()
        super().tearDownClass()

    def setUp(self) -> None:
        self.override = override_settings(
            PUBSUB_PUSH_AUDIENCE=AUDIENCE,
            PUBSUB_PUSH_SERVICE_ACCOUNT=SERVICE_ACCOUNT,
            RECONCILE_AUDIENCE=RECONCILE_AUDIENCE,
            RECONCILE_SERVICE_ACCOUNT=SCHEDULER_ACCOUNT,
            PUBSUB_PUSH_CERTS_URL=self.certs_url,
            BEHIND_CLOUD_RUN_IAM=False,
            FIRESTORE_COLLECTION=unique_name("transactions"),
        )
        self.override.enable()
        self.push = Client(HTTP_HOST="localhost")
        self.payment = pending_payment(make_user(balance=100_000))
        self.envelope = push_envelope(*completion_event(self.payment))

    def tearDown(self) -> None:
        self.override.disable()
        clients.reset_clients()

    def token(self, signer=None, **claims) -> str:
        return jwt.encode(signer or self.signer, push_claims(**claims)).decode()

    def scheduler_token(self, **claims) -> str:
        return self.token(**{"aud": RECONCILE_AUDIENCE, "email": SCHEDULER_ACCOUNT, **claims})

    @staticmethod
    def stripped(token: str) -> str:
        """What a private Cloud Run service receives after its IAM check: the signature replaced."""
        header, payload, _signature = token.split(".")
        return f"{header}.{payload}.SIGNATURE_REMOVED_BY_GOOGLE"

    def deliver(self, authorization: str | None):
        headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
        return self.push.post("/pubsub/push", self.envelope, content_type="application/json", **headers)

    def assert_not_processed(self) -> None:
        self.payment.refresh_from_db()
        self.assertEqual(self.payment.status, PaymentStatus.PENDING)

    def test_rejected_tokens(self) -> None:
        cases = {
            "no token": (None, 401),
            "not a bearer token": ("Basic abc", 401),
            "garbage": ("Bearer not.a.jwt", 401),
            "signed by another key": (f"Bearer {self.token(signer=self.stranger)}", 401),
            "wrong audience": (f"Bearer {self.token(aud='https://elsewhere.test')}", 401),
            "expired": (f"Bearer {self.token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)}", 401),
            "wrong issuer": (f"Bearer {self.token(iss='https://evil.test')}", 401),
            "the scheduler's token": (f"Bearer {self.scheduler_token()}", 401),
            "stripped, not behind Cloud Run IAM": (f"Bearer {self.stripped(self.token())}", 401),
            "other service account": (f"Bearer {self.token(email='intruder@evil.test')}", 403),
            "email not verified": (f"Bearer {self.token(email_verified=False)}", 403),
        }
        for name, (authorization, status) in cases.items():
            with self.subTest(name):
                response = self.deliver(authorization)
                self.assertEqual(response.status_code, status, response.content)
                self.assertEqual(response.json()["error"]["type"], "authentication_error")
                self.assert_not_processed()

    def test_accepted_signed_token(self) -> None:
        response = self.deliver(f"Bearer {self.token()}")

        self.assertEqual((response.status_code, response.json()), (200, {"status": "applied"}))
        self.payment.refresh_from_db()
        self.assertEqual(self.payment.status, PaymentStatus.COMPLETED)

    def test_unreachable_certificates_are_transient(self) -> None:
        with override_settings(PUBSUB_PUSH_CERTS_URL="http://127.0.0.1:9/certs"):
            response = self.deliver(f"Bearer {self.token()}")
        self.assertEqual(response.status_code, 503)
        self.assert_not_processed()

    def test_reconcile_endpoint_takes_the_schedulers_token_only(self) -> None:
        _, raw_key = api_client()
        refused = {
            "no token": (None, 401),
            "an API key": (f"Bearer {raw_key}", 401),
            "the push token": (f"Bearer {self.token()}", 401),
            "wrong issuer": (f"Bearer {self.scheduler_token(iss='https://evil.test')}", 401),
            "other service account": (f"Bearer {self.scheduler_token(email='intruder@evil.test')}", 403),
        }
        for name, (authorization, status) in refused.items():
            with self.subTest(name):
                headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
                response = self.push.post("/internal/reconcile", **headers)
                self.assertEqual(response.status_code, status, response.content)
                self.assertEqual(response.json()["error"]["type"], "authentication_error")

        response = self.push.post("/internal/reconcile", HTTP_AUTHORIZATION=f"Bearer {self.scheduler_token()}")

        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["examined"], 0)

    def test_reconcile_endpoint_takes_an_api_key_without_a_scheduler_audience(self) -> None:
        _, raw_key = api_client()
        with override_settings(RECONCILE_AUDIENCE=""):
            refused = self.push.post("/internal/reconcile", HTTP_AUTHORIZATION=f"Bearer {self.scheduler_token()}")
            response = self.push.post("/internal/reconcile", HTTP_AUTHORIZATION=f"Bearer {raw_key}")

        self.assertEqual(refused.status_code, 401)
        self.assertEqual(response.status_code, 200, response.content)


class BehindCloudRunIamTests(PushTokenTests):
    """BEHIND_CLOUD_RUN_IAM=true: Cloud Run checked the signature; the claims are still checked here."""

    def setUp(self) -> None:
        super().setUp()
        self.behind = override_settings(BEHIND_CLOUD_RUN_IAM=True)
        self.behind.enable()

    def tearDown(self) -> None:
        self.behind.disable()
        super().tearDown()

    def test_rejected_tokens(self) -> None:
        now = int(time.time())
        cases = {
            "wrong audience": (self.token(aud="https://elsewhere.test"), 401),
            "expired": (self.token(iat=now - 7200, exp=now - 3600), 401),
            "not yet valid": (self.token(iat=now + 3600, exp=now + 7200), 401),
            "wrong issuer": (self.token(iss="https://evil.test"), 401),
            "the scheduler's token": (self.scheduler_token(), 401),
            "other service account": (self.token(email="intruder@evil.test"), 403),
            "email not verified": (self.token(email_verified=False), 403),
        }
        for name, (token, status) in cases.items():
            with self.subTest(name):
                response = self.deliver(f"Bearer {self.stripped(token)}")
                self.assertEqual(response.status_code, status, response.content)
                self.assertEqual(response.json()["error"]["type"], "authentication_error")
                self.assert_not_processed()

    def test_accepted_stripped_token(self) -> None:
        response = self.deliver(f"Bearer {self.stripped(self.token())}")

        self.assertEqual((response.status_code, response.json()), (200, {"status": "applied"}))
        self.payment.refresh_from_db()
        self.assertEqual(self.payment.status, PaymentStatus.COMPLETED)

    def test_signed_token_is_still_verified(self) -> None:
        response = self.deliver(f"Bearer {self.token(signer=self.stranger)}")

        self.assertEqual(response.status_code, 401)
        self.assert_not_processed()

    def test_reconcile_takes_the_schedulers_stripped_token(self) -> None:
        refused = self.push.post("/internal/reconcile", HTTP_AUTHORIZATION=f"Bearer {self.stripped(self.token())}")
        response = self.push.post(
            "/internal/reconcile", HTTP_AUTHORIZATION=f"Bearer {self.stripped(self.scheduler_token())}"
        )

        self.assertEqual(refused.status_code, 401)
        self.assertEqual(response.status_code, 200, response.content)

    def test_production_without_push_verification_fails_closed(self) -> None:
        with override_settings(PUBSUB_PUSH_AUDIENCE=None, IS_PRODUCTION=True):
            response = self.deliver(None)

        self.assertEqual(response.status_code, 403)
        self.assertEqual(response.json()["error"]["code"], "push_auth_not_configured")
        self.assert_not_processed()


class LivePushTokenTests(ProcessTestCase):
    """gunicorn (one worker, so one certificate cache) behind Cloud Run IAM, its certificates served
    with Google's kind of Cache-Control."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        private_pem, certificate_pem = _key_and_certificate()
        cls.signer = crypt.RSASigner.from_string(private_pem, key_id=KEY_ID)
        cls.certs = CountingCertsServer()
        cls.certs_url = cls.certs.endpoint(
            {KEY_ID: certificate_pem.decode()}, "public, max-age=20000, must-revalidate, no-transform"
        )
        port = free_port()
        cls.base = f"http://127.0.0.1:{port}"
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        cls.server, cls.server_log = cls.start(
            [gunicorn, "binpay_initiator.wsgi:application", "-b", f"127.0.0.1:{port}"],
            "gunicorn.log",
            WEB_CONCURRENCY="1",
            PUBSUB_PUSH_AUDIENCE=AUDIENCE,
            PUBSUB_PUSH_SERVICE_ACCOUNT=SERVICE_ACCOUNT,
            PUBSUB_PUSH_CERTS_URL=cls.certs_url,
            BEHIND_CLOUD_RUN_IAM="true",
        )
        try:
            wait_for_http(f"{cls.base}/healthz", cls.server, cls.server_log)
        except AssertionError:
            cls.certs.close()
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls.certs.close()

    def token(self, **claims) -> str:
        return jwt.encode(self.signer, push_claims(**claims)).decode()

    def deliver(self, payment, headers: dict[str, str]) -> requests.Response:
        envelope = push_envelope(*completion_event(payment))
        return requests.post(f"{self.base}/pubsub/push", json=envelope, headers=headers, timeout=30)

    def test_a_stripped_token_counts_only_from_the_header_cloud_run_verified(self) -> None:
        """Cloud Run authenticates with X-Serverless-Authorization when a request carries it and passes
        Authorization on untouched (https://cloud.google.com/run/docs/authenticating/service-to-service#acquire-token):
        an invoker's own token there cannot carry a hand-written push-account token in Authorization."""
        user = make_user(balance=100_000)
        forged, pushed = pending_payment(user), pending_payment(user)
        invoker = PushTokenTests.stripped(self.token(email="deployer@binpay-local.iam.gserviceaccount.com"))

        refused = self.deliver(
            forged,
            {"X-Serverless-Authorization": f"Bearer {invoker}", "Authorization": f"Bearer {unsigned_push_token()}"},
        )
        accepted = self.deliver(
            pushed, {"X-Serverless-Authorization": f"Bearer {PushTokenTests.stripped(self.token())}"}
        )

        self.assertEqual(refused.status_code, 403, refused.text)
        self.assertEqual(refused.json()["error"]["code"], "push_token_wrong_account")
        self.assertEqual(accepted.status_code, 200, accepted.text)
        forged.refresh_from_db()
        pushed.refresh_from_db()
        self.assertEqual((forged.status, pushed.status), (PaymentStatus.PENDING, PaymentStatus.COMPLETED))

    def test_certificates_are_fetched_once_per_max_age_and_never_for_a_token_refused_on_sight(self) -> None:
        now = int(time.time())
        refused_on_sight = {
            "not a JWT": "a.b.c",
            "wrong audience": self.token(aud="https://elsewhere.test"),
            "expired": self.token(iat=now - 7200, exp=now - 3600),
            "wrong issuer": self.token(iss="https://evil.test"),
        }
        user = make_user(balance=100_000)
        fetched_before = self.certs.fetch_count(self.certs_url)

        refused = {
            name: self.deliver(pending_payment(user), {"Authorization": f"Bearer {token}"}).status_code
            for name, token in refused_on_sight.items()
        }
        fetched_for_refused = self.certs.fetch_count(self.certs_url) - fetched_before
        accepted = [
            self.deliver(pending_payment(user), {"Authorization": f"Bearer {self.token()}"}).status_code
            for _ in range(3)
        ]

        self.assertEqual(refused, dict.fromkeys(refused_on_sight, 401))
        self.assertEqual(fetched_for_refused, 0)
        self.assertEqual(accepted, [200, 200, 200])
        self.assertEqual(self.certs.fetch_count(self.certs_url), 1)
