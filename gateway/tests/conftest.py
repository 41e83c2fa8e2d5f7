"""Fixtures that run the real sandbox as a separate process and talk to it over HTTP (form-encoded, as Stripe's v1)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .process import GatewayProcess

API_KEY = "sk_test_gateway_suite"


class Client:
    """Raw HTTP in Stripe's wire format; each method returns the `requests` response."""

    def __init__(self, base_url: str, api_key: str = API_KEY) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def post(self, path: str, data: dict | None = None, *, key: str | None = None, timeout: float = 10, **kwargs):
        headers = dict(self.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        return requests.post(self.base_url + path, data=data, headers=headers, timeout=timeout, **kwargs)

    def get(self, path: str, **params):
        return requests.get(self.base_url + path, headers=self.headers, params=params, timeout=10)

    def create(self, amount: int, key: str | None = None, **params):
        body = {"amount": amount, "currency": "usd", "payment_method": "pm_card_visa", "capture_method": "manual"}
        return self.post("/v1/payment_intents", {**body, **params}, key=key or new_key())

    def intent(self, amount: int) -> dict:
        answer = self.create(amount)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def confirm(self, intent_id: str, key: str | None = None, timeout: float = 10):
        return self.post(f"/v1/payment_intents/{intent_id}/confirm", key=key or new_key(), timeout=timeout)

    def retrieve(self, intent_id: str) -> dict:
        answer = self.get(f"/v1/payment_intents/{intent_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def charges(self, intent_id: str) -> list[dict]:
        answer = self.get("/v1/charges", payment_intent=intent_id)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]

    def config(self, **knobs) -> dict:
        answer = requests.post(self.base_url + "/_sandbox/config", json=knobs, headers=self.headers, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="session")
def start_gateway(tmp_path_factory) -> Iterator:
    """Factory: start_gateway(command="dev"|"gunicorn", db_path=None, **env) -> running GatewayProcess."""
    started: list[GatewayProcess] = []

    def start(command: str = "dev", db_path: Path | None = None, **env: str) -> GatewayProcess:
        folder = tmp_path_factory.mktemp("gateway")
        gateway = GatewayProcess(
            db_path=db_path or folder / "sandbox.sqlite3",
            log_path=folder / "gateway.log",
            api_key=API_KEY,
            command=command,
            env=env,
        )
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="session")
def shared_gateway(start_gateway) -> GatewayProcess:
    """The default dev-server sandbox; tests keep apart through their own intents and keys."""
    return start_gateway("dev")


@pytest.fixture
def client(shared_gateway) -> Client:
    return Client(shared_gateway.url)


def new_key() -> str:
    return f"key-{uuid.uuid4()}"
