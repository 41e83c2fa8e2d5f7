"""The payment's saga log in Firestore (layout in docs/contracts.md).

The initiator appends CAPTURED / COMPENSATED (and NEEDS_ATTENTION) steps and reads the log for
GET /payments/<id>. A step is written only while it is not in the document's `steps_done` (read
and write under one condition), so a replayed step is detected, never duplicated.
"""

import logging
import random
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from google.api_core import exceptions as google_exceptions
from google.cloud import firestore

from payments import clients
from payments.models import Payment

logger = logging.getLogger(__name__)

STEP_CAPTURED = "CAPTURED"
STEP_COMPENSATED = "COMPENSATED"
STEP_NEEDS_ATTENTION = "NEEDS_ATTENTION"
# Steps the initiator writes for what it learned from the gateway itself (reconciler, operators).
STEP_CHARGED = "CHARGED"
STEP_CHARGE_DECLINED = "CHARGE_DECLINED"
STEP_CHARGE_CANCELED = "CHARGE_CANCELED"
STEP_REFUNDED = "REFUNDED"
# The processor's outcome steps.
STEP_COMPLETED = "COMPLETED"
STEP_FAILED = "FAILED"
SERVICE_NAME = "initiator"
# The field that tells the processor the initiator took the payment over: its claim
# (processor/binpay_processor/saga_log.py) refuses a fenced document, its step writes stop.
FENCED = "fenced"
# Set by the processor once the payment's outcome event is published.
OUTCOME_PUBLISHED = "outcome_published"
CONTENTION_ROUNDS = 4
# A processor lease counts as live until this long after it expires (clock skew between services).
LEASE_GRACE = timedelta(seconds=30)


def _document(payment_id) -> firestore.DocumentReference:
    return clients.firestore_client().collection(settings.FIRESTORE_COLLECTION).document(str(payment_id))


def step_id(seq: int, step: str) -> str:
    """The step document's id (contracts/saga-log/step.schema.json): two-digit seq and step name."""
    return f"{seq:02d}-{step}"


def _new_document(payment: Payment) -> dict:
    """The parent document when the initiator writes first (contracts/saga-log/transaction.schema.json)."""
    return {
        "payment_id": str(payment.pk),
        "user_id": payment.user_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "correlation_id": payment.correlation_id,
        "state": None,
        "version": 0,
        "steps_done": [],
        "charge_id": payment.charge_id,
        "created_at": firestore.SERVER_TIMESTAMP,
        "updated_at": firestore.SERVER_TIMESTAMP,
    }


def ensure_step(*, payment: Payment, step: str, detail: dict) -> bool:
    """Append `step` unless the log already has it. Returns True if this call wrote it.

    One read and one conditional commit: the step is written on the condition that the document is
    unchanged since the read (or still absent). A document changed meanwhile (the processor, another
    redelivery) is done again in a transaction, which reads and writes under Firestore's lock.
    """
    document = _document(payment.pk)
    client = clients.firestore_client()
    snapshot = document.get(timeout=settings.FIRESTORE_TIMEOUT_SECONDS)
    current = snapshot.to_dict() if snapshot.exists else None
    if current is not None and step in (current.get("steps_done") or []):
        logger.info("saga log: %s already present", step)
        return False
    batch = client.batch()
    unchanged = client.write_option(last_update_time=snapshot.update_time) if snapshot.exists else None
    _append(batch, document, payment, current, step, detail, option=unchanged)
    try:
        batch.commit(timeout=settings.FIRESTORE_TIMEOUT_SECONDS)
        written = True
    except (google_exceptions.FailedPrecondition, google_exceptions.Conflict, google_exceptions.Aborted):
        # Changed since the read, or a transaction holds it now.
        logger.debug("saga log: the document changed since it was read; writing %s in a transaction", step)

        @firestore.transactional
        def append(transaction: firestore.Transaction) -> bool:
            snapshot = document.get(transaction=transaction, timeout=settings.FIRESTORE_TIMEOUT_SECONDS)
            current = snapshot.to_dict() if snapshot.exists else None
            if current is not None and step in (current.get("steps_done") or []):
                return False
            _append(transaction, document, payment, current, step, detail)
            return True

        written = _with_contention_retries(lambda: append(client.transaction()))
    logger.info("saga log: %s %s", step, "written" if written else "already present")
    return written


