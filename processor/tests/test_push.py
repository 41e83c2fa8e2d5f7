"""POST /pubsub/push: answers per outcome, OIDC verification, and a real push from the emulator."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests
from binpay_processor import create_app
from conftest import (
    PROCESSOR_DIR,
    devtools_emulators,
    make_event,
    money,
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
# Cloud Scheduler's token for the initiator's /internal/reconcile: the processor's push endpoint refuses it.
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
    assert saga(client, attributes["payment_id"])["state"] == "INTENT_CREATED"
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


class CertsServer:
    """Google's certificate endpoint as the tests serve it: one endpoint per call of `endpoint`, each
    with its own certificates and Cache-Control, and a count of the GETs each answered."""

    def __init__(self) -> None:
        self.endpoints: dict[str, dict] = {}
        self.fetches: Counter[str] = Counter()
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                endpoint = served.endpoints.get(self.path)
                if endpoint is None:
                    self.send_error(404)
                    return
                served.fetches[self.path] += 1
                body = json.dumps(endpoint["certs"]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if endpoint["cache_control"]:
                    self.send_header("Cache-Control", endpoint["cache_control"])
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def endpoint(self, certs: dict[str, str], cache_control: str | None = None) -> str:
        path = f"/certs/{uuid.uuid4().hex}"
        self.endpoints[path] = {"certs": dict(certs), "cache_control": cache_control}
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def fetch_count(self, url: str) -> int:
        return self.fetches[urlsplit(url).path]

    def add_certificate(self, url: str, key_id: str, certificate: str) -> None:
        """Google's key rotation: a new key appears beside the old one."""
        self.endpoints[urlsplit(url).path]["certs"][key_id] = certificate

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def signing():
    """Key pairs made for this run (never committed) with their certificates served like Google's."""
    key_pem, cert_pem = _key_and_cert("binpay-test-signer")
    rogue_key_pem, _ = _key_and_cert("rogue")
    rotated_key_pem, rotated_cert_pem = _key_and_cert("binpay-test-signer-rotated")
    server = CertsServer()
    yield {
        "signer": crypt.RSASigner.from_string(key_pem, key_id="test-kid"),
        "rogue": crypt.RSASigner.from_string(rogue_key_pem, key_id="test-kid"),
        "rotated": crypt.RSASigner.from_string(rotated_key_pem, key_id="test-kid-2"),
        "rotated_cert": rotated_cert_pem,
        "certs": {"test-kid": cert_pem},
        "certs_url": server.endpoint({"test-kid": cert_pem}),
        "server": server,
    }
    server.close()


def _claims(**claims) -> dict:
    """Pub/Sub's push token claims for AUDIENCE, with `claims` on top."""
    now = int(time.time())
    return {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "sub": "1234567890",
        "email": PUSH_ACCOUNT,
        "email_verified": True,
        **claims,
    }


def _token(signer, **claims) -> str:
    return jwt.encode(signer, _claims(**claims)).decode()


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
    assert money(gateway_url, attributes["payment_id"]).succeeded == 1
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
    assert money(gateway_url, attributes["payment_id"]).succeeded == 0
    assert topics.pull(topics.completion) == []


def test_token_stripped_by_cloud_run_is_accepted_behind_cloud_run_iam(cloud_run_client, signing, topics, gateway_url):
    data, attributes = make_event(10000)
    headers = {"Authorization": f"Bearer {stripped_by_cloud_run(_token(signing['signer']))}"}

    response = cloud_run_client.post("/pubsub/push", json=push_envelope(data, attributes), headers=headers)

    assert response.status_code == 200, response.get_json()
    assert money(gateway_url, attributes["payment_id"]).succeeded == 1
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


# -- the live process: which header counts, and how often the certificates are fetched -------


@contextmanager
def live_processor(config, emulator_env, **env: str) -> Iterator[str]:
    """`python app.py` with the test's settings plus `env`; yields its base URL."""
    port = devtools_emulators.free_port()
    environment = {
        **os.environ,
        **{name: "" if value is None else str(value) for name, value in config.items()},
        **emulator_env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PUBSUB_PUSH_AUDIENCE": AUDIENCE,
        "PUBSUB_PUSH_SERVICE_ACCOUNT": PUSH_ACCOUNT,
        **env,
    }
    server = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=PROCESSOR_DIR,
        env=environment,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(server)


def _push(base: str, headers: dict[str, str]) -> tuple[requests.Response, dict[str, str]]:
    data, attributes = make_event(10000)
    response = requests.post(f"{base}/pubsub/push", json=push_envelope(data, attributes), headers=headers, timeout=30)
    return response, attributes


