"""Fixtures: the real Pub/Sub and Firestore emulators, a real sandbox gateway process (a model of
Stripe's PaymentIntents API), the app.

Emulators are started once per session unless PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST are
already set. Every test gets its own outcome topics with a subscription each, so the events a test
causes can be counted exactly.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
import requests
from binpay_common import invariants
from binpay_common.gateway import Intent, IntentStatus, Refund
from binpay_common.gateway.stripe_api import StripeGateway

PROCESSOR_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PROCESSOR_DIR.parent
GATEWAY_DIR = REPO_DIR / "gateway"
CONTRACTS_DIR = REPO_DIR / "contracts" / "events"
sys.path.insert(0, str(REPO_DIR / "devtools"))

import emulators as devtools_emulators  # noqa: E402

GATEWAY_API_KEY = "sk_test_processor_suite"
PROJECT_ID = "binpay-processor-tests"


def pytest_configure(config):
    """Turn SIGTERM (e.g. from `timeout`) into KeyboardInterrupt so fixtures still stop their processes."""

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def wait_http_ok(url: str, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def stop_process_group(process: subprocess.Popen, timeout: float = 15) -> int:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


@pytest.fixture(scope="session")
def emulator_env() -> Iterator[dict[str, str]]:
    if os.environ.get("PUBSUB_EMULATOR_HOST") and os.environ.get("FIRESTORE_EMULATOR_HOST"):
        project = os.environ.get("PROJECT_ID", PROJECT_ID)
        yield {"PROJECT_ID": project}
        return
    running = devtools_emulators.start(project_id=PROJECT_ID)
    env = running.env()
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        running.stop()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_gateway(tmp_path_factory, **knobs: str) -> Iterator[str]:
    """A real sandbox gateway process with its own ledger; yields its URL. `knobs` are SANDBOX_* env vars."""
    port = devtools_emulators.free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "BINPAY_ENV": "development",
        "SANDBOX_DB_PATH": str(tmp_path_factory.mktemp("gateway") / "gateway.sqlite3"),
        "PAYMENT_GATEWAY_API_KEY": GATEWAY_API_KEY,
        "SANDBOX_TIMEOUT_SECONDS": "3",
        "SANDBOX_LATENCY_MS": "700",
        # Tests move the sandbox's clock instead of sleeping; search shows what exists at once.
        "SANDBOX_ALLOW_CONFIG": "true",
        "SANDBOX_SEARCH_LAG_SECONDS": "0",
        "SANDBOX_PROCESSING_SECONDS": "5",
        **knobs,
    }
    log = open(tmp_path_factory.mktemp("gateway-log") / "gateway.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=GATEWAY_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/readyz", process)
        yield url
    finally:
        stop_process_group(process)
        log.close()


@pytest.fixture(scope="session")
def gateway_url(tmp_path_factory) -> Iterator[str]:
    yield from run_gateway(tmp_path_factory)


@pytest.fixture(scope="session")
def slow_gateway_url(tmp_path_factory) -> Iterator[str]:
    """A gateway whose magic-57 confirms take 4 s: longer than the suite's 1 s read timeout."""
    yield from run_gateway(tmp_path_factory, SANDBOX_LATENCY_MS="4000")


@pytest.fixture(scope="session")
def base_config(emulator_env, gateway_url) -> dict[str, object]:
    """Settings overrides shared by every test (env var names); see .env.example."""
    return {
        "BINPAY_ENV": "development",
        "PROJECT_ID": emulator_env["PROJECT_ID"],
        "FIRESTORE_COLLECTION": f"transactions-{uuid.uuid4().hex[:8]}",
        "PAYMENT_GATEWAY_URL": gateway_url,
        "PAYMENT_GATEWAY_API_KEY": GATEWAY_API_KEY,
        # Loopback connects at once; a short connect timeout keeps one delivery's worst case (5 calls
        # of 3 x 0.25 s + 1 s, plus 5 s of Firestore = 13.75 s) under a lease short enough to wait out.
        "PAYMENT_GATEWAY_CONNECT_TIMEOUT_SECONDS": 0.25,
        "PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS": 1.0,
        "SAGA_TIMEOUT_SECONDS": 300.0,
        "LEASE_SECONDS": 15.0,
        "FAULT_INJECTION_ENABLED": True,
        "PUBSUB_PUSH_AUDIENCE": None,
        "PUBSUB_PUSH_SERVICE_ACCOUNT": None,
        "PUBSUB_PUSH_CERTS_URL": None,
    }


