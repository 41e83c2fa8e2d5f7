"""Settings: defaults, production rules (unit tests, no services)."""

from __future__ import annotations

import pytest
from binpay_processor.config import ConfigurationError, Settings


def test_development_defaults_match_the_contract():
    settings = Settings.from_env(environ={})
    assert (settings.pubsub_topic, settings.pubsub_subscription) == ("binpay-initiation", "initiator-sub")
    assert (settings.pubsub_completion_topic, settings.pubsub_rollback_topic) == ("binpay-completion", "rollback")
    assert settings.firestore_collection == "transactions"
    assert settings.payment_gateway_url == "http://127.0.0.1:8090"
    assert (settings.payment_gateway_connect_timeout_seconds, settings.payment_gateway_read_timeout_seconds) == (3, 10)
    assert settings.payment_gateway_idempotency_window_seconds == 12 * 3600
    assert (settings.saga_timeout_seconds, settings.lease_seconds) == (300, 120)
    assert settings.fault_injection_enabled is False
    assert (settings.host, settings.port) == ("127.0.0.1", 5000)


def test_environment_values_are_parsed():
    settings = Settings.from_env(
        environ={
            "PORT": "8080",
            "FAULT_INJECTION_ENABLED": "true",
            "PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS": "2.5",
            "PUBSUB_PUSH_AUDIENCE": "",
        }
    )
    assert (settings.port, settings.fault_injection_enabled, settings.payment_gateway_read_timeout_seconds) == (
        8080,
        True,
        2.5,
    )
    assert settings.pubsub_push_audience is None


def test_production_requires_the_gateway_api_key():
    with pytest.raises(ConfigurationError, match="PAYMENT_GATEWAY_API_KEY"):
        Settings.from_env(environ={"BINPAY_ENV": "production"})
    settings = Settings.from_env(environ={"BINPAY_ENV": "production", **LIVE_GATEWAY})
    assert settings.is_production and settings.payment_gateway_api_key == "sk_live_x"


def test_production_refuses_fault_injection():
    with pytest.raises(ConfigurationError, match="FAULT_INJECTION_ENABLED"):
        Settings.from_env(
            environ={"BINPAY_ENV": "production", "PAYMENT_GATEWAY_API_KEY": "k", "FAULT_INJECTION_ENABLED": "true"}
        )


@pytest.mark.parametrize(
    "environ",
    [
        {"FAULT_INJECTION_ENABLED": "maybe"},
        {"PORT": "http"},
        {"BINPAY_ENV": "staging"},
        {"LEASE_SECONDS": "0"},
        {"PAYMENT_GATEWAY_CONNECT_TIMEOUT_SECONDS": "0"},
        # Past 24 h Stripe may have pruned a key: a re-sent key would be a new request.
        {"PAYMENT_GATEWAY_IDEMPOTENCY_WINDOW_SECONDS": "90000"},
        {"PAYMENT_GATEWAY_IDEMPOTENCY_WINDOW_SECONDS": "100"},
        {"PUBSUB_FLOW_CONTROL_MAX_MESSAGES": "0"},
        {"PUBSUB_PUSH_AUDIENCE": "https://processor"},
    ],
)
def test_invalid_values_are_refused(environ):
    with pytest.raises(ConfigurationError):
        Settings.from_env(environ=environ)


def test_a_lease_shorter_than_one_delivery_is_refused():
    # Five provider calls (create, confirm, retrieve, cancel, retrieve), each 3 connects of 3 s + a 10 s
    # read = 19 s, plus 5 s of Firestore = 100 s: a 100 s lease could lapse while a call is in flight.
    with pytest.raises(ConfigurationError, match="LEASE_SECONDS"):
        Settings.from_env(environ={"LEASE_SECONDS": "100"})
    assert Settings.from_env(environ={"LEASE_SECONDS": "101"}).lease_seconds == 101


def test_a_saga_timeout_not_under_the_initiators_payment_timeout_is_refused():
    with pytest.raises(ConfigurationError, match="PAYMENT_TIMEOUT_SECONDS"):
        Settings.from_env(environ={"SAGA_TIMEOUT_SECONDS": "600", "PAYMENT_TIMEOUT_SECONDS": "600"})
    assert Settings.from_env(environ={"PAYMENT_TIMEOUT_SECONDS": "600"}).saga_timeout_seconds == 300


def test_a_push_request_timeout_shorter_than_a_delivery_is_refused():
    # Cloud Run cut a 55 s request off while the delivery could take 100 s + 10 s to publish.
    with pytest.raises(ConfigurationError, match="PUSH_REQUEST_TIMEOUT_SECONDS"):
        Settings.from_env(environ={"PUSH_REQUEST_TIMEOUT_SECONDS": "55"})


def test_a_push_request_must_have_room_to_wait_out_a_crashed_deliverys_lease():
    # A redelivery that finds the 120 s lease of a delivery that died waits it out, then handles the
    # payment (5 s of asking again after fast ambiguous answers, then a 100 s walk) and publishes
    # (10 s): a 230 s request timeout would cut it off.
    with pytest.raises(ConfigurationError, match="LEASE_SECONDS=120"):
        Settings.from_env(environ={"PUSH_REQUEST_TIMEOUT_SECONDS": "230"})
    settings = Settings.from_env(environ={"PUSH_REQUEST_TIMEOUT_SECONDS": "270"})
    assert settings.push_lease_wait_seconds() == 270 - 105 - 10 >= settings.lease_seconds
    assert Settings.from_env(environ={}).push_lease_wait_seconds() == 120


LIVE_GATEWAY = {"PAYMENT_GATEWAY_URL": "https://api.stripe.com", "PAYMENT_GATEWAY_API_KEY": "sk_live_x"}


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"PAYMENT_GATEWAY_URL": "http://gateway.internal:8090"}, "PAYMENT_GATEWAY_URL"),
        ({"PAYMENT_GATEWAY_API_KEY": "sk_test_abc"}, "PAYMENT_GATEWAY_API_KEY"),
        ({"PAYMENT_GATEWAY_API_KEY": "rk_test_abc"}, "PAYMENT_GATEWAY_API_KEY"),
    ],
)
def test_production_refuses_plain_http_and_test_keys_unless_a_sandbox(override, named):
    """Issue 22 (L6)."""
    environ = {"BINPAY_ENV": "production", **LIVE_GATEWAY, **override}
    with pytest.raises(ConfigurationError, match=f"{named}.*PAYMENT_GATEWAY_ALLOW_SANDBOX"):
        Settings.from_env(environ=environ)
    assert Settings.from_env(environ={**environ, "PAYMENT_GATEWAY_ALLOW_SANDBOX": "true"}).is_production
    assert Settings.from_env(environ={"BINPAY_ENV": "production", **LIVE_GATEWAY}).is_production


@pytest.mark.parametrize("marker", ["K_SERVICE", "CLOUD_RUN_JOB", "KUBERNETES_SERVICE_HOST"])
def test_on_a_platform_binpay_env_must_be_set(marker):
    with pytest.raises(ConfigurationError, match="BINPAY_ENV"):
        Settings.from_env(environ={marker: "x"})
    assert not Settings.from_env(environ={marker: "x", "BINPAY_ENV": "development"}).is_production


def test_production_without_a_gateway_url_talks_to_the_provider_not_localhost():
    settings = Settings.from_env(environ={"BINPAY_ENV": "production", "PAYMENT_GATEWAY_API_KEY": "sk_live_x"})
    assert settings.payment_gateway_url == "https://api.stripe.com"
