"""GET /transactions/<payment_id>: the saga log of one payment, steps in order.

Not only the platform guards it (Cloud Run IAM, a GKE NetworkPolicy): with TRANSACTIONS_API_TOKEN set the
caller must present it as a bearer token, and production without one serves no saga log over HTTP (the
initiator reads Firestore itself; operators use the console). An id that is not a UUID is a 404 before
Firestore is asked.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime

from flask import Blueprint, current_app, jsonify, request

from .bootstrap import build_saga_log
from .web import error_response

bp = Blueprint("transactions", __name__)

_PUBLIC_FIELDS = (
    "payment_id",
    "state",
    "version",
    "intent_id",
    "charge_id",
    "refund_id",
    "user_id",
    "amount",
    "currency",
    "correlation_id",
    "steps_done",
    "key_attempts",
    "fenced",
    "outcome_published",
    "created_at",
    "updated_at",
)


def _refusal():
    settings = current_app.extensions["binpay"].settings
    token = settings.transactions_api_token
    if token is None:
        if settings.is_production:
            return error_response(403, "transactions_api_disabled", "the saga log is not served over HTTP here")
        return None
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
        return error_response(401, "unauthorized", "a valid bearer token is required")
    return None


@bp.get("/transactions/<payment_id>")
def get_transaction(payment_id: str):
    refused = _refusal()
    if refused is not None:
        return refused
    try:
        uuid.UUID(payment_id)
    except ValueError:
        return error_response(404, "not_found", "payment ids are UUIDs")
    binpay = current_app.extensions["binpay"]
    found = build_saga_log(binpay.settings, binpay.clients).read_with_steps(payment_id)
    if found is None:
        return error_response(404, "not_found", f"no saga log for payment {payment_id}")
    doc, steps = found
    body = {name: _jsonable(doc.get(name)) for name in _PUBLIC_FIELDS}
    outcome = doc.get("outcome") or {}
    body["outcome_event"] = outcome.get("event")
    body["steps"] = [{name: _jsonable(value) for name, value in step.items()} for step in steps]
    return jsonify(body)


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value
