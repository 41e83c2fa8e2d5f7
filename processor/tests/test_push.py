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
# Cloud Scheduler's token for the initiator's /internal/reconcile: never a push token (issue 10).
SCHEDULER_ACCOUNT = "binpay-scheduler@binpay-test.iam.gserviceaccount.com"
RECONCILE_AUDIENCE = "https://initiator.binpay.test/internal/reconcile"


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


def stripped_by_cloud_run(token: str) -> str:
    """What a private Cloud Run service receives after its IAM check: the signature replaced."""
    header, payload, _signature = token.split(".")
    return f"{header}.{payload}.SIGNATURE_REMOVED_BY_GOOGLE"


def _verifying_app(config, clients, signing, behind_cloud_run_iam: bool):
    return create_app(
        test_config={
            **config,
            "PUBSUB_PUSH_AUDIENCE": AUDIENCE,
            "PUBSUB_PUSH_SERVICE_ACCOUNT": PUSH_ACCOUNT,
            "PUBSUB_PUSH_CERTS_URL": signing["certs_url"],
            "BEHIND_CLOUD_RUN_IAM": behind_cloud_run_iam,
        },
        clients=clients,
    )


@pytest.fixture
def verifying_client(config, clients, signing):
    return _verifying_app(config, clients, signing, behind_cloud_run_iam=False).test_client()


@pytest.fixture
def cloud_run_client(config, clients, signing):
    """The processor as deployed on Cloud Run: private, BEHIND_CLOUD_RUN_IAM=true."""
    return _verifying_app(config, clients, signing, behind_cloud_run_iam=True).test_client()


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
        ("wrong-issuer", 401),
        ("scheduler-token", 401),
        ("stripped-signature", 401),
        ("other-account", 403),
        ("email-not-verified", 403),
    ],
)
def test_bad_token_is_rejected_with_no_effect(verifying_client, signing, topics, gateway_url, case, status):
    headers = _bad_token_headers(signing, case)
    data, attributes = make_event(10000)

    response = verifying_client.post("/pubsub/push", json=push_envelope(data, attributes), headers=headers)

    assert response.status_code == status
    _assert_refused_with_no_effect(response, verifying_client, topics, gateway_url, attributes)


def _bad_token_headers(signing, case: str) -> dict[str, str]:
    signer = signing["signer"]
    now = int(time.time())
    tokens = {
        "missing": None,
        "not-bearer": "Basic dXNlcjpwYXNz",
        "garbage": "Bearer not.a.jwt",
        "other-key": f"Bearer {_token(signing['rogue'])}",
        "wrong-audience": f"Bearer {_token(signer, aud='https://elsewhere.test')}",
        "expired": f"Bearer {_token(signer, iat=now - 7200, exp=now - 3600)}",
        "not-yet-valid": f"Bearer {_token(signer, iat=now + 3600, exp=now + 7200)}",
        "wrong-issuer": f"Bearer {_token(signer, iss='https://evil.test')}",
        "scheduler-token": f"Bearer {_token(signer, aud=RECONCILE_AUDIENCE, email=SCHEDULER_ACCOUNT)}",
        # Outside Cloud Run nobody checked the signature: a stripped token is no proof.
        "stripped-signature": f"Bearer {stripped_by_cloud_run(_token(signer))}",
        "other-account": f"Bearer {_token(signer, email='intruder@evil.test')}",
        "email-not-verified": f"Bearer {_token(signer, email_verified=False)}",
    }
    return {"Authorization": tokens[case]} if tokens[case] else {}


def _assert_refused_with_no_effect(response, client, topics, gateway_url, attributes) -> None:
    assert "error" in response.get_json()
    assert client.get(f"/transactions/{attributes['payment_id']}").status_code == 404
    assert ledger(gateway_url, attributes["payment_id"])["charges_succeeded"] == 0
    assert topics.pull(topics.completion) == []


def test_token_stripped_by_cloud_run_is_accepted_behind_cloud_run_iam(cloud_run_client, signing, topics, gateway_url):
    data, attributes = make_event(10000)
    headers = {"Authorization": f"Bearer {stripped_by_cloud_run(_token(signing['signer']))}"}

    response = cloud_run_client.post("/pubsub/push", json=push_envelope(data, attributes), headers=headers)

    assert response.status_code == 200, response.get_json()
    assert ledger(gateway_url, attributes["payment_id"])["charges_succeeded"] == 1
    assert len(topics.pull(topics.completion)) == 1


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("wrong-audience", 401),
        ("expired", 401),
        ("not-yet-valid", 401),
        ("wrong-issuer", 401),
        ("scheduler-token", 401),
        ("other-account", 403),
        ("email-not-verified", 403),
    ],
)
def test_stripped_token_with_wrong_claims_is_rejected_behind_cloud_run_iam(
    cloud_run_client, signing, topics, gateway_url, case, status
):
    token = _bad_token_headers(signing, case)["Authorization"].removeprefix("Bearer ")
    data, attributes = make_event(10000)

    response = cloud_run_client.post(
        "/pubsub/push",
        json=push_envelope(data, attributes),
        headers={"Authorization": f"Bearer {stripped_by_cloud_run(token)}"},
    )

    assert response.status_code == status
    _assert_refused_with_no_effect(response, cloud_run_client, topics, gateway_url, attributes)


def test_signed_token_is_still_verified_behind_cloud_run_iam(cloud_run_client, signing, topics, gateway_url):
    data, attributes = make_event(10000)
    headers = {"Authorization": f"Bearer {_token(signing['rogue'])}"}

    response = cloud_run_client.post("/pubsub/push", json=push_envelope(data, attributes), headers=headers)

    assert response.status_code == 401
    _assert_refused_with_no_effect(response, cloud_run_client, topics, gateway_url, attributes)


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
        test_config={
            **config,
            "BINPAY_ENV": "production",
            "FAULT_INJECTION_ENABLED": False,
            "PAYMENT_GATEWAY_ALLOW_SANDBOX": True,
        },
        clients=clients,
    )
    data, attributes = make_event(10000)

    response = app.test_client().post("/pubsub/push", json=push_envelope(data, attributes))

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "push_auth_not_configured"
    assert ledger(gateway_url, attributes["payment_id"])["charges_succeeded"] == 0
    assert topics.pull(topics.completion) == []
