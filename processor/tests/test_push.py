"""POST /pubsub/push: answers per outcome, OIDC verification, and a real push from the emulator."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from binpay_processor import create_app
from conftest import (
    PROCESSOR_DIR,
    devtools_emulators,
    ledger,
    make_event,
    push_envelope,
    saga,
    stop_process_group,
    wait_for_outcome,
    wait_http_ok,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

PUSH_ACCOUNT = "pubsub-push@binpay-test.iam.gserviceaccount.com"
AUDIENCE = "https://processor.binpay.test/pubsub/push"


def test_handled_payment_answers_200(client, topics, gateway_url):
    data, attributes = make_event(10000)

    response = client.post("/pubsub/push", json=push_envelope(data, attributes))

    assert response.status_code == 200 and response.get_json()["status"] == "done"
    assert saga(client, attributes["payment_id"])["state"] == "COMPLETED"
    assert len(topics.pull(topics.completion)) == 1


def test_transient_failure_answers_5xx_so_pubsub_redelivers(client, topics, gateway_url):
    data, attributes = make_event(10056)

    response = client.post("/pubsub/push", json=push_envelope(data, attributes))

    assert response.status_code == 503 and response.get_json()["status"] == "retry"
    assert saga(client, attributes["payment_id"])["state"] == "RECEIVED"
    assert topics.pull(topics.rollback) == []


def test_injected_crash_answers_500(client, topics):
    data, attributes = make_event(10000, metadata={"simulate_failure": "before_publish"})

    assert client.post("/pubsub/push", json=push_envelope(data, attributes)).status_code == 500
    assert client.post("/pubsub/push", json=push_envelope(data, attributes, 2)).status_code == 200
    assert len(topics.pull(topics.completion)) == 1


@pytest.mark.parametrize(
    "message",
    [{"data": "!!! not base64 !!!", "attributes": {}}, {"data": "bm90IGpzb24=", "attributes": {"x": "y"}}],
    ids=["bad-base64", "not-json"],
)
def test_poison_push_answers_200_so_pubsub_stops(client, message, caplog):
    response = client.post("/pubsub/push", json={"message": {**message, "messageId": "1"}, "subscription": "s"})

    assert response.status_code == 200 and response.get_json()["status"] == "poison"
    assert any(record.levelname == "ERROR" for record in caplog.records)


@pytest.mark.parametrize("body", ["not json", json.dumps({"no": "message"}), json.dumps([1])])
def test_not_a_push_envelope_is_400(client, body):
    response = client.post("/pubsub/push", data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_envelope"


# -- OIDC -------------------------------------------------------------------------------------


class _CertsHandler(BaseHTTPRequestHandler):
    certs: dict[str, str] = {}

    def do_GET(self):  # noqa: N802
        body = json.dumps(self.certs).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _key_and_cert(common_name: str):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def signing():
    """A key pair made for this run (never committed) with its certificate served like Google's."""
    key_pem, cert_pem = _key_and_cert("binpay-test-signer")
    rogue_key_pem, _ = _key_and_cert("rogue")
    handler = type("Handler", (_CertsHandler,), {"certs": {"test-kid": cert_pem}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {
        "signer": crypt.RSASigner.from_string(key_pem, key_id="test-kid"),
        "rogue": crypt.RSASigner.from_string(rogue_key_pem, key_id="test-kid"),
        "certs_url": f"http://127.0.0.1:{server.server_address[1]}/certs",
    }
    server.shutdown()
    server.server_close()


def _token(signer, **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "sub": "1234567890",
        "email": PUSH_ACCOUNT,
        "email_verified": True,
        **claims,
    }
    return jwt.encode(signer, payload).decode()


@pytest.fixture
def verifying_client(config, clients, signing):
    app = create_app(
        test_config={
            **config,
            "PUBSUB_PUSH_AUDIENCE": AUDIENCE,
            "PUBSUB_PUSH_SERVICE_ACCOUNT": PUSH_ACCOUNT,
            "PUBSUB_PUSH_CERTS_URL": signing["certs_url"],
        },
        clients=clients,
    )
    return app.test_client()


def test_valid_token_is_accepted(verifying_client, signing, topics, gateway_url):
    data, attributes = make_event(10000)
    headers = {"Authorization": f"Bearer {_token(signing['signer'])}"}

    response = verifying_client.post("/pubsub/push", json=push_envelope(data, attributes), headers=headers)

    assert response.status_code == 200
    assert ledger(gateway_url, attributes["payment_id"])["charges_succeeded"] == 1
    assert len(topics.pull(topics.completion)) == 1


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("missing", 401),
        ("not-bearer", 401),
        ("garbage", 401),
        ("other-key", 401),
        ("wrong-audience", 401),
        ("expired", 401),
        ("other-account", 403),
        ("email-not-verified", 403),
    ],
)
def test_bad_token_is_rejected_with_no_effect(verifying_client, signing, topics, gateway_url, case, status):
    tokens = {
        "missing": None,
        "not-bearer": "Basic dXNlcjpwYXNz",
        "garbage": "Bearer not.a.jwt",
        "other-key": f"Bearer {_token(signing['rogue'])}",
        "wrong-audience": f"Bearer {_token(signing['signer'], aud='https://elsewhere.test')}",
        "expired": f"Bearer {_token(signing['signer'], iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)}",
        "other-account": f"Bearer {_token(signing['signer'], email='intruder@evil.test')}",
        "email-not-verified": f"Bearer {_token(signing['signer'], email_verified=False)}",
    }
    headers = {"Authorization": tokens[case]} if tokens[case] else {}
    data, attributes = make_event(10000)

    response = verifying_client.post("/pubsub/push", json=push_envelope(data, attributes), headers=headers)

    assert response.status_code == status
    assert "error" in response.get_json()
    assert verifying_client.get(f"/transactions/{attributes['payment_id']}").status_code == 404
    assert ledger(gateway_url, attributes["payment_id"])["charges_succeeded"] == 0
    assert topics.pull(topics.completion) == []