@pytest.fixture(scope="session")
def clients(base_config):
    from binpay_processor.clients import Clients
    from binpay_processor.config import Settings

    shared = Clients(Settings.from_env(environ={}, overrides=base_config))
    yield shared
    shared.close()


@dataclass
class Topics:
    """A test's own outcome topics, each with a subscription that sees everything published to it."""

    project_id: str
    suffix: str
    publisher: object
    subscriber: object

    @property
    def initiation(self) -> str:
        return f"initiation-{self.suffix}"

    @property
    def completion(self) -> str:
        return f"completion-{self.suffix}"

    @property
    def rollback(self) -> str:
        return f"rollback-{self.suffix}"

    def subscription_path(self, name: str) -> str:
        return self.subscriber.subscription_path(self.project_id, f"{name}-sub")

    def config(self) -> dict[str, str]:
        return {
            "PUBSUB_TOPIC": self.initiation,
            "PUBSUB_SUBSCRIPTION": f"{self.initiation}-sub",
            "PUBSUB_COMPLETION_TOPIC": self.completion,
            "PUBSUB_ROLLBACK_TOPIC": self.rollback,
        }

    def pull(self, topic: str) -> list[tuple[dict, dict]]:
        """Everything published to `topic` since the last pull, as (body, attributes); validated on the way."""
        received = []
        for data, attributes in self.pull_raw(topic):
            body = json.loads(data)
            validate_event(body, attributes)
            received.append((body, attributes))
        return received

    def pull_raw(self, topic: str, immediately: bool = True) -> list[tuple[bytes, dict]]:
        """Pull and ack every message on `topic`'s test subscription, as (data, attributes)."""
        received = []
        while True:
            # Callers pull after the publish was confirmed, so the emulator answering at once is
            # enough; a plain pull would wait ~10 s whenever the subscription is empty. Messages
            # nacked by a closing stream are only handed to a plain pull.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "The return_immediately flag is deprecated", DeprecationWarning)
                response = self.subscriber.pull(
                    request={
                        "subscription": self.subscription_path(topic),
                        "max_messages": 100,
                        "return_immediately": immediately,
                    },
                    timeout=15,
                )
            if not response.received_messages:
                return received
            self.subscriber.acknowledge(
                request={
                    "subscription": self.subscription_path(topic),
                    "ack_ids": [m.ack_id for m in response.received_messages],
                }
            )
            received += [(item.message.data, dict(item.message.attributes)) for item in response.received_messages]

    def publish_initiated(self, data: bytes, attributes: dict[str, str]) -> None:
        topic = self.publisher.topic_path(self.project_id, self.initiation)
        self.publisher.publish(topic, data, **attributes).result(timeout=30)


@pytest.fixture
def topics(clients, base_config) -> Iterator[Topics]:
    publisher, subscriber = clients.publisher, clients.subscriber
    project = base_config["PROJECT_ID"]
    created = Topics(project, uuid.uuid4().hex[:10], publisher, subscriber)
    for topic in (created.initiation, created.completion, created.rollback):
        topic_path = publisher.topic_path(project, topic)
        publisher.create_topic(name=topic_path)
        subscriber.create_subscription(
            request={"name": created.subscription_path(topic), "topic": topic_path, "ack_deadline_seconds": 60}
        )
    yield created
    for topic in (created.initiation, created.completion, created.rollback):
        subscriber.delete_subscription(subscription=created.subscription_path(topic))
        publisher.delete_topic(topic=publisher.topic_path(project, topic))


@pytest.fixture
def config(base_config, topics) -> dict[str, object]:
    return {**base_config, **topics.config()}


@pytest.fixture
def app(config, clients):
    from binpay_processor import create_app

    return create_app(test_config=config, clients=clients)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def processor(app):
    return app.extensions["binpay"].processor


# -- helpers ----------------------------------------------------------------------------------


