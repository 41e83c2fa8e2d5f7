"""Authentication, Stripe's wire format, validation and health endpoints."""

from __future__ import annotations

import pytest
import requests

from .conftest import Client, new_key


def test_health_endpoints_need_no_key(shared_gateway):
    assert requests.get(f"{shared_gateway.url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{shared_gateway.url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"sqlite": "ok"}}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk_wrong"}, {"Authorization": "Token abc"}])
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/payment_intents"), ("GET", "/v1/events"), ("GET", "/_sandbox/config"), ("POST", "/_sandbox/clock")],
)
def test_requests_without_the_right_key_are_401_and_do_nothing(shared_gateway, headers, method, path):
    before = Client(shared_gateway.url).get("/v1/payment_intents", limit=1).json()["data"]
    body = {"amount": 100, "currency": "usd"}

    response = requests.request(method, shared_gateway.url + path, data=body, headers=headers, timeout=5)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert Client(shared_gateway.url).get("/v1/payment_intents", limit=1).json()["data"] == before


def test_basic_auth_with_the_key_as_user_works(shared_gateway):
    response = requests.get(f"{shared_gateway.url}/v1/events", auth=("sk_test_gateway_suite", ""), timeout=5)

    assert response.status_code == 200
    assert response.json()["object"] == "list"


def test_answers_carry_a_request_id_and_echo_the_idempotency_key(client):
    key = new_key()
    response = client.create(2000, key=key)

    assert response.headers["Request-Id"].startswith("req_")
    assert response.headers["Idempotency-Key"] == key


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"currency": "usd"}, "parameter_missing", "amount"),
        ({"amount": 100}, "parameter_missing", "currency"),
        ({"amount": "ten", "currency": "usd"}, "parameter_invalid_integer", "amount"),
        ({"amount": "0", "currency": "usd"}, "parameter_invalid_integer", "amount"),
        ({"amount": 49, "currency": "usd"}, "amount_too_small", "amount"),
        ({"amount": 29, "currency": "gbp"}, "amount_too_small", "amount"),
        ({"amount": 100_000_000, "currency": "usd"}, "amount_too_large", "amount"),
        ({"amount": 100, "currency": "usd", "metadata[payment_id]": "x", "extra": "1"}, "parameter_unknown", "extra"),
        ({"amount": 100, "currency": "usd", "customer": "cus_missing"}, "resource_missing", "customer"),
    ],
)
def test_invalid_creates_are_400_with_stripe_codes_and_create_nothing(client, body, code, param):
    key = new_key()
    before = client.get("/v1/payment_intents", limit=1).json()["data"]

    response = client.post("/v1/payment_intents", body, key=key)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error.get("code"), error["param"]) == ("invalid_request_error", code, param)
    assert client.get("/v1/payment_intents", limit=1).json()["data"] == before


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"amount": 100, "currency": "xyz"}, "currency"),
        ({"amount": 100, "currency": "usd", "capture_method": "later"}, "capture_method"),
        ({"amount": 100, "currency": "usd", "confirm": "yes"}, "confirm"),
        ({"amount": 100, "currency": "usd", "off_session": "true"}, "off_session"),
        ({"amount": 100, "currency": "usd", "payment_method_types[0]": "sepa_debit"}, "payment_method_types"),
        ({"amount": 100, "currency": "usd", "metadata[" + "k" * 41 + "]": "v"}, "metadata[" + "k" * 41 + "]"),
    ],
)
def test_invalid_values_name_their_param(client, body, param):
    response = client.post("/v1/payment_intents", body, key=new_key())

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_json_bodies_are_refused_stripe_v1_is_form_encoded(client):
    response = client.post("/v1/payment_intents", json={"amount": 100, "currency": "usd"}, key=new_key())

    assert response.status_code == 400
    assert "form-encoded" in response.json()["error"]["message"]


def test_oversized_bodies_are_413(client):
    response = client.post("/v1/payment_intents", {"amount": 100, "currency": "usd", "description": "x" * 70_000})

    assert response.status_code == 413


def test_unknown_routes_answer_in_stripes_error_shape(client):
    missing = client.get("/v1/charges/ch_x/refunds")
    method = requests.put(client.base_url + "/v1/payment_intents", headers=client.headers, timeout=5)

    assert missing.status_code == 404
    assert missing.json()["error"]["message"].startswith("Unrecognized request URL")
    assert method.status_code == 405
    assert method.json()["error"]["type"] == "invalid_request_error"


def test_lists_validate_their_paging(client):
    assert client.get("/v1/payment_intents", limit=101).status_code == 400
    assert client.get("/v1/payment_intents", starting_after="pi_missing").json()["error"]["code"] == "resource_missing"
    assert client.get("/v1/payment_intents", colour="red").json()["error"]["code"] == "parameter_unknown"
