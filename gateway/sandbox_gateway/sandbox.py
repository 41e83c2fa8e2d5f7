"""GET/POST /_sandbox/config: the chaos knobs at run time (docs/contracts.md)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify

from . import errors
from .web import gateway, json_object_body, require_api_key

sandbox = Blueprint("sandbox", __name__, url_prefix="/_sandbox")
sandbox.before_request(require_api_key)
logger = logging.getLogger(__name__)


@sandbox.get("/config")
def read_config() -> Response:
    return jsonify(_config_body())


@sandbox.post("/config")
def update_config() -> Response:
    if not current_app.config["SANDBOX_SETTINGS"].allow_config:
        raise errors.ApiError(
            403, "permission_error", "config_locked", "Set SANDBOX_ALLOW_CONFIG=true to change knobs."
        )
    payload = json_object_body()
    try:
        knobs = gateway().knobs.update(payload)
    except ValueError as error:
        raise errors.invalid_request("parameter_invalid", str(error)) from None
    logger.warning("sandbox knobs changed", extra=knobs.public())
    return jsonify(_config_body())


def _config_body() -> dict:
    settings = current_app.config["SANDBOX_SETTINGS"]
    return {**gateway().knobs.current().public(), "sandbox_allow_config": settings.allow_config}