def _unsigned_push_token(**claims) -> str:
    """A push-account token anyone can write: the claims Pub/Sub's would have, no key, no signature."""

    def segment(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{segment({'alg': 'RS256', 'typ': 'JWT'})}.{segment(_claims(**claims))}.SIGNATURE_REMOVED_BY_GOOGLE"


def test_behind_cloud_run_iam_only_the_header_cloud_run_verified_counts(
    config, emulator_env, signing, topics, gateway_url
):
    """Cloud Run authenticates the caller with X-Serverless-Authorization when a request carries it and
    passes Authorization on untouched (https://cloud.google.com/run/docs/authenticating/service-to-service#acquire-token).
    An invoker other than the push account must not get a charge made by adding a hand-written
    push-account token in Authorization beside its own, Cloud Run-verified, token."""
    invoker = stripped_by_cloud_run(_token(signing["signer"], email="deployer@binpay-test.iam.gserviceaccount.com"))
    with live_processor(
        config, emulator_env, PUBSUB_PUSH_CERTS_URL=signing["certs_url"], BEHIND_CLOUD_RUN_IAM="true"
    ) as base:
        forged, forged_attributes = _push(
            base,
            {"X-Serverless-Authorization": f"Bearer {invoker}", "Authorization": f"Bearer {_unsigned_push_token()}"},
        )
        pushed = {
            header: _push(base, {header: f"Bearer {stripped_by_cloud_run(_token(signing['signer']))}"})
            for header in ("Authorization", "X-Serverless-Authorization")
        }

    assert forged.status_code == 403, forged.text
    assert forged.json()["error"]["code"] == "forbidden"
    assert money(gateway_url, forged_attributes["payment_id"]).succeeded == 0
    # The push account's own token passes from whichever header Cloud Run checked.
    for header, (response, attributes) in pushed.items():
        assert response.status_code == 200, (header, response.text)
        assert money(gateway_url, attributes["payment_id"]).succeeded == 1
    assert len(topics.pull(topics.completion)) == 2


def test_certificates_are_fetched_once_per_max_age_and_never_for_a_token_refused_on_sight(
    config, emulator_env, signing, gateway_url
):
    certs_url = signing["server"].endpoint(signing["certs"], cache_control="public, max-age=3600, must-revalidate")
    now = int(time.time())
    refused_on_sight = {
        "not a JWT": "a.b.c",
        "two segments": "eyJhbGciOiJSUzI1NiJ9.e30",
        "wrong audience": _token(signing["signer"], aud="https://elsewhere.test"),
        "expired": _token(signing["signer"], iat=now - 7200, exp=now - 3600),
        "wrong issuer": _token(signing["signer"], iss="https://evil.test"),
    }
    with live_processor(config, emulator_env, PUBSUB_PUSH_CERTS_URL=certs_url) as base:
        refused = {
            name: _push(base, {"Authorization": f"Bearer {token}"})[0] for name, token in refused_on_sight.items()
        }
        fetched_for_refused = signing["server"].fetch_count(certs_url)
        accepted = [_push(base, {"Authorization": f"Bearer {_token(signing['signer'])}"})[0] for _ in range(3)]

    assert {name: response.status_code for name, response in refused.items()} == dict.fromkeys(refused_on_sight, 401)
    assert fetched_for_refused == 0
    assert [response.status_code for response in accepted] == [200, 200, 200]
    assert signing["server"].fetch_count(certs_url) == 1


def test_certificates_the_endpoint_forbids_caching_are_fetched_per_check(config, emulator_env, signing, gateway_url):
    certs_url = signing["server"].endpoint(signing["certs"], cache_control="no-cache, no-store, max-age=0")
    with live_processor(config, emulator_env, PUBSUB_PUSH_CERTS_URL=certs_url) as base:
        accepted = [_push(base, {"Authorization": f"Bearer {_token(signing['signer'])}"})[0] for _ in range(3)]

    assert [response.status_code for response in accepted] == [200, 200, 200]
    assert signing["server"].fetch_count(certs_url) == 3


def test_a_key_google_added_after_the_certificates_were_cached_is_fetched_once(
    config, emulator_env, signing, gateway_url
):
    """Google rotates its signing keys: a token with a key id the cached certificates lack refreshes
    them (at most once a minute, so made-up key ids cannot make the service fetch on every push)."""
    certs_url = signing["server"].endpoint(signing["certs"], cache_control="public, max-age=3600")
    made_up_key, _ = _key_and_cert("made-up")
    with live_processor(config, emulator_env, PUBSUB_PUSH_CERTS_URL=certs_url) as base:
        before = _push(base, {"Authorization": f"Bearer {_token(signing['signer'])}"})[0]
        signing["server"].add_certificate(certs_url, "test-kid-2", signing["rotated_cert"])
        rotated = _push(base, {"Authorization": f"Bearer {_token(signing['rotated'])}"})[0]
        fetched_after_rotation = signing["server"].fetch_count(certs_url)
        unknown_keys = [
            _push(base, {"Authorization": f"Bearer {_token(signer)}"})[0]
            for signer in (crypt.RSASigner.from_string(made_up_key, key_id=f"made-up-{n}") for n in range(5))
        ]

    assert (before.status_code, rotated.status_code) == (200, 200), rotated.text
    assert fetched_after_rotation == 2
    assert [response.status_code for response in unknown_keys] == [401] * 5
    assert signing["server"].fetch_count(certs_url) <= fetched_after_rotation + 1


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
    assert money(gateway_url, attributes["payment_id"]).succeeded == 0
    assert topics.pull(topics.completion) == []
