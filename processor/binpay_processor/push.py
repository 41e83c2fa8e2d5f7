"""POST /pubsub/push: Pub/Sub push deliveries of payment.initiated (Cloud Run).

Answers: 200 handled or poison (Pub/Sub acks), 429 another delivery still holds the payment after
waiting for its lease, 500/503 transient (Pub/Sub redelivers with backoff), 400 not a push envelope,
401/403 bad OIDC token (binpay_common.oidc), 503 its certificates could not be fetched.
"""

from __future__ import annotations

import base64
import binascii
import logging

from binpay_common.oidc import ExpectedCaller, Refusal, TokenRefused, verify_caller
from flask import Blueprint, current_app, jsonify, request

from .saga import Disposition
from .web import error_response

logger = logging.getLogger(__name__)
bp = Blueprint("push", __name__)

# The processor's error codes for each reason a push token is refused.
_REFUSAL_CODES = {
    Refusal.MISSING: "unauthenticated",
    Refusal.INVALID: "unauthenticated",
    Refusal.WRONG_ACCOUNT: "forbidden",
    Refusal.UNAVAILABLE: "token_verification_unavailable",
}
_STATUS = {
    Disposition.DONE: 200,
    Disposition.POISON: 200,
    Disposition.BUSY: 429,
    Disposition.RETRY: 503,
    Disposition.CRASH: 500,
}


@bp.post("/pubsub/push")
def pubsub_push():
    settings = current_app.extensions["binpay"].settings
    if settings.pubsub_push_audience:
        expected = ExpectedCaller(
            audience=settings.pubsub_push_audience,
            service_account=settings.pubsub_push_service_account,
            certs_url=settings.pubsub_push_certs_url,
            behind_cloud_run_iam=settings.behind_cloud_run_iam,
        )
        try:
            verify_caller(request.headers, expected)
        except TokenRefused as refused:
            return error_response(refused.status, _REFUSAL_CODES[refused.refusal], refused.message)
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
    # A payment another delivery holds is waited for inside the request: each 429 burns a delivery
    # attempt, and a crashed delivery's lease outlasts Pub/Sub's retries.
    result = processor.handle_waiting_out_leases(
        data,
        attributes,
        delivery_attempt,
        message.get("messageId") or message.get("message_id"),
        settings.push_lease_wait_seconds(),
    )
    return jsonify({"status": result.disposition.value, "detail": result.detail}), _STATUS[result.disposition]