# -- a real push subscription on the emulator to `python app.py` -----------------------------


def test_emulator_push_subscription_delivers_to_python_app_py(config, clients, topics, gateway_url, emulator_env):
    port = devtools_emulators.free_port()
    env = {
        **os.environ,
        **{name: "" if value is None else str(value) for name, value in config.items()},
        **emulator_env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    server = subprocess.Popen(
        [sys.executable, "app.py"], cwd=PROCESSOR_DIR, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", server)
        subscriber = clients.subscriber
        push_subscription = subscriber.subscription_path(config["PROJECT_ID"], f"push-{topics.suffix}")
        subscriber.create_subscription(
            request={
                "name": push_subscription,
                "topic": clients.publisher.topic_path(config["PROJECT_ID"], topics.initiation),
                "push_config": {"push_endpoint": f"http://127.0.0.1:{port}/pubsub/push"},
                "ack_deadline_seconds": 10,
            }
        )
        payments = [make_event(10000), make_event(10051)]
        for data, attributes in payments:
            topics.publish_initiated(data, attributes)

        for _, attributes in payments:
            wait_for_outcome(lambda pid: _get_transaction(port, pid), attributes["payment_id"])
        subscriber.delete_subscription(subscription=push_subscription)
    finally:
        stop_process_group(server)
    assert len(topics.pull(topics.completion)) == 1
    assert len(topics.pull(topics.rollback)) == 1


def _get_transaction(port: int, payment_id: str) -> tuple[int, dict]:
    response = requests.get(f"http://127.0.0.1:{port}/transactions/{payment_id}", timeout=5)
    return response.status_code, response.json()


def test_production_without_push_verification_fails_closed(config, clients, topics, gateway_url):
    app = create_app(
        test_config={**config, "BINPAY_ENV": "production", "FAULT_INJECTION_ENABLED": False}, clients=clients
    )
    data, attributes = make_event(10000)

    response = app.test_client().post("/pubsub/push", json=push_envelope(data, attributes))

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "push_auth_not_configured"
    assert ledger(gateway_url, attributes["payment_id"])["charges_succeeded"] == 0
    assert topics.pull(topics.completion) == []