def make_event(
    amount: int = 10000,
    *,
    currency: str = "USD",
    metadata: dict[str, str] | None = None,
    payment_id: str | None = None,
    created_at: datetime | None = None,
    payment_method: str = "pm_card_visa",
) -> tuple[bytes, dict[str, str]]:
    """A payment.initiated message (data, attributes) as the initiator publishes it."""
    body = {
        "event_id": str(uuid.uuid4()),
        "event_type": "payment.initiated",
        "schema_version": 1,
        "payment_id": payment_id or str(uuid.uuid4()),
        "user_id": 1,
        "amount": amount,
        "currency": currency,
        "payment_method": payment_method,
        "customer": None,
        "created_at": (created_at or datetime.now(UTC)).isoformat(),
        "metadata": metadata or {},
    }
    validate_event(body, None)
    attributes = {
        "event_type": body["event_type"],
        "event_id": body["event_id"],
        "payment_id": body["payment_id"],
        "schema_version": "1",
        "correlation_id": f"corr-{uuid.uuid4().hex[:12]}",
    }
    return json.dumps(body).encode(), attributes


def long_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


def payment_id_of(attributes: dict[str, str]) -> str:
    return attributes["payment_id"]


def push_envelope(data: bytes, attributes: dict[str, str], delivery_attempt: int = 1) -> dict:
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": str(uuid.uuid4().int)[:16],
            "publishTime": datetime.now(UTC).isoformat(),
        },
        "subscription": "projects/binpay-processor-tests/subscriptions/initiator-sub",
        "deliveryAttempt": delivery_attempt,
    }


_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return datetime.fromisoformat(value).tzinfo is not None


def load_schema(event_type: str) -> dict:
    return json.loads((CONTRACTS_DIR / f"{event_type}.schema.json").read_text())


def schema_validator(event_type: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(event_type), format_checker=_FORMATS)


def validate_event(body: dict, attributes: dict[str, str] | None) -> None:
    """The body against contracts/events/<event_type>.schema.json; the attributes against docs/contracts.md."""
    schema_validator(body["event_type"]).validate(body)
    if attributes is not None:
        assert attributes["event_type"] == body["event_type"]
        assert attributes["event_id"] == body["event_id"]
        assert attributes["payment_id"] == body["payment_id"]
        assert attributes["schema_version"] == "1"
        assert attributes.get("correlation_id")


def provider(gateway_url: str) -> StripeGateway:
    """The gateway port on the test sandbox (what the tests read the provider's side with)."""
    return StripeGateway(api_base=gateway_url, api_key=GATEWAY_API_KEY, connect_timeout=5, read_timeout=10)


@dataclass(frozen=True)
class Money:
    """What the provider holds for one payment: its intents (found by search; the sandbox's lag is 0)."""

    intents: list[Intent]
    refunds: dict[str, list[Refund]]

    @property
    def succeeded(self) -> int:
        return sum(1 for intent in self.intents if intent.status is IntentStatus.SUCCEEDED)

    @property
    def standing(self) -> int:
        return sum(invariants.standing(intent, self.refunds[intent.id]) for intent in self.intents)

    def status_of(self, intent_id: str) -> IntentStatus:
        return next(intent.status for intent in self.intents if intent.id == intent_id)


def money(gateway_url: str, payment_id: str) -> Money:
    gateway = provider(gateway_url)
    intents = gateway.search_intents(payment_id)
    return Money(intents, {intent.id: gateway.refunds_of(intent.id) for intent in intents})


def sandbox(gateway_url: str, path: str, body: dict | None = None) -> dict:
    """GET (or POST `body` to) the sandbox's own /_sandbox endpoints: knobs and clock."""
    url = f"{gateway_url}/_sandbox/{path}"
    headers = {"Authorization": f"Bearer {GATEWAY_API_KEY}"}
    answer = (
        requests.post(url, json=body, headers=headers, timeout=10)
        if body is not None
        else requests.get(url, headers=headers, timeout=10)
    )
    answer.raise_for_status()
    return answer.json()


def saga(client, payment_id: str) -> dict:
    response = client.get(f"/transactions/{payment_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def step_names(client, payment_id: str) -> list[str]:
    body = saga(client, payment_id)
    steps = body["steps"]
    assert [step["seq"] for step in steps] == list(range(1, len(steps) + 1))
    assert body["version"] == len(steps)
    assert body["steps_done"] == [step["step"] for step in steps]
    return [step["step"] for step in steps]


def wait_for_outcome(get_transaction, payment_id: str, timeout: float = 90) -> dict:
    """Poll `get_transaction(payment_id) -> (status, body)` until the payment's outcome is published."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = get_transaction(payment_id)
        if status == 200 and body["outcome_published"]:
            return body
        time.sleep(0.2)
    raise AssertionError(f"payment {payment_id} not finished after {timeout}s")
