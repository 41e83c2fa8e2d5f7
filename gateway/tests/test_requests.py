"""Authentication, input validation and health endpoints."""

from __future__ import annotations

import pytest
import requests

from .conftest import Client, new_key


def test_health_endpoints_need_no_key(shared_gateway):
    assert requests.get(f"{shared_gateway.url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{shared_gateway.url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"sqlite": "ok"}}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk_wrong"}, {"Authorization": "Basic abc"}])
@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/v1/charges"), ("GET", "/v1/ledger"), ("GET", "/_sandbox/config")]
)
def test_requests_without_the_right_key_are_401(shared_gateway, reference, headers, method, path):
    body = {"amount": 100, "currency": "USD", "reference": reference}
    headers = {**headers, "Idempotency-Key": new_key()}

    response = requests.request(method, shared_gateway.url + path, json=body, headers=headers, timeout=5)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["type"] == "authentication_error"
    assert Client(shared_gateway.url).ledger(reference)["charges_succeeded"] == 0


VALID = {"amount": 100, "currency": "USD"}


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"currency": "USD"}, "parameter_missing", "amount"),
        ({"amount": 100}, "parameter_missing", "currency"),
        ({**VALID, "amount": 0}, "parameter_invalid", "amount"),
        ({**VALID, "amount": -5}, "parameter_invalid", "amount"),
        ({**VALID, "amount": 10.5}, "parameter_invalid", "amount"),
        ({**VALID, "amount": "100"}, "parameter_invalid", "amount"),
        ({**VALID, "amount": True}, "parameter_invalid", "amount"),
        ({**VALID, "currency": "usd"}, "parameter_invalid", "currency"),
        ({**VALID, "currency": "US"}, "parameter_invalid", "currency"),
        ({**VALID, "description": 7}, "parameter_invalid", "description"),
        ({**VALID, "metadata": {}}, "parameter_unknown", "metadata"),
    ],
)
def test_invalid_charge_bodies_are_400_and_charge_nothing(client, reference, body, code, param):
    response = client.post("/v1/charges", json={"reference": reference, **body}, key=new_key())

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert client.ledger(reference)["charges_succeeded"] == 0


@pytest.mark.parametrize("reference_value", ["", "   ", 12, "x" * 256])
def test_invalid_reference_is_400(client, reference_value):
    response = client.post("/v1/charges", json={**VALID, "reference": reference_value}, key=new_key())

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "reference"


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b"{"])
def test_bodies_that_are_not_json_objects_are_400(client, data):
    response = client.post("/v1/charges", data=data, key=new_key())

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_oversized_bodies_are_413(client, reference):
    body = {**VALID, "reference": reference, "description": "x" * 70_000}

    response = client.post("/v1/charges", json=body, key=new_key())

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_entity_too_large"


def test_charge_needs_an_idempotency_key(client, reference):
    response = client.post("/v1/charges", json={**VALID, "reference": reference})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_missing"
    assert client.ledger(reference)["charges_succeeded"] == 0


def test_a_400_is_not_remembered_under_its_key(client, reference):
    key = new_key()
    assert client.post("/v1/charges", json={**VALID, "amount": 0, "reference": reference}, key=key).status_code == 400

    assert client.charge(100, reference, key).status_code == 201


def test_listing_charges_needs_a_reference(client):
    response = client.get("/v1/charges")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "reference"


def test_unknown_routes_and_methods_answer_in_the_error_shape(client):
    missing = client.get("/v1/nothing")
    wrong_method = client.get("/v1/charges/ch_x/refunds")

    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]["code"]) == (405, "method_not_allowed")
