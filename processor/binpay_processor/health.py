"""GET /healthz (the process answers) and GET /readyz (Firestore and Pub/Sub answer, quickly).

/readyz may only use what the processor's own roles grant (deploy/iam.json: roles/datastore.user,
roles/pubsub.publisher on the outcome topics); a check needing more never turns ready on GKE.
- Firestore: one document read, datastore.entities.get (roles/datastore.user).
- Pub/Sub: the publisher's gRPC channel connects; no API call, so no permission. roles/pubsub.publisher
  grants only pubsub.topics.publish (not pubsub.topics.get), and a probe message would reach the
  initiator's consumers.
"""

from __future__ import annotations

import logging

import grpc
from flask import Blueprint, current_app, jsonify

logger = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

CHECK_TIMEOUT_SECONDS = 2.0


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    binpay = current_app.extensions["binpay"]
    settings, clients = binpay.settings, binpay.clients
    checks = {}
    try:
        # Any document read proves the database answers; a missing document is fine.
        clients.firestore.collection(settings.firestore_collection).document("_readyz").get(
            retry=None, timeout=CHECK_TIMEOUT_SECONDS
        )
        checks["firestore"] = "ok"
    except Exception as error:
        logger.warning("readiness: firestore unreachable: %s", error)
        checks["firestore"] = f"error: {type(error).__name__}"
    try:
        grpc.channel_ready_future(clients.publisher.transport.grpc_channel).result(timeout=CHECK_TIMEOUT_SECONDS)
        checks["pubsub"] = "ok"
    except Exception as error:
        logger.warning("readiness: pubsub unreachable: %s", error)
        checks["pubsub"] = f"error: {type(error).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return jsonify({"status": "ok" if ready else "unavailable", "checks": checks}), 200 if ready else 503
