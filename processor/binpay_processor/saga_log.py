"""The Firestore saga log (docs/contracts.md, "Firestore saga log").

transactions/{payment_id} holds the state, version, steps_done and the processor's lease;
transactions/{payment_id}/steps/{NN-STEP} is the append-only step log. Every change runs in a
Firestore transaction whose function only reads and writes Firestore (it may run more than once).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.cloud import firestore

from .events import PaymentInitiated

SERVICE = "processor"
RECEIVED = "RECEIVED"
CHARGED = "CHARGED"
CHARGE_DECLINED = "CHARGE_DECLINED"
CHARGE_CANCELED = "CHARGE_CANCELED"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
REFUNDED = "REFUNDED"
PROCESSOR_OUTCOMES = frozenset({COMPLETED, FAILED, REFUNDED})
# Steps with which the initiator settles a payment the processor never finished (reconciler, dead letter).
SETTLED_BY_INITIATOR = frozenset({"COMPENSATED", "NEEDS_ATTENTION"})
_PAYMENT_FIELDS = ("user_id", "amount", "currency")
# Set by the initiator when its reconciler or an operator takes the payment over
# (initiator/payments/saga_log.py fence()): no delivery starts or resumes a fenced saga.
FENCED = "fenced"


class LeaseLost(Exception):
    """Another delivery took over this payment; stop and let Pub/Sub redeliver."""


class ClaimStatus(enum.Enum):
    CLAIMED = "claimed"
    ALREADY_DONE = "already_done"
    BUSY = "busy"
    SETTLED_ELSEWHERE = "settled_elsewhere"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    doc: dict


def step_id(seq: int, step: str) -> str:
    return f"{seq:02d}-{step}"


def _now() -> datetime:
    return datetime.now(UTC)


class SagaLog:
    def __init__(self, db: firestore.Client, collection: str, lease_seconds: float) -> None:
        self.db = db
        self.collection = db.collection(collection)
        self.lease = timedelta(seconds=lease_seconds)

    def claim(self, payment: PaymentInitiated, owner: str) -> Claim:
        """Create the document with RECEIVED on first delivery, and take the lease unless another holds it."""
        ref = self.collection.document(payment.payment_id)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> Claim:
            snapshot = ref.get(transaction=transaction)
            now = _now()
            if not snapshot.exists:
                doc = {
                    "payment_id": payment.payment_id,
                    "user_id": payment.user_id,
                    "amount": payment.amount,
                    "currency": payment.currency,
                    "correlation_id": payment.correlation_id,
                    "initiated_at": payment.created_at,
                    "state": None,
                    "version": 0,
                    "steps_done": [],
                    "charge_id": None,
                    "outcome_published": False,
                    "created_at": firestore.SERVER_TIMESTAMP,
                }
                return Claim(ClaimStatus.CLAIMED, self._write_step(transaction, ref, doc, RECEIVED, {}, owner, now))
            doc = snapshot.to_dict()
            if any(doc.get(name) is not None and doc[name] != getattr(payment, name) for name in _PAYMENT_FIELDS):
                return Claim(ClaimStatus.CONFLICT, doc)
            steps = set(doc.get("steps_done") or [])
            if doc.get("outcome_published"):
                return Claim(ClaimStatus.ALREADY_DONE, doc)
            # A fenced document belongs to the initiator's reconciler (docs/contracts.md): never charge it.
            if not steps & PROCESSOR_OUTCOMES and (steps & SETTLED_BY_INITIATOR or doc.get(FENCED)):
                return Claim(ClaimStatus.SETTLED_ELSEWHERE, doc)
            expires = doc.get("lease_expires_at")
            if doc.get("lease_owner") not in (None, owner) and expires is not None and expires > now:
                return Claim(ClaimStatus.BUSY, doc)
            if RECEIVED not in steps:
                # The initiator created the document first (e.g. a step of its own): fill in the payment.
                for name in (*_PAYMENT_FIELDS, "correlation_id"):
                    doc.setdefault(name, getattr(payment, name))
                doc.setdefault("initiated_at", payment.created_at)
                return Claim(ClaimStatus.CLAIMED, self._write_step(transaction, ref, doc, RECEIVED, {}, owner, now))
            lease = {"lease_owner": owner, "lease_expires_at": now + self.lease}
            transaction.update(ref, lease)
            return Claim(ClaimStatus.CLAIMED, {**doc, **lease})

        return run(self.db.transaction())

    def append_step(self, payment_id: str, owner: str, step: str, detail: dict, fields: dict | None = None) -> dict:
        """Append `step` (once) while holding the lease; returns the document as it stands after the write."""
        ref = self.collection.document(payment_id)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> dict:
            doc = self._leased(ref.get(transaction=transaction), owner)
            if step in (doc.get("steps_done") or []):
                return doc
            doc.update(fields or {})
            return self._write_step(transaction, ref, doc, step, detail, owner, _now())

        return run(self.db.transaction())

    def update(self, payment_id: str, owner: str, fields: dict) -> dict:
        """Set document fields while holding the lease (no step)."""
        ref = self.collection.document(payment_id)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> dict:
            doc = self._leased(ref.get(transaction=transaction), owner)
            transaction.update(ref, {**fields, "updated_at": firestore.SERVER_TIMESTAMP})
            return {**doc, **fields}

        return run(self.db.transaction())

    def mark_published(self, payment_id: str, owner: str, message_id: str) -> None:
        """Record the outcome event as published and give the lease back."""
        ref = self.collection.document(payment_id)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> None:
            doc = ref.get(transaction=transaction).to_dict()
            fields = {
                "outcome_published": True,
                "outcome_message_id": message_id,
                "outcome_published_at": firestore.SERVER_TIMESTAMP,
            }
            if doc.get("lease_owner") == owner:
                fields.update(lease_owner=None, lease_expires_at=None)
            transaction.update(ref, fields)

        run(self.db.transaction())

    def release(self, payment_id: str, owner: str) -> None:
        """Give the lease back early so a redelivery need not wait for it to expire."""
        ref = self.collection.document(payment_id)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> None:
            snapshot = ref.get(transaction=transaction)
            if snapshot.exists and snapshot.get("lease_owner") == owner:
                transaction.update(ref, {"lease_owner": None, "lease_expires_at": None})

        run(self.db.transaction())

    def read(self, payment_id: str) -> tuple[dict, list[dict]] | None:
        ref = self.collection.document(payment_id)
        snapshot = ref.get()
        if not snapshot.exists:
            return None
        steps = [step.to_dict() for step in ref.collection("steps").order_by("seq").stream()]
        return snapshot.to_dict(), steps

    def _leased(self, snapshot: firestore.DocumentSnapshot, owner: str) -> dict:
        doc = snapshot.to_dict() if snapshot.exists else None
        if doc is None or doc.get("lease_owner") != owner:
            raise LeaseLost(f"lease on {snapshot.id} is held by {doc and doc.get('lease_owner')}, not {owner}")
        if doc.get(FENCED):
            raise LeaseLost(f"{snapshot.id} was fenced by the initiator's reconciler: it settles this payment")
        return doc

    def _write_step(
        self,
        transaction: firestore.Transaction,
        ref: firestore.DocumentReference,
        doc: dict,
        step: str,
        detail: dict,
        owner: str,
        now: datetime,
    ) -> dict:
        seq = int(doc.get("version") or 0) + 1
        transaction.create(
            ref.collection("steps").document(step_id(seq, step)),
            {"step": step, "seq": seq, "at": firestore.SERVER_TIMESTAMP, "service": SERVICE, "detail": detail},
        )
        doc = {
            **doc,
            "state": step,
            "version": seq,
            "steps_done": [*(doc.get("steps_done") or []), step],
            "updated_at": firestore.SERVER_TIMESTAMP,
            "lease_owner": owner,
            "lease_expires_at": now + self.lease,
        }
        transaction.set(ref, doc)
        return doc
