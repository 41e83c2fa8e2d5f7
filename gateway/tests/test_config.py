"""Fault knobs and the clock: set from the environment at start and through /_sandbox at run time."""

from __future__ import annotations

import pytest
import requests

from .conftest import Client, new_key

RATES = [
    "sandbox_fail_rate",
    "sandbox_timeout_rate",
    "sandbox_lost_response_rate",
    "sandbox_latency_rate",
    "sandbox_saved_error_rate",
    "sandbox_saved_error_applied_rate",
    "sandbox_processing_rate",
    "sandbox_refund_pending_rate",
    "sandbox_refund_failure_rate",
    "sandbox_webhook_duplicate_rate",
    "sandbox_webhook_delay_rate",
    "sandbox_webhook_drop_rate",
]


@pytest.fixture(scope="module")
def chaos_gateway(start_gateway):
    return start_gateway("dev", SANDBOX_ALLOW_CONFIG="true", SANDBOX_LATENCY_MS="200", SANDBOX_TIMEOUT_SECONDS="1")


@pytest.fixture
def chaos(chaos_gateway):
    """A client for the chaos sandbox whose rate knobs are all off again after each test."""
    chaos_client = Client(chaos_gateway.url)
    yield chaos_client
    chaos_client.config(**{name: 0 for name in RATES})


def test_knobs_from_the_environment_are_in_force_from_the_start(start_gateway):
    failing = Client(start_gateway("dev", SANDBOX_FAIL_RATE="1", SANDBOX_REFUND_SETTLE_SECONDS="7").url)

    config = failing.get("/_sandbox/config").json()
    assert (config["sandbox_fail_rate"], config["sandbox_refund_settle_seconds"]) == (1.0, 7.0)
    assert config["sandbox_allow_config"] is False
    assert failing.create(2000).status_code == 503
    assert failing.get("/v1/payment_intents").status_code == 503
    assert failing.get("/v1/events").json()["data"] == []


def test_fail_rate_fails_before_execution(chaos):
    intent = chaos.intent(2000)
    chaos.config(sandbox_fail_rate=1)

    assert chaos.confirm(intent["id"]).status_code == 503
    refund = chaos.post("/v1/refunds", {"payment_intent": intent["id"]}, key=new_key())
    assert refund.status_code == 503
    chaos.config(sandbox_fail_rate=0)
    assert chaos.retrieve(intent["id"])["status"] == "requires_confirmation"


def test_lost_response_rate_drops_answers_of_work_that_was_done(chaos):
    intent = chaos.intent(2000)
    chaos.config(sandbox_lost_response_rate=1)
    key = new_key()

    with pytest.raises(requests.ConnectionError):
        chaos.confirm(intent["id"], key)

    chaos.config(sandbox_lost_response_rate=0)
    assert chaos.retrieve(intent["id"])["status"] == "requires_capture"
    assert chaos.confirm(intent["id"], key).headers["Idempotent-Replayed"] == "true"


def test_timeout_rate_hangs_and_does_nothing(chaos):
    intent = chaos.intent(2000)
    chaos.config(sandbox_timeout_rate=1)

    waited = chaos.confirm(intent["id"], timeout=10)

    assert waited.status_code == 504
    chaos.config(sandbox_timeout_rate=0)
    assert chaos.retrieve(intent["id"])["status"] == "requires_confirmation"


def test_saved_error_applied_rate_commits_the_effect_behind_a_saved_500(chaos):
    intent = chaos.intent(2000)
    chaos.config(sandbox_saved_error_applied_rate=1)
    key = new_key()

    assert chaos.confirm(intent["id"], key).status_code == 500
    chaos.config(sandbox_saved_error_applied_rate=0)

    replay = chaos.confirm(intent["id"], key)
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (500, "true")
    assert chaos.retrieve(intent["id"])["status"] == "requires_capture"


def test_config_post_changes_only_the_keys_it_names(chaos):
    body = chaos.config(sandbox_timeout_rate=0.25, sandbox_latency_rate=0.5)

    assert (body["sandbox_timeout_rate"], body["sandbox_latency_rate"]) == (0.25, 0.5)
    assert body["sandbox_latency_ms"] == 200
    assert chaos.get("/_sandbox/config").json() == body


@pytest.mark.parametrize(
    "body",
    [
        {"sandbox_fail_rate": 1.5},
        {"sandbox_fail_rate": -0.1},
        {"sandbox_fail_rate": "often"},
        {"sandbox_fail_rate": True},
        {"sandbox_latency_ms": -1},
        {"sandbox_latency_ms": 1.5},
        {"sandbox_timeout_seconds": 0},
        {"sandbox_search_lag_seconds": -1},
        {"sandbox_colour": "red"},
    ],
)
def test_invalid_knob_values_are_400_and_change_nothing(chaos, body):
    before = chaos.get("/_sandbox/config").json()

    response = requests.post(chaos.base_url + "/_sandbox/config", json=body, headers=chaos.headers, timeout=5)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parameter_invalid"
    assert chaos.get("/_sandbox/config").json() == before


@pytest.mark.parametrize("body", [{"advance_seconds": 0}, {"advance_seconds": "1"}, {"advance_seconds": 1, "x": 1}])
def test_invalid_clock_advances_are_400(chaos, body):
    before = chaos.get("/_sandbox/clock").json()["offset_seconds"]

    response = requests.post(chaos.base_url + "/_sandbox/clock", json=body, headers=chaos.headers, timeout=5)

    assert response.status_code == 400
    assert chaos.get("/_sandbox/clock").json()["offset_seconds"] == before


def test_the_clock_advances(chaos):
    before = chaos.get("/_sandbox/clock").json()

    response = requests.post(
        chaos.base_url + "/_sandbox/clock", json={"advance_seconds": 3600}, headers=chaos.headers, timeout=5
    )

    assert response.status_code == 200
    assert response.json()["offset_seconds"] == before["offset_seconds"] + 3600
    assert response.json()["now"] >= before["now"] + 3600


def test_config_and_clock_cannot_be_changed_unless_allowed(client):
    for path, body in (("/_sandbox/config", {"sandbox_fail_rate": 1}), ("/_sandbox/clock", {"advance_seconds": 60})):
        response = requests.post(client.base_url + path, json=body, headers=client.headers, timeout=5)
        assert response.status_code == 403
    assert client.get("/_sandbox/config").json()["sandbox_fail_rate"] == 0.0
    assert client.get("/_sandbox/clock").json()["offset_seconds"] == 0
