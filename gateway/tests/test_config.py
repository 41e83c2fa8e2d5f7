"""Chaos knobs: set from the environment at start and through /_sandbox/config at run time."""

from __future__ import annotations

import pytest
import requests

from .conftest import Client, new_key


@pytest.fixture(scope="module")
def chaos_gateway(start_gateway):
    return start_gateway("dev", SANDBOX_ALLOW_CONFIG="true", SANDBOX_LATENCY_MS="200", SANDBOX_TIMEOUT_SECONDS="1")


@pytest.fixture
def chaos(chaos_gateway):
    """A client for the chaos gateway whose knobs are all off again after each test."""
    chaos_client = Client(chaos_gateway.url)
    yield chaos_client
    reset = {
        "sandbox_fail_rate": 0,
        "sandbox_timeout_rate": 0,
        "sandbox_lost_response_rate": 0,
        "sandbox_latency_rate": 0,
    }
    assert chaos_client.post("/_sandbox/config", json=reset).status_code == 200


def set_knobs(client: Client, **knobs) -> dict:
    response = client.post("/_sandbox/config", json=knobs)
    assert response.status_code == 200, response.text
    return response.json()


def test_knobs_from_the_environment_are_in_force_from_the_start(start_gateway, reference):
    failing = Client(
        start_gateway("dev", SANDBOX_FAIL_RATE="1", SANDBOX_LATENCY_MS="200", SANDBOX_TIMEOUT_SECONDS="2.5").url
    )

    assert failing.get("/_sandbox/config").json() == {
        "sandbox_fail_rate": 1.0,
        "sandbox_timeout_rate": 0.0,
        "sandbox_lost_response_rate": 0.0,
        "sandbox_latency_rate": 0.0,
        "sandbox_latency_ms": 200,
        "sandbox_timeout_seconds": 2.5,
        "sandbox_allow_config": False,
    }
    assert failing.charge(100, reference, new_key()).status_code == 503
    assert failing.ledger(reference)["charges_succeeded"] == 0


def test_fail_rate_fails_charges_and_refunds(chaos, reference):
    charge = chaos.charge(100, reference, new_key()).json()
    set_knobs(chaos, sandbox_fail_rate=1)

    assert chaos.charge(100, reference, new_key()).status_code == 503
    assert chaos.refund(charge["id"], new_key()).status_code == 503
    assert chaos.ledger(reference)["charges_succeeded"] == 1
    assert chaos.ledger(reference)["refunds"] == 0


def test_config_post_changes_only_the_keys_it_names(chaos):
    body = set_knobs(chaos, sandbox_timeout_rate=0.25, sandbox_latency_rate=0.5)

    assert body["sandbox_timeout_rate"] == 0.25
    assert body["sandbox_latency_rate"] == 0.5
    assert body["sandbox_latency_ms"] == 200
    assert chaos.get("/_sandbox/config").json() == body


def test_lost_response_rate_drops_responses_of_work_that_was_done(chaos, reference):
    set_knobs(chaos, sandbox_lost_response_rate=1)
    key = new_key()

    with pytest.raises(requests.ConnectionError):
        chaos.charge(100, reference, key)
    assert chaos.ledger(reference)["charges_succeeded"] == 1

    set_knobs(chaos, sandbox_lost_response_rate=0)
    retry = chaos.charge(100, reference, key)
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"


def test_timeout_rate_hangs_like_54_and_does_nothing(chaos, reference):
    set_knobs(chaos, sandbox_timeout_rate=1)
    key = new_key()

    with pytest.raises(requests.ReadTimeout):
        chaos.charge(100, reference, key, timeout=0.3)
    waited = chaos.charge(100, reference, key, timeout=10)

    assert waited.status_code == 504
    assert chaos.ledger(reference)["charges_succeeded"] == 0
    set_knobs(chaos, sandbox_timeout_rate=0)
    assert chaos.charge(100, reference, key).status_code == 201


def test_latency_rate_delays_but_completes(chaos, reference):
    set_knobs(chaos, sandbox_latency_rate=1)

    assert chaos.charge(100, reference, new_key()).status_code == 201
    assert chaos.ledger(reference)["charges_succeeded"] == 1


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
        {"sandbox_colour": "red"},
    ],
)
def test_invalid_knob_values_are_400_and_change_nothing(chaos, body):
    before = chaos.get("/_sandbox/config").json()

    response = chaos.post("/_sandbox/config", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parameter_invalid"
    assert chaos.get("/_sandbox/config").json() == before


def test_config_cannot_be_changed_unless_allowed(client):
    response = client.post("/_sandbox/config", json={"sandbox_fail_rate": 1})

    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert client.get("/_sandbox/config").json()["sandbox_fail_rate"] == 0.0
