"""The provider-contract suite: the same tests through the official SDK against the sandbox and,
when STRIPE_TEST_SECRET_KEY=sk_test_... is set, against Stripe's test mode.

The sandbox runs as a real process on a free loopback port with a webhook endpoint wired by
environment (SANDBOX_WEBHOOK_URL, PAYMENT_GATEWAY_WEBHOOK_SECRET) to a receiver in this test process. Tests marked
``sandbox_only`` need what only the sandbox can do (its clock, its faults, a reachable webhook
receiver) and are skipped against Stripe with their reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import stripe

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("sandbox_process", ROOT / "gateway" / "tests" / "process.py")
sandbox_process = importlib.util.module_from_spec(_spec)
sys.modules["sandbox_process"] = sandbox_process  # dataclasses look their module up there
_spec.loader.exec_module(sandbox_process)

STRIPE_KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
SANDBOX_KEY = "sk_test_provider_suite"
SECOND_SANDBOX_KEY = "sk_test_provider_suite_second"
WEBHOOK_SECRET = "whsec_provider_suite_" + uuid.uuid4().hex
READ_TIMEOUT = 20  # seconds; hang tests use their own shorter one


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "sandbox_only(reason): needs the sandbox's clock, faults or webhook receiver")


def targets() -> list[str]:
    return ["sandbox", "stripe"] if STRIPE_KEY.startswith("sk_test_") else ["sandbox"]


def pytest_generate_tests(metafunc) -> None:
    if "provider" in metafunc.fixturenames:
        metafunc.parametrize("provider", targets(), indirect=True, scope="session")


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Records every POST; answers 200, or first the statuses queued for "<object id> <event type>"."""

    deliveries: list[Delivery] = field(default_factory=list)
    failures: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                delivery = Delivery(dict(self.headers), body)
                with receiver.lock:
                    receiver.deliveries.append(delivery)
                    event = delivery.event
                    queued = receiver.failures.get(f"{event['data']['object']['id']} {event['type']}", [])
                    status = queued.pop(0) if queued else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def for_object(self, object_id: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.event["data"]["object"]["id"] == object_id]


@dataclass
class Provider:
    kind: str  # "sandbox" or "stripe"
    api_key: str
    base_url: str
    process: object | None = None
    webhooks: WebhookReceiver | None = None

    def client(self, *, timeout: float = READ_TIMEOUT, api_key: str | None = None) -> stripe.StripeClient:
        base = {} if self.kind == "stripe" else {"base_addresses": {"api": self.base_url}}
        return stripe.StripeClient(
            api_key or self.api_key,
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout),
            **base,
        )

    # --- sandbox controls ------------------------------------------------------------------------

    def _post(self, path: str, body: dict) -> dict:
        answer = requests.post(
            self.base_url + path, json=body, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def advance_clock(self, seconds: float) -> dict:
        return self._post("/_sandbox/clock", {"advance_seconds": seconds})

    def set_knobs(self, **knobs) -> dict:
        return self._post("/_sandbox/config", knobs)

    def access_log(self) -> list[dict]:
        return [r for r in self.process.log_records() if r.get("logger") == "sandbox_gateway.access"]


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def provider(request, tmp_path_factory, webhook_receiver) -> Iterator[Provider]:
    if request.param == "stripe":
        yield Provider("stripe", STRIPE_KEY, "https://api.stripe.com")
        return
    folder = tmp_path_factory.mktemp("sandbox")
    process = sandbox_process.GatewayProcess(
        db_path=folder / "sandbox.sqlite3",
        log_path=folder / "sandbox.log",
        api_key=SANDBOX_KEY,
        env={
            "SANDBOX_EXTRA_API_KEYS": SECOND_SANDBOX_KEY,
            "SANDBOX_ALLOW_CONFIG": "true",
            "SANDBOX_REFUND_SETTLE_SECONDS": "1",
            "SANDBOX_PROCESSING_SECONDS": "1",
            "SANDBOX_WEBHOOK_RETRY_SECONDS": "0.2",
            "SANDBOX_WEBHOOK_DELAY_MS": "1500",
            "SANDBOX_WEBHOOK_URL": webhook_receiver.url,
            "PAYMENT_GATEWAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        },
    ).start()
    try:
        yield Provider("sandbox", SANDBOX_KEY, process.url, process=process, webhooks=webhook_receiver)
    finally:
        process.stop()


@pytest.fixture(autouse=True)
def _sandbox_only(request) -> None:
    marker = request.node.get_closest_marker("sandbox_only")
    if marker is None or "provider" not in request.fixturenames:
        return
    if request.getfixturevalue("provider").kind != "sandbox":
        pytest.skip(f"sandbox only: {marker.kwargs.get('reason') or marker.args[0]}")


@pytest.fixture
def knobs(provider) -> Iterator[Callable[..., dict]]:
    """Set sandbox knobs for one test; they are all back to their start values afterwards."""
    changed: set[str] = set()
    start = requests.get(
        provider.base_url + "/_sandbox/config", headers={"Authorization": f"Bearer {provider.api_key}"}, timeout=10
    ).json()

    def set_knobs(**values) -> dict:
        changed.update(values)
        return provider.set_knobs(**values)

    yield set_knobs
    if changed:
        provider.set_knobs(**{name: start[name] for name in changed})


@pytest.fixture
def client(provider) -> stripe.StripeClient:
    return provider.client()
