"""Helpers for the test suites: API clients, emulator topics, database URLs for child processes."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from google.api_core import exceptions as google_exceptions

from accounts.services import deposit_create, user_create
from binpay_common import steps
from binpay_common.gateway import Intent, PaymentRef
from binpay_common.gateway.stripe_api import StripeGateway
from binpay_common.saga_log import PROCESSOR, SagaLog, Step
from core.models import SCOPES
from core.services import api_key_create
from payments import clients
from payments.services import payment_initiate

INITIATOR_DIR = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = INITIATOR_DIR.parent / "contracts" / "events"


def contract_schema(event_type: str) -> dict:
    return json.loads((CONTRACTS_DIR / f"{event_type}.schema.json").read_text())


def api_client(*, scopes=SCOPES, user=None) -> tuple[Client, str]:
    """A test client with a fresh API key: by default a secret key with every scope."""
    _, raw_key = api_key_create(name=f"test-{uuid.uuid4().hex[:8]}", scopes=scopes, user=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}", HTTP_HOST="localhost"), raw_key


def make_user(
    *,
    balance: int = 1_000_000,
    currency: str = "USD",
    email: str = "payer@example.com",
    payment_method: str | None = "pm_card_visa",
):
    user = user_create(email=email, name="Test Payer", currency=currency, default_payment_method=payment_method)
    if balance:
        deposit_create(user_id=user.pk, amount=balance, currency=currency)
    return user


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_topic(name: str | None = None) -> str:
    name = name or unique_name("topic")
    try:
        clients.publisher().create_topic(name=clients.topic_path(name))
    except google_exceptions.AlreadyExists:
        pass
    return name


def create_subscription(topic: str, name: str | None = None, push_endpoint: str | None = None) -> str:
    name = name or unique_name("sub")
    request = {"name": clients.subscription_path(name), "topic": clients.topic_path(topic), "ack_deadline_seconds": 10}
    if push_endpoint:
        request["push_config"] = {"push_endpoint": push_endpoint}
    clients.subscriber().create_subscription(request=request)
    return name


def pull_messages(subscription: str, *, expected: int, deadline_seconds: float = 20) -> list:
    """Pull (and ack) until `expected` messages arrived or the deadline passed; returns what arrived."""
    subscriber = clients.subscriber()
    path = clients.subscription_path(subscription)
    received = []
    deadline = time.monotonic() + deadline_seconds
    while len(received) < expected and time.monotonic() < deadline:
        wait = max(0.5, min(5.0, deadline - time.monotonic()))
        try:
            response = subscriber.pull(request={"subscription": path, "max_messages": 100}, timeout=wait)
        except google_exceptions.DeadlineExceeded:
            continue
        if response.received_messages:
            subscriber.acknowledge(
                request={"subscription": path, "ack_ids": [m.ack_id for m in response.received_messages]}
            )
            received.extend(m.message for m in response.received_messages)
    return received


def publish(topic: str, body: dict, attributes: dict) -> str:
    data = json.dumps(body).encode()
    return clients.publisher().publish(clients.topic_path(topic), data, **attributes).result(timeout=10)


def wait_until(condition: Callable[[], bool], *, deadline_seconds: float = 30, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_children() -> str:
    """A DATABASE_URL for child processes that points at the test database."""
    database = connection.settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    user = database.get("USER") or ""
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    credentials = f"{user}{password}@" if user else ""
    return f"postgres://{credentials}{database.get('HOST') or '127.0.0.1'}:{database.get('PORT') or 5432}/{database['NAME']}"


def child_env(**overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_children(),
        "PROJECT_ID": settings.PROJECT_ID,
        "PYTHONUNBUFFERED": "1",
        # No metrics server unless a test asks for one on a free port (the default 9090 may be taken).
        "METRICS_PORT": "0",
        # Suites send bursts from one address; the limits have their own tests (core/tests/test_request_limits.py).
        "RATE_LIMIT_ENABLED": "false",
        **overrides,
    }
    return env


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def completion_event(
    payment, *, charge_id: str = "ch_test_1", intent_id: str = "pi_test_1", event_id: str | None = None
) -> tuple[dict, dict]:
    """A payment.completed body and attributes as the processor publishes them."""
    event_id = event_id or str(uuid.uuid5(payment.pk, "payment.completed"))
    body = {
        "event_id": event_id,
        "event_type": "payment.completed",
        "schema_version": 1,
        "payment_id": str(payment.pk),
        "intent_id": intent_id,
        "charge_id": charge_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "completed_at": "2026-01-01T00:00:00Z",
    }
    return body, _attributes(body, payment)


def rollback_event(
    payment, *, reason_code: str = "card_declined", refunded: bool = False, event_id: str | None = None
) -> tuple[dict, dict]:
    event_id = event_id or str(uuid.uuid5(payment.pk, "payment.rollback"))
    body = {
        "event_id": event_id,
        "event_type": "payment.rollback",
        "schema_version": 1,
        "payment_id": str(payment.pk),
        "reason_code": reason_code,
        "failed_step": "post_charge" if refunded else "charge",
        "refunded": refunded,
        "intent_id": "pi_test_1",
        "charge_id": "ch_refunded_1" if refunded else None,
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    return body, _attributes(body, payment)


def _attributes(body: dict, payment) -> dict:
    return {
        "event_type": body["event_type"],
        "event_id": body["event_id"],
        "payment_id": body["payment_id"],
        "schema_version": "1",
        "correlation_id": payment.correlation_id,
    }


def push_envelope(body: dict | bytes, attributes: dict, *, subscription: str = "completion-sub") -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": str(uuid.uuid4().int)[:16],
            "publishTime": "2026-01-01T00:00:00Z",
        },
        "subscription": f"projects/{settings.PROJECT_ID}/subscriptions/{subscription}",
        "deliveryAttempt": 1,
    }


def saga_steps(payment_id) -> list[dict]:
    """The steps in the Firestore log, in order."""
    document = clients.firestore_client().collection(settings.FIRESTORE_COLLECTION).document(str(payment_id))
    return [step.to_dict() for step in document.collection("steps").order_by("seq").stream()]


def pending_payment(user, *, amount: int = 10_000, payment_method: str | None = None):
    """A PENDING payment with its hold, made through the service like a real request."""
    return payment_initiate(
        user_id=user.pk,
        amount_minor=amount,
        currency="USD",
        metadata={},
        correlation_id=str(uuid.uuid4()),
        payment_method=payment_method,
    )


GATEWAY_DIR = INITIATOR_DIR.parent / "gateway"
GATEWAY_API_KEY = "sk_test_initiator_suite"


class SandboxGateway:
    """The real sandbox gateway (gateway/app.py, a model of Stripe's API) on a free port with its own state."""

    def __init__(self, **knobs: str) -> None:
        """`knobs`: SANDBOX_* settings, e.g. SANDBOX_LATENCY_MS="3000" for slow magic-57 confirms."""
        self.directory = tempfile.TemporaryDirectory(prefix="binpay-initiator-gateway-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(self.directory.name) / "gateway.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "app.py"],
                cwd=GATEWAY_DIR,
                env={
                    **os.environ,
                    "HOST": "127.0.0.1",
                    "PORT": str(self.port),
                    "SANDBOX_DB_PATH": str(Path(self.directory.name) / "sandbox.sqlite3"),
                    "PAYMENT_GATEWAY_API_KEY": GATEWAY_API_KEY,
                    "SANDBOX_ALLOW_CONFIG": "true",
                    "SANDBOX_SEARCH_LAG_SECONDS": "0",
                    "PYTHONUNBUFFERED": "1",
                    **knobs,
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if not wait_until(self._ready, deadline_seconds=30):
            self.stop()
            raise AssertionError(f"the sandbox gateway did not start: {self.log_path.read_text()[-2000:]}")
        self.port_client = gateway_client(self.url)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the sandbox gateway exited: {self.log_path.read_text()[-2000:]}")
        try:
            return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def intent(
        self, payment, *, amount: int | None = None, confirm: bool = True, payment_id: str | None = None
    ) -> Intent:
        """An intent for the payment as the processor makes it (create key `create-<payment_id>`, confirmed),
        or another one: another amount, or one outside the saga (`payment_id` for its metadata, a key of its own)."""
        ref = PaymentRef(payment_id or str(payment.pk), amount or payment.amount, payment.currency, "pm_card_visa")
        attempt = 1 if payment_id is None and amount is None else 7
        intent = self.port_client.create_intent(ref, attempt=attempt)
        return self.port_client.confirm_intent(intent.id, ref, attempt=attempt) if confirm else intent

    def knobs(self, **values) -> None:
        """Set sandbox knobs (lower-case names, e.g. sandbox_fail_rate=1) at run time."""
        requests.post(f"{self.url}/_sandbox/config", json=values, headers=self._auth(), timeout=10).raise_for_status()

    def advance(self, seconds: float) -> None:
        """Move the sandbox's clock (refunds settle, keys are pruned, ...)."""
        requests.post(
            f"{self.url}/_sandbox/clock", json={"advance_seconds": seconds}, headers=self._auth(), timeout=30
        ).raise_for_status()

    def access_log(self) -> list[dict]:
        lines = [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("logger") == "sandbox_gateway.access"]

    @staticmethod
    def _auth() -> dict:
        return {"Authorization": f"Bearer {GATEWAY_API_KEY}"}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.port_client.close()
        self.directory.cleanup()


def processor_logged(payment, *, intent: Intent | None, extra: tuple[Step, ...] = ()) -> dict:
    """The saga-log document as a processor delivery leaves it when it dies: RECEIVED, its intent's id
    (when it created one) and `extra` steps, its lease already lapsed."""
    log = SagaLog(clients.firestore_client(), settings.FIRESTORE_COLLECTION, 60, PROCESSOR)
    first = [Step(steps.RECEIVED)]
    if intent is not None:
        first.append(Step(steps.INTENT_CREATED, {"intent_id": intent.id}, {"intent_id": intent.id}))
    fields = {
        "payment_id": str(payment.pk),
        "user_id": payment.user_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "correlation_id": payment.correlation_id,
    }
    claim = log.claim_delivery(fields, "dead-delivery", first)
    doc = log.append(str(payment.pk), "dead-delivery", extra, known=claim.doc) if extra else claim.doc
    log.release(str(payment.pk), "dead-delivery")
    return doc


def create_dead_lettered_subscription(topic: str, dead_letter_topic: str, *, max_delivery_attempts: int = 5) -> str:
    """A pull subscription on `topic` that forwards a message to `dead_letter_topic` after N nacks."""
    name = unique_name("sub")
    clients.subscriber().create_subscription(
        request={
            "name": clients.subscription_path(name),
            "topic": clients.topic_path(topic),
            "ack_deadline_seconds": 10,
            "dead_letter_policy": {
                "dead_letter_topic": clients.topic_path(dead_letter_topic),
                "max_delivery_attempts": max_delivery_attempts,
            },
        }
    )
    return name


def nack_until_dead_lettered(subscription: str, *, deadline_seconds: float = 60) -> list[int]:
    """Pull and nack every delivery until none comes back; returns the delivery attempts seen."""
    subscriber = clients.subscriber()
    path = clients.subscription_path(subscription)
    attempts: list[int] = []
    quiet_since = None
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            response = subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=2)
        except google_exceptions.DeadlineExceeded:
            response = None
        if response is None or not response.received_messages:
            quiet_since = quiet_since or time.monotonic()
            if attempts and time.monotonic() - quiet_since > 2:
                break
            continue
        quiet_since = None
        attempts.extend(m.delivery_attempt for m in response.received_messages)
        subscriber.modify_ack_deadline(
            request={
                "subscription": path,
                "ack_ids": [m.ack_id for m in response.received_messages],
                "ack_deadline_seconds": 0,
            }
        )
    return attempts


def gateway_client(url: str) -> StripeGateway:
    """The gateway port on a sandbox gateway the tests run."""
    return StripeGateway(api_base=url, api_key=GATEWAY_API_KEY, connect_timeout=2, read_timeout=5)


class SandboxGatewayMixin:
    """A real sandbox gateway per test class (its SANDBOX_* knobs in `gateway_knobs`), a fresh saga-log
    collection per test, and the process's gateway port pointed at the sandbox."""

    gateway_knobs: dict[str, str] = {}
    extra_settings: dict[str, object] = {}

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.gateway = SandboxGateway(**cls.gateway_knobs)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.gateway.stop()
        super().tearDownClass()

    def setUp(self) -> None:
        super().setUp()
        self.collection = unique_name("transactions")
        self.override = override_settings(
            FIRESTORE_COLLECTION=self.collection,
            PAYMENT_GATEWAY_URL=self.gateway.url,
            PAYMENT_GATEWAY_API_KEY=GATEWAY_API_KEY,
            **self.extra_settings,
        )
        self.override.enable()
        clients.reset_clients()
        clients.set_clients(gateway=self.gateway.port_client)

    def tearDown(self) -> None:
        self.override.disable()
        clients.reset_clients()
        super().tearDown()
