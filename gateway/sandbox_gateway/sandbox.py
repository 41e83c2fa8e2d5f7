"""The sandbox's own controls: fault knobs and the clock (GET to read, POST to change).

POSTs are refused (403) unless SANDBOX_ALLOW_CONFIG=true. Bodies here are JSON: these routes
are the sandbox's, not Stripe's.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, current_app, jsonify, request

from . import errors
from .web import engine, require_api_key

sandbox = Blueprint("sandbox", __name__, url_prefix="/_sandbox")
sandbox.before_request(require_api_key)
logger = logging.getLogger(__name__)
MAX_ADVANCE_SECONDS = 400 * 24 * 3600


@sandbox.get("/config")
def read_config() -> Response:
    return jsonify(_config_body())


@sandbox.post("/config")
def update_config() -> Response:
    _require_config_allowed()
    payload = _json_object()
    try:
        knobs = engine().knobs.update(payload)
    except ValueError as error:
        raise errors.invalid_param(str(error), None, "parameter_invalid") from None
    logger.warning("sandbox knobs changed", extra=knobs.public())
    return jsonify(_config_body())


@sandbox.get("/clock")
def read_clock() -> Response:
    conn = engine().store.connection()
    return jsonify(_clock_body(engine().now(conn)))


@sandbox.post("/clock")
def advance_clock() -> Response:
    """``{"advance_seconds": N}``: moves the sandbox clock forward and applies what fell due."""
    _require_config_allowed()
    payload = _json_object()
    unknown = sorted(set(payload) - {"advance_seconds"})
    if unknown:
        raise errors.unknown_param(unknown[0])
    seconds = payload.get("advance_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= MAX_ADVANCE_SECONDS:
        raise errors.invalid_param(
            f"advance_seconds must be a number greater than 0 and at most {MAX_ADVANCE_SECONDS}.",
            "advance_seconds",
            "parameter_invalid",
        )
    now = engine().advance_clock(float(seconds))
    logger.warning("sandbox clock advanced", extra={"advance_seconds": seconds, "sandbox_now": now})
    return jsonify(_clock_body(now))


def _clock_body(now: float) -> dict:
    conn = engine().store.connection()
    offset = conn.execute("SELECT offset_seconds FROM clock WHERE id = 1").fetchone()[0]
    return {"now": int(now), "offset_seconds": offset}


def _require_config_allowed() -> None:
    if not current_app.config["SANDBOX_SETTINGS"].allow_config:
        raise errors.StripeError(
            403, "invalid_request_error", "Set SANDBOX_ALLOW_CONFIG=true to change the sandbox.",
            code="config_locked", saved=False,
        )  # fmt: skip


def _json_object() -> dict:
    try:
        payload = json.loads(request.get_data(cache=True) or b"null")
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict):
        raise errors.invalid_param("The request body must be a JSON object.", None, "invalid_json")
    return payload


def _config_body() -> dict:
    settings = current_app.config["SANDBOX_SETTINGS"]
    return {**engine().knobs.current().public(), "sandbox_allow_config": settings.allow_config}
