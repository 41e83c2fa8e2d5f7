"""Request plumbing shared by the blueprints: auth, Stripe-encoded params, headers, access log."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import socket
import time

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import errors
from .events import API_VERSION
from .forms import Params, nest
from .logs import correlation_id_var, payment_id_var
from .service import Engine, Outcome, new_request_id

logger = logging.getLogger("sandbox_gateway.access")
MAX_KEY_LENGTH = 255


def engine() -> Engine:
    return current_app.extensions["sandbox_gateway"]


def error_response(error: errors.StripeError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="Stripe"'
    return response


def require_api_key() -> None:
    """before_request hook: ``Authorization: Bearer <key>`` (the SDK) or Basic with the key as user (curl -u)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            token = base64.b64decode(token.strip()).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            token = ""
    elif scheme.lower() != "bearer":
        token = ""
    token = token.strip()
    for key in current_app.config["SANDBOX_SETTINGS"].api_keys:
        if token and hmac.compare_digest(token.encode(), key.encode()):
            g.api_key = key
            return
    shown = f"{token[:8]}****{token[-4:]}" if len(token) > 12 else "****"
    raise errors.StripeError(
        401, "invalid_request_error", f"Invalid API Key provided: {shown}" if token else "You did not provide an API key.",
        saved=False,
    )  # fmt: skip


def params() -> Params:
    """The request's parameters: the form body of a POST, the query string of a GET."""
    if request.method == "POST":
        if request.mimetype not in ("", "application/x-www-form-urlencoded"):
            raise errors.invalid_param(
                "Requests must be form-encoded (application/x-www-form-urlencoded), as Stripe's API v1 expects.",
                None,
            )
        pairs = request.form.items(multi=True)
    else:
        pairs = request.args.items(multi=True)
    return Params(nest(pairs))


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None or request.method != "POST":
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise errors.invalid_param(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.", None)
    g.idempotency_key = key
    return key


def respond(outcome: Outcome) -> Response:
    g.faults = outcome.faults
    if outcome.drop_connection:
        g.response_dropped = True
        if drop_connection():
            logger.warning("response dropped on purpose (lost-response simulation)", extra={"status": outcome.status})
        else:
            logger.warning("server exposes no socket to drop; hanging instead (lost-response simulation)")
            outcome = engine().hang_instead_of_dropping()
    response = jsonify(outcome.body)
    response.status_code = outcome.status
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


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
    def bind_request_context() -> None:
        g.started = time.monotonic()
        g.request_id = new_request_id()
        correlation_id_var.set(request.headers.get("X-Correlation-ID") or None)
        payment_id_var.set(request.form.get("metadata[payment_id]") if request.method == "POST" else None)

    @app.after_request
    def headers_and_access_log(response: Response) -> Response:
        response.headers["Request-Id"] = g.get("request_id", "")
        response.headers["Stripe-Version"] = request.headers.get("Stripe-Version", API_VERSION)
        if g.get("idempotency_key"):
            response.headers["Idempotency-Key"] = g.idempotency_key
        faults = g.get("faults", ())
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
                "request_id": g.get("request_id"),
                "idempotency_key": g.get("idempotency_key"),
                "idempotent_replayed": response.headers.get("Idempotent-Replayed") == "true",
                "response_dropped": g.get("response_dropped", False),
                "fault": ",".join(faults) if faults else None,
            },
        )
        return response

    @app.errorhandler(errors.StripeError)
    def handle_stripe_error(error: errors.StripeError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        if error.code == 404:
            message = f"Unrecognized request URL ({request.method}: {request.path})."
        else:
            message = error.description or error.name
        return error_response(errors.StripeError(error.code or 500, "invalid_request_error", message, saved=False))

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(errors.StripeError(500, "api_error", "Internal error in the sandbox.", saved=False))
