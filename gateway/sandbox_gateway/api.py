"""The gateway protocol's /v1 endpoints (docs/contracts.md, "Gateway protocol")."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, g, jsonify, request

from . import errors
from .logs import payment_id_var
from .service import Outcome
from .web import drop_connection, gateway, json_object_body, require_api_key

api = Blueprint("api", __name__, url_prefix="/v1")
api.before_request(require_api_key)
logger = logging.getLogger(__name__)

CHARGE_FIELDS = {"amount", "currency", "reference", "description"}
MAX_AMOUNT = 999_999_999_999
MAX_TEXT = 255
MAX_DESCRIPTION = 1000
CURRENCY = re.compile(r"[A-Z]{3}")


@api.post("/charges")
def create_charge() -> Response:
    key = _idempotency_key()
    payload = _valid_charge(json_object_body())
    payment_id_var.set(payload["reference"])
    outcome = gateway().create_charge(idempotency_key=key, path=request.path, payload=payload)
    return _respond(outcome)


@api.post("/charges/cancel")
def cancel_charge() -> Response:
    payload = json_object_body()
    unknown = sorted(set(payload) - {"charge_idempotency_key"})
    if unknown:
        raise errors.invalid_request("parameter_unknown", f"Unknown parameter: {unknown[0]}.", param=unknown[0])
    key = payload.get("charge_idempotency_key")
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_TEXT:
        raise _invalid(
            "charge_idempotency_key",
            f"charge_idempotency_key must be a non-empty string of at most {MAX_TEXT} characters.",
        )
    return jsonify(gateway().cancel_charge(charge_idempotency_key=key))


@api.get("/charges/<charge_id>")
def get_charge(charge_id: str) -> Response:
    return jsonify(gateway().get_charge(charge_id))


@api.get("/charges")
def list_charges() -> Response:
    reference = request.args.get("reference", "")
    if not reference:
        raise errors.invalid_request(
            "parameter_missing", "The reference query parameter is required.", param="reference"
        )
    return jsonify({"object": "list", "data": gateway().charges_by_reference(reference)})


@api.post("/charges/<charge_id>/refunds")
def refund_charge(charge_id: str) -> Response:
    key = _idempotency_key()
    payload = json_object_body(allow_empty=True)
    if payload:
        # Full refunds only: the body is {} (docs/contracts.md).
        param = sorted(payload)[0]
        raise errors.invalid_request(
            "parameter_unknown", f"Unknown parameter: {param}; refunds take {{}}.", param=param
        )
    outcome = gateway().refund_charge(charge_id=charge_id, idempotency_key=key, path=request.path, payload=payload)
    return _respond(outcome)


@api.get("/ledger")
def ledger() -> Response:
    reference = request.args.get("reference") or None
    return jsonify({"object": "list", "data": gateway().ledger(reference)})


def _respond(outcome: Outcome) -> Response:
    if outcome.drop_connection:
        g.response_dropped = True
        if drop_connection():
            logger.warning("response dropped on purpose (lost-response simulation)", extra={"status": outcome.status})
        else:
            logger.warning("server exposes no socket to drop; hanging instead (lost-response simulation)")
            outcome = gateway().hang_instead_of_dropping()
    response = jsonify(outcome.body)
    response.status_code = outcome.status
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _idempotency_key() -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise errors.invalid_request("idempotency_key_missing", "The Idempotency-Key header is required.")
    if len(key) > MAX_TEXT:
        raise errors.invalid_request("idempotency_key_invalid", f"The Idempotency-Key is longer than {MAX_TEXT}.")
    return key


def _valid_charge(payload: dict) -> dict:
    unknown = sorted(set(payload) - CHARGE_FIELDS)
    if unknown:
        raise errors.invalid_request("parameter_unknown", f"Unknown parameter: {unknown[0]}.", param=unknown[0])
    for name in ("amount", "currency", "reference"):
        if name not in payload:
            raise errors.invalid_request("parameter_missing", f"Missing required parameter: {name}.", param=name)
    amount = payload["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise _invalid("amount", f"amount must be an integer number of minor units between 1 and {MAX_AMOUNT}.")
    currency = payload["currency"]
    if not isinstance(currency, str) or not CURRENCY.fullmatch(currency):
        raise _invalid("currency", "currency must be an upper-case ISO 4217 code such as USD.")
    reference = payload["reference"]
    if not isinstance(reference, str) or not reference.strip() or len(reference) > MAX_TEXT:
        raise _invalid("reference", f"reference must be a non-empty string of at most {MAX_TEXT} characters.")
    description = payload.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        raise _invalid("description", f"description must be a string of at most {MAX_DESCRIPTION} characters.")
    return payload


def _invalid(param: str, message: str) -> errors.ApiError:
    return errors.invalid_request("parameter_invalid", message, param=param)
