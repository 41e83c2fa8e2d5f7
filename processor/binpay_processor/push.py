"""POST /pubsub/push: Pub/Sub push deliveries of payment.initiated (Cloud Run).

Answers: 200 handled or poison (Pub/Sub acks), 429 another delivery holds the payment, 500/503
transient (Pub/Sub redelivers with backoff), 400 not a push envelope, 401/403 bad OIDC token.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time

import requests
from flask import Blueprint, current_app, jsonify, request
from google.auth import exceptions as auth_exceptions
from google.auth.transport import requests as auth_requests
from google.oauth2 import id_token

from .saga import Disposition

logger = logging.getLogger(__name__)
bp = Blueprint("push", __name__)

_STATUS = {
    Disposition.DONE: 200,
    Disposition.POISON: 200,
    Disposition.BUSY: 429,
    Disposition.RETRY: 503,
    Disposition.CRASH: 500,
}


def error_response(status: int, code: str, message: str):
    return jsonify({"error": {"code": code, "message": message}}), status


@bp.post("/pubsub/push")
def pubsub_push():
    settings = current_app.extensions["binpay"].settings
    if settings.pubsub_push_audience:
        rejection = _verify_oidc(settings)
        if rejection is not None:
            return rejection
    elif settings.is_production:
        # Fail closed: a forged payment.initiated would make us charge the gateway.
        return error_response(403, "push_auth_not_configured", "push needs PUBSUB_PUSH_AUDIENCE in production")
    envelope = request.get_json(silent=True)
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        return error_response(400, "invalid_envelope", "body is not a Pub/Sub push envelope")
    try:
        data = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        logger.error("poison message acknowledged without processing: data is not base64")
        return jsonify({"status": Disposition.POISON.value, "detail": "data is not base64"}), 200
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict):
        attributes = {}
    delivery_attempt = envelope.get("deliveryAttempt")
    processor = current_app.extensions["binpay"].processor
    result = processor.handle_payment_initiated(
        data, attributes, delivery_attempt, message.get("messageId") or message.get("message_id")
    )
    return jsonify({"status": result.disposition.value, "detail": result.detail}), _STATUS[result.disposition]


class _CachingRequest(auth_requests.Request):
    """Fetches Google's (or the configured) signing certificates at most every few minutes, not per push."""

    TTL_SECONDS = 300

    def __init__(self) -> None:
        super().__init__(session=requests.Session())
        self._cache: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def __call__(self, url, method="GET", body=None, headers=None, timeout=10, **kwargs):
        if method != "GET":
            return super().__call__(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        with self._lock:
            cached = self._cache.get(url)
            if cached and cached[0] > time.monotonic():
                return cached[1]
        response = super().__call__(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        if response.status == 200:
            with self._lock:
                self._cache[url] = (time.monotonic() + self.TTL_SECONDS, response)
        return response


_certs_request = _CachingRequest()


def _verify_oidc(settings):
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        logger.warning("push rejected: no bearer token")
        return error_response(401, "unauthenticated", "missing bearer token")
    kwargs = {"audience": settings.pubsub_push_audience}
    if settings.pubsub_push_certs_url:
        kwargs["certs_url"] = settings.pubsub_push_certs_url
    try:
        claims = id_token.verify_token(token, _certs_request, **kwargs)
    except (ValueError, auth_exceptions.GoogleAuthError) as error:
        logger.warning("push rejected: invalid token: %s", error)
        return error_response(401, "unauthenticated", "invalid token")
    if claims.get("email") != settings.pubsub_push_service_account or claims.get("email_verified") is not True:
        logger.warning("push rejected: token of %s is not the push service account", claims.get("email"))
        return error_response(403, "forbidden", "token is not from the push service account")
    return None
