"""Unit tests on the Flask test client, the settings and the form decoding; the HTTP tests cover the rest."""

from __future__ import annotations

import logging
import sqlite3
import time

import pytest
from sandbox_gateway import create_app
from sandbox_gateway.errors import StripeError
from sandbox_gateway.forms import nest
from sandbox_gateway.logs import ContextFilter
from sandbox_gateway.settings import DEVELOPMENT_API_KEY, GATEWAY_DIR, KNOB_SPECS, ConfigurationError, Settings

AUTH = {"Authorization": "Bearer sk_unit"}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"PAYMENT_GATEWAY_API_KEY": "sk_unit", "SANDBOX_DB_PATH": str(tmp_path / "unit.sqlite3")})


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def test_client(settings, slept):
    return create_app(settings, sleep=slept.append, background=False).test_client()


def post(test_client, path: str, data: dict | None = None, key: str | None = None):
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return test_client.post(path, data=data or {}, headers=headers)


def intent(test_client, amount: int) -> dict:
    body = {"amount": amount, "currency": "usd", "payment_method": "pm_card_visa", "capture_method": "manual"}
    response = post(test_client, "/v1/payment_intents", body, key=f"create-{amount}-{time.monotonic()}")
    assert response.status_code == 200, response.json
    return response.json


def test_development_defaults():
    settings = Settings.from_env({})

    assert settings.environment == "development"
    assert settings.api_keys == (DEVELOPMENT_API_KEY,)
    assert settings.db_path == GATEWAY_DIR / "sandbox_gateway.sqlite3"
    assert settings.allow_config is False
    assert settings.knobs.public() == {name: default for name, (default, _) in KNOB_SPECS.items()}
    assert (settings.webhook_url, settings.webhook_secret) == (None, None)


def test_production_needs_an_explicit_api_key():
    with pytest.raises(ConfigurationError, match="PAYMENT_GATEWAY_API_KEY"):
        Settings.from_env({"BINPAY_ENV": "production"})
    assert Settings.from_env({"BINPAY_ENV": "production", "PAYMENT_GATEWAY_API_KEY": "sk_x"}).api_key == "sk_x"


@pytest.mark.parametrize(
    "env",
    [
        {"BINPAY_ENV": "staging"},
        {"SANDBOX_ALLOW_CONFIG": "maybe"},
        {"SANDBOX_LATENCY_MS": "fast"},
        {"SANDBOX_TIMEOUT_RATE": "1.01"},
        {"SANDBOX_WEBHOOK_URL": "http://127.0.0.1:9/hook"},
        {"SANDBOX_WEBHOOK_URL": "ftp://x", "PAYMENT_GATEWAY_WEBHOOK_SECRET": "whsec_x"},
    ],
)
def test_invalid_environment_is_refused(env):
    with pytest.raises(ConfigurationError):
        Settings.from_env(env)


def test_env_knobs_and_extra_keys_are_parsed():
    settings = Settings.from_env(
        {"SANDBOX_LOST_RESPONSE_RATE": "0.25", "SANDBOX_LATENCY_MS": "10", "SANDBOX_EXTRA_API_KEYS": "sk_a, sk_b"}
    )

    assert (settings.knobs.lost_response_rate, settings.knobs.latency_ms) == (0.25, 10)
    assert settings.api_keys == (DEVELOPMENT_API_KEY, "sk_a", "sk_b")


def test_forms_decode_stripes_bracket_notation():
    pairs = [
        ("amount", "100"),
        ("metadata[payment_id]", "p-1"),
        ("enabled_events[0]", "a"),
        ("enabled_events[1]", "b"),
        ("created[gte]", "5"),
        ("expand[]", "x"),
    ]

    assert nest(pairs) == {
        "amount": "100",
        "metadata": {"payment_id": "p-1"},
        "enabled_events": ["a", "b"],
        "created": {"gte": "5"},
        "expand": ["x"],
    }


@pytest.mark.parametrize("pairs", [[("a", "1"), ("a", "2")], [("a[", "1")], [("a", "1"), ("a[b]", "2")]])
def test_forms_refuse_ambiguous_parameters(pairs):
    with pytest.raises(StripeError) as raised:
        nest(pairs)

    assert raised.value.status == 400


def test_log_filter_redacts_the_api_key_and_adds_severity():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "token was %s", ("sk_secret_1",), None)

    ContextFilter(["sk_secret_1"]).filter(record)

    assert record.getMessage() == "token was [REDACTED]"
    assert record.severity == "WARNING"


def test_lost_response_without_a_socket_to_drop_hangs_instead(test_client, settings, slept):
    # The test client's environ has no server socket: the fallback must still keep the answer from the client.
    created = intent(test_client, 1055)

    response = post(test_client, f"/v1/payment_intents/{created['id']}/confirm", key="k-lost")

    assert response.status_code == 504
    assert slept == [settings.knobs.timeout_seconds]
    replay = post(test_client, f"/v1/payment_intents/{created['id']}/confirm", key="k-lost")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")


def test_57_sleeps_the_configured_latency(test_client, settings, slept):
    created = intent(test_client, 1057)

    assert post(test_client, f"/v1/payment_intents/{created['id']}/confirm", key="k-slow").status_code == 200
    assert slept == [settings.knobs.latency_ms / 1000]


def hold_key(settings: Settings, key: str, locked_until: float) -> None:
    with sqlite3.connect(settings.db_path) as conn:
        conn.execute(
            "UPDATE idempotency_keys SET locked_until = ?, response_status = NULL, response_body = NULL WHERE key = ?",
            (locked_until, key),
        )


def test_a_key_held_by_a_request_in_flight_is_409_in_use(test_client, settings):
    created = intent(test_client, 1053)
    path = f"/v1/payment_intents/{created['id']}/confirm"
    assert post(test_client, path, key="k-held").status_code == 503  # creates the key's record
    hold_key(settings, "k-held", time.time() + 60)

    response = post(test_client, path, key="k-held")

    assert response.status_code == 409
    assert response.json["error"]["code"] == "idempotency_key_in_use"


def test_a_hold_left_by_a_dead_request_expires(test_client, settings):
    created = intent(test_client, 1053)
    path = f"/v1/payment_intents/{created['id']}/confirm"
    assert post(test_client, path, key="k-stale").status_code == 503
    hold_key(settings, "k-stale", time.time() - 1)

    assert post(test_client, path, key="k-stale").status_code == 200


def test_a_request_without_an_idempotency_key_is_not_idempotent(test_client):
    body = {"amount": 2000, "currency": "usd"}

    first = post(test_client, "/v1/payment_intents", body)
    second = post(test_client, "/v1/payment_intents", body)

    assert first.json["id"] != second.json["id"]


def test_readyz_reports_a_broken_database(test_client, settings):
    with sqlite3.connect(settings.db_path) as conn:
        conn.execute("DROP TABLE idempotency_keys")

    response = test_client.get("/readyz")

    assert response.status_code == 503
    assert response.json["checks"]["sqlite"].startswith("error:")


def test_a_slow_request_that_fails_validation_frees_its_key(test_client, slept):
    body = {"amount": 1057, "currency": "usd", "confirm": "true", "payment_method": "pm_card_visa"}
    missing = post(test_client, "/v1/payment_intents", {**body, "customer": "cus_missing"}, key="k-slow-invalid")
    assert missing.status_code == 400
    assert slept  # it waited holding the key first

    retry = post(test_client, "/v1/payment_intents", body, key="k-slow-invalid")

    assert retry.status_code == 200
    assert retry.json["status"] == "succeeded"
