"""GET /transactions/<payment_id>: the saga log of one payment, steps in order."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, current_app, jsonify

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


@bp.get("/transactions/<payment_id>")
def get_transaction(payment_id: str):
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
