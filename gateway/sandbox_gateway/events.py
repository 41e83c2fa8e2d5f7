"""Events, webhook endpoints and signed deliveries, as Stripe documents them.

- Event object: id ``evt_...``, ``type``, ``data.object`` (a snapshot of the object),
  ``data.previous_attributes`` on updates, ``request {id, idempotency_key}``
  (https://docs.stripe.com/api/events/object).
- Signature: header ``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>" with
  the endpoint's whsec_ secret>`` (https://docs.stripe.com/webhooks#verify-manually); the SDK's
  ``stripe.Webhook.construct_event`` checks it and that ``t`` is within 300 s of the receiver's
  clock, so ``t`` is the wall clock of the delivery attempt, never the sandbox clock.
- Retries: an endpoint that does not answer 2xx is retried with exponential backoff for up to
  three days (https://docs.stripe.com/webhooks/process-undelivered-events). The sandbox's first
  retry waits ``sandbox_webhook_retry_seconds`` and doubles (Stripe's real schedule is slower).
- Order and duplicates: Stripe does not guarantee delivery order and may deliver an event more
  than once (https://docs.stripe.com/webhooks#handle-duplicate-events); the knobs
  ``sandbox_webhook_delay_rate`` / ``_duplicate_rate`` / ``_drop_rate`` make that happen on demand.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
from dataclasses import dataclass

from .store import public

logger = logging.getLogger("sandbox_gateway.webhooks")

API_VERSION = "2026-10-28.endive"  # the version stripe-python 16.1.0 pins; events carry the account's
RETRY_WINDOW_SECONDS = 3 * 24 * 3600
ENV_ENDPOINT_ID = "we_sandbox_environment"
EVENT_TYPES = (
    "payment_intent.created",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
    "charge.succeeded",
    "charge.failed",
    "charge.pending",
    "charge.captured",
    "charge.expired",
    "charge.refunded",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
)


@dataclass(frozen=True)
class WebhookFaults:
    drop: bool
    duplicate: bool
    delay_seconds: float


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(18).replace('-', 'A').replace('_', 'B')}"


def record(
    conn: sqlite3.Connection,
    *,
    event_type: str,
    obj: dict,
    now: int,
    request_id: str | None,
    idempotency_key: str | None,
    faults,
    subscriptions: list[tuple[str, list[str]]],
    previous: dict | None = None,
) -> bool:
    """Store an event and queue a delivery per endpoint that wants it; True if any was queued.

    ``subscriptions`` are the endpoints' (id, enabled_events); ``faults`` is called once per
    delivery and answers its WebhookFaults.
    """
    event_id = new_id("evt")
    endpoints = [endpoint_id for endpoint_id, enabled in subscriptions if _wants(enabled, event_type)]
    data: dict = {"object": public(obj)}
    if previous is not None:
        data["previous_attributes"] = previous
    event = {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": now,
        "data": data,
        "livemode": False,
        "pending_webhooks": len(endpoints),
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": event_type,
    }
    conn.execute(
        "INSERT INTO events (id, type, created, body) VALUES (?, ?, ?, ?)",
        (event_id, event_type, now, json.dumps(event, separators=(",", ":"))),
    )
    queued = False
    for endpoint in endpoints:
        fault: WebhookFaults = faults()
        if fault.drop:
            logger.warning(
                "webhook delivery dropped (simulated)",
                extra={"fault": "webhook_drop", "event_id": event_id, "event_type": event_type},
            )
            continue
        copies = 2 if fault.duplicate else 1
        for _ in range(copies):
            conn.execute(
                "INSERT INTO deliveries (event_id, endpoint_id, due_at, expires_at, status) VALUES (?, ?, ?, ?, 'pending')",
                (event_id, endpoint, now + fault.delay_seconds, now + RETRY_WINDOW_SECONDS),
            )
        if fault.duplicate:
            logger.warning(
                "webhook delivery duplicated (simulated)",
                extra={"fault": "webhook_duplicate", "event_id": event_id, "event_type": event_type},
            )
        if fault.delay_seconds:
            logger.warning(
                "webhook delivery delayed (simulated)",
                extra={
                    "fault": "webhook_delay",
                    "event_id": event_id,
                    "event_type": event_type,
                    "delay_seconds": fault.delay_seconds,
                },
            )
        queued = True
    return queued


def subscriptions(conn: sqlite3.Connection) -> list[tuple[str, list[str]]]:
    """Every webhook endpoint's id and enabled_events."""
    rows = conn.execute("SELECT id, body FROM objects WHERE type = 'webhook_endpoint'")
    return [(row["id"], json.loads(row["body"])["enabled_events"]) for row in rows]


def _wants(enabled_events: list[str], event_type: str) -> bool:
    return "*" in enabled_events or event_type in enabled_events


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def endpoint_object(*, endpoint_id: str, url: str, enabled_events: list[str], secret: str, now: int, **extra) -> dict:
    return {
        "id": endpoint_id,
        "object": "webhook_endpoint",
        "api_version": None,
        "created": now,
        "description": extra.get("description"),
        "enabled_events": enabled_events,
        "livemode": False,
        "metadata": extra.get("metadata") or {},
        "status": "enabled",
        "url": url,
        "_secret": secret,
    }
