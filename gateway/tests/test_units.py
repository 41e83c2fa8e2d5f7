"""Unit tests on the Flask test client and the settings; the HTTP tests cover the rest."""

from __future__ import annotations

import logging
import sqlite3
import time

import pytest
from sandbox_gateway import create_app
from sandbox_gateway.logs import ContextFilter
from sandbox_gateway.settings import DEVELOPMENT_API_KEY, GATEWAY_DIR, ConfigurationError, Knobs, Settings

AUTH = {"Authorization": "Bearer sk_unit"}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"PAYMENT_GATEWAY_API_KEY": "sk_unit", "SANDBOX_DB_PATH": str(tmp_path / "unit.sqlite3")})


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def test_client(settings, slept):
    return create_app(settings, sleep=slept.append).test_client()


def charge(test_client, amount: int, key: str, reference: str = "pay-1"):
    body = {"amount": amount, "currency": "USD", "reference": reference}
    return test_client.post("/v1/charges", json=body, headers={**AUTH, "Idempotency-Key": key})


def test_development_defaults():
    settings = Settings.from_env({})

    assert settings.environment == "development"
    assert settings.api_key == DEVELOPMENT_API_KEY
    assert settings.db_path == GATEWAY_DIR / "sandbox_gateway.sqlite3"
    assert settings.allow_config is False
    assert settings.knobs == Knobs(latency_ms=1500, timeout_seconds=30.0)


def test_production_needs_an_explicit_api_key():
    with pytest.raises(ConfigurationError, match="PAYMENT_GATEWAY_API_KEY"):
        Settings.from_env({"BINPAY_ENV": "production"})
    assert (
        Settings.from_env({"BINPAY_ENV": "production", "PAYMENT_GATEWAY_API_KEY": "sk_live_x"}).api_key == "sk_live_x"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"BINPAY_ENV": "staging"},
        {"SANDBOX_ALLOW_CONFIG": "maybe"},
        {"SANDBOX_LATENCY_MS": "fast"},
        {"SANDBOX_TIMEOUT_RATE": "1.01"},
    ],
)
def test_invalid_environment_is_refused(env):
    with pytest.raises(ConfigurationError):
        Settings.from_env(env)


def test_env_knobs_are_parsed():
    knobs = Settings.from_env(
        {"SANDBOX_LOST_RESPONSE_RATE": "0.25", "SANDBOX_LATENCY_MS": "10", "SANDBOX_TIMEOUT_SECONDS": "0.5"}
    ).knobs

    assert (knobs.lost_response_rate, knobs.latency_ms, knobs.timeout_seconds) == (0.25, 10, 0.5)


def test_log_filter_redacts_the_api_key_and_adds_severity():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "token was %s", ("sk_secret_1",), None)

    ContextFilter(["sk_secret_1"]).filter(record)

    assert record.getMessage() == "token was [REDACTED]"
    assert record.severity == "WARNING"


def test_lost_response_without_a_socket_to_drop_hangs_instead(test_client, settings, slept):
    # The test client's environ has no server socket: the fallback must still keep the answer from the client.
    response = charge(test_client, 1055, "k-lost")

    assert response.status_code == 504
    assert slept == [settings.knobs.timeout_seconds]
    replay = charge(test_client, 1055, "k-lost")
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_57_sleeps_the_configured_latency(test_client, settings, slept):
    assert charge(test_client, 57, "k-slow").status_code == 201
    assert slept == [settings.knobs.latency_ms / 1000]


def hold_key(settings: Settings, key: str, locked_until: float) -> None:
    with sqlite3.connect(settings.db_path) as conn:
        conn.execute(
            "UPDATE idempotency_keys SET locked_until = ?, response_status = NULL, response_body = NULL WHERE key = ?",
            (locked_until, key),
        )


def test_a_key_held_by_a_request_in_flight_is_409_in_use(test_client, settings):
    assert charge(test_client, 53, "k-held").status_code == 503  # creates the key's record
    hold_key(settings, "k-held", time.time() + 60)

    response = charge(test_client, 53, "k-held")

    assert response.status_code == 409
    assert response.json["error"] == {
        "type": "idempotency_error",
        "code": "idempotency_key_in_use",
        "message": response.json["error"]["message"],
    }


def test_a_hold_left_by_a_dead_request_expires(test_client, settings):
    assert charge(test_client, 53, "k-stale").status_code == 503
    hold_key(settings, "k-stale", time.time() - 1)

    assert charge(test_client, 53, "k-stale").status_code == 201


def test_readyz_reports_a_broken_database(test_client, settings):
    with sqlite3.connect(settings.db_path) as conn:
        conn.execute("DROP TABLE idempotency_keys")

    response = test_client.get("/readyz")

    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["checks"]["sqlite"].startswith("error:")
