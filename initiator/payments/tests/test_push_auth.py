"""OIDC verification of push requests, with tokens signed by a key made for this test run.

The emulator sends no Authorization header, so the tests sign their own RS256 tokens and serve
the matching certificate from a local HTTP server (PUBSUB_PUSH_CERTS_URL).
"""

import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.test import Client, TestCase, override_settings
from google.auth import crypt, jwt

from core import clients
from core.fixtures import api_client, completion_event, make_user, pending_payment, push_envelope, unique_name
from payments.models import PaymentStatus

AUDIENCE = "https://initiator.binpay.test/pubsub/push"
SERVICE_ACCOUNT = "pubsub-push@binpay-local.iam.gserviceaccount.com"
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


class PushTokenTests(TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        private_pem, certificate_pem = _key_and_certificate()
        cls.signer = crypt.RSASigner.from_string(private_pem, key_id=KEY_ID)
        other_private_pem, _ = _key_and_certificate()
        cls.stranger = crypt.RSASigner.from_string(other_private_pem, key_id=KEY_ID)
        certs = json.dumps({KEY_ID: certificate_pem.decode()}).encode()

        class CertsHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(certs)

            def log_message(self, *args) -> None:
                pass

        cls.certs_server = ThreadingHTTPServer(("127.0.0.1", 0), CertsHandler)
        threading.Thread(target=cls.certs_server.serve_forever, daemon=True).start()
        cls.certs_url = f"http://127.0.0.1:{cls.certs_server.server_port}/certs"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.certs_server.shutdown()
        cls.certs_server.server_close()
        super().tearDownClass()

    def setUp(self) -> None:
        self.override = override_settings(
            PUBSUB_PUSH_AUDIENCE=AUDIENCE,
            PUBSUB_PUSH_SERVICE_ACCOUNT=SERVICE_ACCOUNT,
            PUBSUB_PUSH_CERTS_URL=self.certs_url,
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
        now = int(time.time())
        payload = {
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "sub": "1234567890",
            "email": SERVICE_ACCOUNT,
            "email_verified": True,
            "iat": now,
            "exp": now + 600,
            **claims,
        }
        return jwt.encode(signer or self.signer, payload).decode()

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

    def test_reconcile_endpoint_takes_the_same_token_and_not_an_api_key(self) -> None:
        _, raw_key = api_client()
        refused = {
            "no token": (None, 401),
            "an API key": (f"Bearer {raw_key}", 401),
            "other service account": (f"Bearer {self.token(email='intruder@evil.test')}", 403),
        }
        for name, (authorization, status) in refused.items():
            with self.subTest(name):
                headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
                self.assertEqual(self.push.post("/internal/reconcile", **headers).status_code, status)

        response = self.push.post("/internal/reconcile", HTTP_AUTHORIZATION=f"Bearer {self.token()}")

        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["examined"], 0)

    def test_production_without_push_verification_fails_closed(self) -> None:
        with override_settings(PUBSUB_PUSH_AUDIENCE=None, IS_PRODUCTION=True):
            response = self.deliver(None)

        self.assertEqual(response.status_code, 403)
        self.assertEqual(response.json()["error"]["code"], "push_auth_not_configured")
        self.assert_not_processed()
