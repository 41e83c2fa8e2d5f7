"""The Firestore saga log (docs/contracts.md, "Firestore saga log").

transactions/{payment_id} holds the state, version, steps_done and the processor's lease;
transactions/{payment_id}/steps/{NN-STEP} is the append-only step log. Every change runs in a
Firestore transaction whose function only reads and writes Firestore (it may run more than once),
or, where the delivery knows the document as it last wrote it, as one write whose precondition is
that the document has not changed since (its update time): the same checks hold, without the read.
The first delivery creates the document with a create-only precondition. Any failed precondition
falls back to the transaction, which reads the document and decides as before.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.api_core import exceptions as google_exceptions
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
# In the document dicts SagaLog returns (never stored): the update time of the document as this
# delivery last wrote it, the precondition of its next write.
UPDATE_TIME = "_update_time"


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


def _new_document(payment: PaymentInitiated) -> dict:
    """The parent document of a payment's first delivery (contracts/saga-log/transaction.schema.json)."""
    return {
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


def _now() -> datetime:
    return datetime.now(UTC)


class SagaLog:
    def __init__(self, db: firestore.Client, collection: str, lease_seconds: float) -> None:
        self.db = db
        self.collection = db.collection(collection)
        self.lease = timedelta(seconds=lease_seconds)

    def claim(self, payment: PaymentInitiated, owner: str) -> Claim:
        """Create the document with RECEIVED on first delivery, and take the lease unless another holds it."""
        created = self._create_received(payment, owner)
        if created is not None:
            return Claim(ClaimStatus.CLAIMED, created)
        ref = self.collection.document(payment.payment_id)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> Claim:
            snapshot = ref.get(transaction=transaction)
            now = _now()
            if not snapshot.exists:
                doc = _new_document(payment)
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

        transaction = self.db.transaction()
        claim = run(transaction)
        return Claim(claim.status, _with_update_time(claim.doc, transaction))

    def _create_received(self, payment: PaymentInitiated, owner: str) -> dict | None:
        """First delivery: create the document with RECEIVED in one write; None if it exists already."""
        ref = self.collection.document(payment.payment_id)
        doc = _new_document(payment)
        step_doc, doc = self._next_step(doc, RECEIVED, {}, owner, _now())
        batch = self.db.batch()
        batch.create(ref, doc)
        batch.create(ref.collection("steps").document(step_id(doc["version"], RECEIVED)), step_doc)
        try:
            results = batch.commit()
        except google_exceptions.Conflict:
            return None
        return {**doc, UPDATE_TIME: results[0].update_time}

    def append_step(
        self,
        payment_id: str,
        owner: str,
        step: str,
        detail: dict,
        fields: dict | None = None,
        known: dict | None = None,
    ) -> dict:
        """Append `step` (once) while holding the lease; returns the document as it stands after the write.

        `known`: the document as this delivery last got it from the log (one write instead of a transaction).
        """
        return self.append_steps(payment_id, owner, [(step, detail, fields or {})], known)

    def append_steps(
        self, payment_id: str, owner: str, steps: list[tuple[str, dict, dict]], known: dict | None = None
    ) -> dict:
        """Append (step, detail, fields) in order, each once, in one commit while holding the lease."""
        if known is not None and known.get(UPDATE_TIME) is not None and not known.get(FENCED):
            written = self._append_unchanged(payment_id, owner, steps, known)
            if written is not None:
                return written
        ref = self.collection.document(payment_id)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> dict:
            doc = self._leased(ref.get(transaction=transaction), owner)
            now = _now()
            for step, detail, fields in steps:
                if step not in (doc.get("steps_done") or []):
                    doc = self._write_step(transaction, ref, {**doc, **fields}, step, detail, owner, now)
            return doc

        transaction = self.db.transaction()
        return _with_update_time(run(transaction), transaction)

    def _append_unchanged(
        self, payment_id: str, owner: str, steps: list[tuple[str, dict, dict]], known: dict
    ) -> dict | None:
        """The steps as one write on the condition that nobody changed the document since `known`.

        Unchanged since this delivery's own last write means: its lease, not fenced, the steps it
        saw. Returns None when the condition fails (the caller falls back to the transaction).
        """
        if known.get("lease_owner") != owner:
            return None
        ref = self.collection.document(payment_id)
        batch = self.db.batch()
        doc, changed, now = dict(known), {}, _now()
        doc.pop(UPDATE_TIME)
        for step, detail, fields in steps:
            if step in (doc.get("steps_done") or []):
                continue
            doc.update(fields)
            changed.update(fields)
            step_doc, doc = self._next_step(doc, step, detail, owner, now)
            batch.create(ref.collection("steps").document(step_id(doc["version"], step)), step_doc)
            changed.update({name: doc[name] for name in _STEP_FIELDS})
        if not changed:
            return known
        batch.update(ref, changed, option=self.db.write_option(last_update_time=known[UPDATE_TIME]))
        try:
            results = batch.commit()
        except (google_exceptions.FailedPrecondition, google_exceptions.Conflict):
            return None
        return {**doc, UPDATE_TIME: results[-1].update_time}

    def update(self, payment_id: str, owner: str, fields: dict) -> dict:
        """Set document fields while holding the lease (no step)."""
        ref = self.collection.document(payment_id)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> dict:
            doc = self._leased(ref.get(transaction=transaction), owner)
            transaction.update(ref, {**fields, "updated_at": firestore.SERVER_TIMESTAMP})
            return {**doc, **fields}

        return run(self.db.transaction())

    def mark_published(self, payment_id: str, owner: str, message_id: str, known: dict | None = None) -> None:
        """Record the outcome event as published and give the lease back."""
        ref = self.collection.document(payment_id)
        published = {
            "outcome_published": True,
            "outcome_message_id": message_id,
            "outcome_published_at": firestore.SERVER_TIMESTAMP,
        }
        if known is not None and known.get(UPDATE_TIME) is not None and known.get("lease_owner") == owner:
            try:
                ref.update(
                    {**published, "lease_owner": None, "lease_expires_at": None},
                    option=self.db.write_option(last_update_time=known[UPDATE_TIME]),
                )
                return
            except (google_exceptions.FailedPrecondition, google_exceptions.Conflict):
                pass  # changed since (e.g. the initiator logged its step): read and decide below

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> None:
            doc = ref.get(transaction=transaction).to_dict()
            fields = dict(published)
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
        step_doc, doc = self._next_step(doc, step, detail, owner, now)
        transaction.create(ref.collection("steps").document(step_id(doc["version"], step)), step_doc)
        transaction.set(ref, doc)
        return doc

    def _next_step(self, doc: dict, step: str, detail: dict, owner: str, now: datetime) -> tuple[dict, dict]:
        """The step document for `step` and the parent document after it."""
        seq = int(doc.get("version") or 0) + 1
        step_doc = {"step": step, "seq": seq, "at": firestore.SERVER_TIMESTAMP, "service": SERVICE, "detail": detail}
        doc = {
            **doc,
            "state": step,
            "version": seq,
            "steps_done": [*(doc.get("steps_done") or []), step],
            "updated_at": firestore.SERVER_TIMESTAMP,
            "lease_owner": owner,
            "lease_expires_at": now + self.lease,
        }
        return step_doc, doc


# The parent fields a step changes (besides the step's own fields).
_STEP_FIELDS = ("state", "version", "steps_done", "updated_at", "lease_owner", "lease_expires_at")


def _with_update_time(doc: dict, transaction: firestore.Transaction) -> dict:
    """`doc` with the update time the transaction's last write (always the parent document) gave it."""
    results = getattr(transaction, "write_results", None)
    return {**doc, UPDATE_TIME: results[-1].update_time} if results else doc