def _append(writes, document, payment: Payment, current: dict | None, step: str, detail: dict, option=None) -> None:
    """Add the step and the parent's new fields to `writes` (a batch or a transaction).

    `current`: the document as read (None: absent). `option`: the precondition of the parent's update.
    """
    known = current or {}
    seq = int(known.get("version") or 0) + 1
    writes.create(
        document.collection("steps").document(step_id(seq, step)),
        {"step": step, "seq": seq, "at": firestore.SERVER_TIMESTAMP, "service": SERVICE_NAME, "detail": detail},
    )
    parent = {
        "state": step,
        "version": seq,
        "steps_done": [*(known.get("steps_done") or []), step],
        "updated_at": firestore.SERVER_TIMESTAMP,
    }
    if detail.get("charge_id") and not known.get("charge_id"):
        parent["charge_id"] = detail["charge_id"]
    if current is None:
        # Normally the processor creates the document at RECEIVED; never leave a step without its parent.
        writes.create(document, {**_new_document(payment), **parent})
    else:
        writes.update(document, parent, option=option)


def _with_contention_retries(run):
    for attempt in range(1, CONTENTION_ROUNDS + 1):
        try:
            return run()
        except (google_exceptions.Aborted, ValueError):
            # The client gives up after its own quick retries ("Failed to commit transaction in 5
            # attempts") while other writers hold the document: back off with jitter and try again.
            if attempt == CONTENTION_ROUNDS:
                raise
            time.sleep(random.uniform(0.1, 0.4) * attempt)
    raise AssertionError("unreachable")


def lease_live(document: dict) -> bool:
    """A processor delivery holds the payment (its lease, plus LEASE_GRACE for clock skew)."""
    lease_expires_at = document.get("lease_expires_at")
    return lease_expires_at is not None and lease_expires_at + LEASE_GRACE > datetime.now(UTC)


def processor_finished(document: dict) -> bool:
    """The processor published its outcome event (the flag it sets after the publish)."""
    return bool(document.get(OUTCOME_PUBLISHED))


def fence(*, payment: Payment) -> bool:
    """Set `fenced: true` on the payment's document so no processor starts (or resumes) its saga.

    Creates the document when the processor never saw the payment. Returns False, writing nothing,
    while a processor lease is live (lease_expires_at + LEASE_GRACE in the future): try next run.
    """
    document = _document(payment.pk)
    client = clients.firestore_client()

    @firestore.transactional
    def apply(transaction: firestore.Transaction) -> bool:
        snapshot = document.get(transaction=transaction, timeout=settings.FIRESTORE_TIMEOUT_SECONDS)
        if not snapshot.exists:
            transaction.set(document, {**_new_document(payment), FENCED: True, "fenced_at": firestore.SERVER_TIMESTAMP})
            return True
        current = snapshot.to_dict() or {}
        if lease_live(current):
            return False
        if not current.get(FENCED):
            transaction.update(
                document,
                {FENCED: True, "fenced_at": firestore.SERVER_TIMESTAMP, "updated_at": firestore.SERVER_TIMESTAMP},
            )
        return True

    fenced = _with_contention_retries(lambda: apply(client.transaction()))
    logger.info("saga log: %s", "fenced" if fenced else "processor lease is live; not fenced")
    return fenced


def read_document(payment_id) -> dict:
    """The payment's saga-log document (empty when there is none)."""
    snapshot = _document(payment_id).get(timeout=settings.FIRESTORE_TIMEOUT_SECONDS)
    return (snapshot.to_dict() or {}) if snapshot.exists else {}


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def read_saga_log(payment_id) -> dict | None:
    """{"state", "version", "steps": [...]} or None when the processor has not logged anything yet."""
    document = _document(payment_id)
    snapshot = document.get(timeout=settings.FIRESTORE_TIMEOUT_SECONDS)
    if not snapshot.exists:
        return None
    data = snapshot.to_dict()
    steps = [
        _plain(
            {
                "step": step.get("step"),
                "seq": step.get("seq"),
                "at": step.get("at"),
                "service": step.get("service"),
                "detail": step.get("detail") or {},
            }
        )
        for step in (
            s.to_dict()
            for s in document.collection("steps").order_by("seq").stream(timeout=settings.FIRESTORE_TIMEOUT_SECONDS)
        )
    ]
    return {"state": data.get("state"), "version": data.get("version"), "steps": steps}
