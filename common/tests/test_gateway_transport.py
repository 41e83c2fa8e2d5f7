"""The provider adapter's transport: the proxy settings requests would honour (HTTP(S)_PROXY, NO_PROXY,
https://requests.readthedocs.io/en/latest/user/advanced/#proxies), read once when the gateway is built
instead of on every request. A real HTTP server stands in for the proxy and for the provider."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from binpay_common.gateway import IntentStatus
from binpay_common.gateway.stripe_api import StripeGateway

PROVIDER = "http://api.provider.invalid"  # resolvable by no one: only a proxy can reach it


class _Recorder(BaseHTTPRequestHandler):
    """Answers every GET with a PaymentIntent and records the request target (absolute through a proxy)."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.targets.append(self.path)
        body = json.dumps(
            {"id": "pi_1", "object": "payment_intent", "status": "succeeded", "amount": 100, "currency": "usd"}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.targets = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gateway(api_base: str) -> StripeGateway:
    return StripeGateway(api_base=api_base, api_key="sk_test_transport", connect_timeout=2, read_timeout=5)


def test_the_proxy_named_in_the_environment_carries_every_call(
    recorder: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", url(recorder))
    provider = gateway(PROVIDER)
    for _ in range(2):
        assert provider.retrieve_intent("pi_1").status is IntentStatus.SUCCEEDED
    assert recorder.targets == [f"{PROVIDER}/v1/payment_intents/pi_1"] * 2


def test_no_proxy_sends_the_calls_directly(recorder: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")  # would refuse every call
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert gateway(url(recorder)).retrieve_intent("pi_1").id == "pi_1"
    assert recorder.targets == ["/v1/payment_intents/pi_1"]


def test_the_environment_is_read_when_the_gateway_is_built(
    recorder: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = gateway(url(recorder))
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    assert provider.retrieve_intent("pi_1").id == "pi_1"
    assert recorder.targets == ["/v1/payment_intents/pi_1"]
