"""Request plumbing shared by the blueprints: auth, JSON errors, context for logs, access log."""

from __future__ import annotations

import hmac
import json
import logging
import socket
import time

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import errors
from .logs import correlation_id_var, payment_id_var
from .service import Gateway

logger = logging.getLogger("sandbox_gateway.access")


def gateway() -> Gateway:
    return current_app.extensions["sandbox_gateway"]


def error_response(error: errors.ApiError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    if error.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def require_api_key() -> None:
    """before_request hook for the protected blueprints."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = current_app.config["SANDBOX_SETTINGS"].api_key
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise errors.ApiError(401, "authentication_error", "invalid_api_key", "Missing or invalid API key.")


def json_object_body(*, allow_empty: bool = False) -> dict:
    raw = request.get_data(cache=True)
    if not raw.strip() and allow_empty:
        return {}
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise errors.invalid_request("invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise errors.invalid_request("invalid_json", "The request body must be a JSON object.")
    return payload


def drop_connection() -> bool:
    """Close the client's connection under the server's feet, so the client gets no response.

    The dev server (werkzeug) and gunicorn both put the client socket in the WSGI environ;
    their attempt to write the response then fails with EPIPE, which both treat as a client
    that went away. Returns False when the server offers no socket.
    """
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if sock is None:
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the client has already gone, which is the point
    return True


def register_request_hooks(app: Flask) -> None:
    @app.before_request
    def bind_log_context() -> None:
        g.started = time.monotonic()
        correlation_id_var.set(request.headers.get("X-Correlation-ID") or None)
        payment_id_var.set(request.args.get("reference") or None)

    @app.after_request
    def log_access(response: Response) -> Response:
        logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "http_method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.monotonic() - g.get("started", time.monotonic())) * 1000, 1),
                "idempotency_key": request.headers.get("Idempotency-Key"),
                "idempotent_replayed": response.headers.get("Idempotent-Replayed") == "true",
                "response_dropped": g.get("response_dropped", False),
            },
        )
        return response

    @app.errorhandler(errors.ApiError)
    def handle_api_error(error: errors.ApiError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        code = (error.name or "error").lower().replace(" ", "_")
        return error_response(
            errors.ApiError(error.code or 500, "invalid_request_error", code, error.description or "")
        )

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(errors.ApiError(500, "api_error", "internal_error", "Internal error in the sandbox."))
