"""The Firestore saga log's document primitives, for both services (docs/protocol.md §2, §5).

transactions/{payment_id} holds the payment's fields, the step identities done, the claim (lease)
and the fence; transactions/{payment_id}/steps/{NN-STEP} is the append-only step log. Every change is
conditional: in a Firestore transaction whose function only reads and writes Firestore (it may run
more than once), or as one write whose precondition is the document's update time as the writer
last saw it — any change since (another claim, a fence, another writer's step) fails it and the
write falls back to the transaction, which reads and decides again.

- A **processor delivery** claims a payment that is not fenced and has no live lease of another
  delivery (`claim_delivery`); its first delivery creates the document with its first steps in one
  create-only write.
- An **initiator actor** (reconciler, sweeper, consumer, operator) claims a payment that has no live
  lease of anyone else, fencing it (`claim_settlement`): no processor acts on it again.
- A claim holder appends steps and sets fields only while it holds the claim (`append`, `update`);
  otherwise LeaseLost.
- `deliver` writes an initiator settlement step from the step outbox without a claim: the step
  describes a database change already committed, and its identity makes a repeat a no-op.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google.api_core import exceptions as google_exceptions
from google.cloud import firestore

from .steps import identity, step_document_id

PROCESSOR = "processor"
INITIATOR = "initiator"
FENCED = "fenced"
OUTCOME_PUBLISHED = "outcome_published"
# The number of the latest initiator claim (1, 2, ...): the order in which claims were taken.
CLAIM_SEQ = "claim_seq"
# In the document dicts returned here (never stored): the update time of the document as this writer
# last wrote or read it, the precondition of its next write.
UPDATE_TIME = "_update_time"
# Another holder's lease counts as live until this long after it expires (clock skew between services).
LEASE_GRACE = timedelta(seconds=30)
PAYMENT_FIELDS = ("user_id", "amount", "currency")
# Rounds of Firestore's own transaction retries before giving up while other writers hold the document.
CONTENTION_ROUNDS = 4
_CHANGED_MEANWHILE = (google_exceptions.FailedPrecondition, google_exceptions.Conflict)
# The parent fields a step changes (besides the step's own fields).
_STEP_FIELDS = ("state", "version", "steps_done", "updated_at")
_LEASE_FIELDS = ("lease_owner", "lease_holder", "lease_expires_at")


class LeaseLost(Exception):
    """Another actor holds the payment now (or it was fenced): stop, write nothing more."""


class ClaimStatus(enum.Enum):
    CLAIMED = "claimed"
    ALREADY_DONE = "already_done"  # processor: the outcome is published
    BUSY = "busy"  # another actor holds a live lease
    SETTLED_ELSEWHERE = "settled_elsewhere"  # processor: the initiator fenced the payment
    CONFLICT = "conflict"  # processor: the message contradicts the document's payment


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    doc: dict

    @property
    def claimed(self) -> bool:
        return self.status is ClaimStatus.CLAIMED

    @property
    def busy_for_seconds(self) -> float | None:
        """BUSY: how long until the other holder's lease lapses."""
        expires = self.doc.get("lease_expires_at")
        return max(0.0, (expires - _now()).total_seconds()) if expires else None


@dataclass(frozen=True)
class Step:
    """A step to append: its name, its detail, and document fields written with it."""

    name: str
    detail: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC)


def new_document(payment: Mapping) -> dict:
    """The parent document before any step (contracts/saga-log/transaction.schema.json).

    `payment`: payment_id, user_id, amount, currency, correlation_id and, from the processor, initiated_at.
    """
    doc = {
        "payment_id": str(payment["payment_id"]),
        "user_id": payment["user_id"],
        "amount": payment["amount"],
        "currency": payment["currency"],
        "correlation_id": payment.get("correlation_id"),
        "state": None,
        "version": 0,
        "steps_done": [],
        "intent_id": None,
        "charge_id": None,
        "outcome_published": False,
        "created_at": firestore.SERVER_TIMESTAMP,
        "updated_at": firestore.SERVER_TIMESTAMP,
    }
    if payment.get("initiated_at") is not None:
        doc["initiated_at"] = payment["initiated_at"]
    return doc


def lease_live(doc: Mapping, *, grace: timedelta = LEASE_GRACE) -> bool:
    expires = doc.get("lease_expires_at")
    return doc.get("lease_owner") is not None and expires is not None and expires + grace > _now()


def has(doc: Mapping, step_identity: str) -> bool:
    return step_identity in (doc.get("steps_done") or [])


class SagaLog:
    def __init__(
        self,
        db: firestore.Client,
        collection: str,
        lease_seconds: float,
        service: str,
        lease_grace: timedelta = LEASE_GRACE,
    ) -> None:
        self.db = db
        self.collection = db.collection(collection)
        self.lease = timedelta(seconds=lease_seconds)
        self.service = service
        # How long past its expiry another holder's lease still counts (an initiator claim's margin).
        self.lease_grace = lease_grace

    def document(self, payment_id: str) -> firestore.DocumentReference:
        return self.collection.document(str(payment_id))

    # -- claims ------------------------------------------------------------------------------------

    def claim_delivery(self, payment: Mapping, owner: str, first_steps: Sequence[Step] = ()) -> Claim:
        """A processor delivery's claim.

        The first delivery creates the document with `first_steps` in one create-only write; a later
        one only takes the lease, and the saga walks on from the steps the document holds.
        """
        created = self._create(payment, owner, first_steps)
        if created is not None:
            return Claim(ClaimStatus.CLAIMED, created)
        ref = self.document(payment["payment_id"])

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> Claim:
            snapshot = ref.get(transaction=transaction)
            if not snapshot.exists:
                doc = self._write_steps(transaction, ref, new_document(payment), first_steps, owner, PROCESSOR)
                return Claim(ClaimStatus.CLAIMED, doc)
            doc = snapshot.to_dict()
            if any(doc.get(name) is not None and doc[name] != payment[name] for name in PAYMENT_FIELDS):
                return Claim(ClaimStatus.CONFLICT, doc)
            if doc.get(OUTCOME_PUBLISHED):
                return Claim(ClaimStatus.ALREADY_DONE, doc)
            if doc.get(FENCED):
                return Claim(ClaimStatus.SETTLED_ELSEWHERE, doc)
            if doc.get("lease_owner") not in (None, owner) and lease_live(doc, grace=timedelta(0)):
                return Claim(ClaimStatus.BUSY, doc)
            lease = self._lease(owner, PROCESSOR)
            transaction.update(ref, lease)
            return Claim(ClaimStatus.CLAIMED, {**doc, **lease})

        return self._run(run)

    def claim_settlement(self, payment: Mapping, owner: str, holder: str) -> Claim:
        """An initiator actor's claim: BUSY while anyone else's lease is live; else taken, and the payment fenced."""
        ref = self.document(payment["payment_id"])

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> Claim:
            snapshot = ref.get(transaction=transaction)
            lease = {**self._lease(owner, holder), FENCED: True}
            if not snapshot.exists:
                doc = {**new_document(payment), **lease, CLAIM_SEQ: 1}
                transaction.create(ref, doc)
                return Claim(ClaimStatus.CLAIMED, doc)
            doc = snapshot.to_dict()
            if doc.get("lease_owner") not in (None, owner) and lease_live(doc, grace=self.lease_grace):
                return Claim(ClaimStatus.BUSY, doc)
            # Each initiator claim is numbered after the last one: the database settles only under
            # the newest (docs/protocol.md §5), so a holder paused past its lease cannot settle.
            if doc.get("lease_owner") != owner:
                lease[CLAIM_SEQ] = int(doc.get(CLAIM_SEQ) or 0) + 1
            transaction.update(ref, {**lease, "updated_at": firestore.SERVER_TIMESTAMP})
            return Claim(ClaimStatus.CLAIMED, {**doc, **lease})

        return self._run(run)

    def release(self, payment_id: str, owner: str) -> None:
        """Give the claim back (a no-op when another actor holds it now)."""
        ref = self.document(payment_id)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> None:
            snapshot = ref.get(transaction=transaction)
            if snapshot.exists and snapshot.get("lease_owner") == owner:
                transaction.update(ref, dict.fromkeys(_LEASE_FIELDS))

        _with_contention_retries(lambda: run(self.db.transaction()))

    # -- writes under a claim ----------------------------------------------------------------------

    def append(
        self, payment_id: str, owner: str, steps: Sequence[Step], known: dict | None = None, *, release: bool = False
    ) -> dict:
        """Append `steps` in order (each once) while holding the claim; returns the document after the write.

        `known`: the document as this holder last got it (one conditional write instead of a
        transaction). `release`: give the claim back in the same write.
        """
        if known is not None and known.get(UPDATE_TIME) is not None and known.get("lease_owner") == owner:
            written = self._append_unchanged(payment_id, owner, steps, known, release)
            if written is not None:
                return written
        ref = self.document(payment_id)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> dict:
            doc = self._held(ref.get(transaction=transaction), owner)
            missing = [step for step in steps if not has(doc, identity(step.name, _intent(step), doc.get("intent_id")))]
            doc = self._write_steps(transaction, ref, doc, missing, owner, doc.get("lease_holder"), release)
            if not missing and release:
                transaction.update(ref, dict.fromkeys(_LEASE_FIELDS))
                doc = {**doc, **dict.fromkeys(_LEASE_FIELDS)}
            return doc

        return self._run(run)

    def update(self, payment_id: str, owner: str, fields: dict, known: dict | None = None) -> dict:
        """Set document fields (no step) while holding the claim."""
        ref = self.document(payment_id)
        changed = {**fields, "updated_at": firestore.SERVER_TIMESTAMP}
        if known is not None and known.get(UPDATE_TIME) is not None and known.get("lease_owner") == owner:
            try:
                result = ref.update(changed, option=self.db.write_option(last_update_time=known[UPDATE_TIME]))
                return {**known, **fields, UPDATE_TIME: result.update_time}
            except _CHANGED_MEANWHILE:
                pass

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> dict:
            doc = self._held(ref.get(transaction=transaction), owner)
            transaction.update(ref, changed)
            return {**doc, **fields}

        return self._run(run)

    def mark_published(self, payment_id: str, owner: str, message_id: str, known: dict | None = None) -> None:
        """Record the processor's outcome event as published and give the claim back."""
        ref = self.document(payment_id)
        published = {
            OUTCOME_PUBLISHED: True,
            "outcome_message_id": message_id,
            "outcome_published_at": firestore.SERVER_TIMESTAMP,
        }
        if known is not None and known.get(UPDATE_TIME) is not None and known.get("lease_owner") == owner:
            try:
                ref.update(
                    {**published, **dict.fromkeys(_LEASE_FIELDS)},
                    option=self.db.write_option(last_update_time=known[UPDATE_TIME]),
                )
                return
            except _CHANGED_MEANWHILE:
                pass  # changed since (e.g. the initiator logged its step): read and decide below

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> None:
            doc = ref.get(transaction=transaction).to_dict()
            fields = dict(published)
            if doc.get("lease_owner") == owner:
                fields.update(dict.fromkeys(_LEASE_FIELDS))
            transaction.update(ref, fields)

        _with_contention_retries(lambda: run(self.db.transaction()))

    # -- the step outbox ---------------------------------------------------------------------------

    def deliver(self, payment: Mapping, step: Step) -> bool:
        """Append an initiator settlement step unless the log has it (no claim needed). True if written.

        One read and one conditional commit; a document changed meanwhile is done again in a transaction.
        """
        ref = self.document(payment["payment_id"])
        snapshot = ref.get()
        current = snapshot.to_dict() if snapshot.exists else None
        if current is not None and has(current, identity(step.name, _intent(step), current.get("intent_id"))):
            return False
        batch = self.db.batch()
        option = self.db.write_option(last_update_time=snapshot.update_time) if snapshot.exists else None
        self._stage_steps(batch, ref, current, payment, [step], option)
        try:
            batch.commit()
            return True
        except (*_CHANGED_MEANWHILE, google_exceptions.Aborted):
            pass

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> bool:
            snapshot = ref.get(transaction=transaction)
            current = snapshot.to_dict() if snapshot.exists else None
            if current is not None and has(current, identity(step.name, _intent(step), current.get("intent_id"))):
                return False
            self._stage_steps(transaction, ref, current, payment, [step], None)
            return True

        return _with_contention_retries(lambda: run(self.db.transaction()))

    # -- reads -------------------------------------------------------------------------------------

    def read(self, payment_id: str) -> dict:
        """The document (empty when there is none), with its update time."""
        snapshot = self.document(payment_id).get()
        return {**snapshot.to_dict(), UPDATE_TIME: snapshot.update_time} if snapshot.exists else {}

    def read_with_steps(self, payment_id: str) -> tuple[dict, list[dict]] | None:
        ref = self.document(payment_id)
        snapshot = ref.get()
        if not snapshot.exists:
            return None
        steps = [{"id": step.id, **step.to_dict()} for step in ref.collection("steps").order_by("seq").stream()]
        return snapshot.to_dict(), steps

    # -- internals ---------------------------------------------------------------------------------

    def _lease(self, owner: str, holder: str) -> dict:
        return {"lease_owner": owner, "lease_holder": holder, "lease_expires_at": _now() + self.lease}

    def _held(self, snapshot: firestore.DocumentSnapshot, owner: str) -> dict:
        doc = snapshot.to_dict() if snapshot.exists else None
        if doc is None or doc.get("lease_owner") != owner:
            raise LeaseLost(f"the claim on {snapshot.id} is held by {doc and doc.get('lease_holder')}, not by us")
        if self.service == PROCESSOR and doc.get(FENCED):
            raise LeaseLost(f"{snapshot.id} was fenced: the initiator settles this payment")
        return doc

    def _create(self, payment: Mapping, owner: str, first_steps: Sequence[Step]) -> dict | None:
        """The first delivery: the document and its first steps in one create-only write; None if it exists."""
        ref = self.document(payment["payment_id"])
        batch = self.db.batch()
        doc = self._stage_steps(batch, ref, None, payment, first_steps, None, self._lease(owner, "processor"))
        try:
            results = batch.commit()
        except google_exceptions.Conflict:
            return None
        return {**doc, UPDATE_TIME: results[0].update_time}

    def _write_steps(
        self,
        transaction: firestore.Transaction,
        ref: firestore.DocumentReference,
        doc: dict,
        steps: Sequence[Step],
        owner: str,
        holder: str | None,
        release: bool = False,
    ) -> dict:
        lease = dict.fromkeys(_LEASE_FIELDS) if release else self._lease(owner, holder or self.service)
        for step in steps:
            doc = self._next(transaction, ref, doc, step)
        doc = {**doc, **lease}
        transaction.set(ref, doc)
        return doc

    def _append_unchanged(
        self, payment_id: str, owner: str, steps: Sequence[Step], known: dict, release: bool
    ) -> dict | None:
        """The steps as one write on the condition that nobody changed the document since `known`."""
        if self.service == PROCESSOR and known.get(FENCED):
            return None
        ref = self.document(payment_id)
        batch = self.db.batch()
        original = {name: value for name, value in known.items() if name != UPDATE_TIME}
        doc = original
        for step in steps:
            if not has(doc, identity(step.name, _intent(step), doc.get("intent_id"))):
                doc = self._next(batch, ref, doc, step)
        if doc is original and not release:
            return known
        lease = dict.fromkeys(_LEASE_FIELDS) if release else self._lease(owner, doc.get("lease_holder") or self.service)
        doc = {**doc, **lease}
        changed = {name: value for name, value in doc.items() if name == "updated_at" or original.get(name) != value}
        batch.update(ref, changed, option=self.db.write_option(last_update_time=known[UPDATE_TIME]))
        try:
            results = batch.commit()
        except _CHANGED_MEANWHILE:
            return None
        return {**doc, UPDATE_TIME: results[-1].update_time}

    def _stage_steps(
        self,
        writes,
        ref: firestore.DocumentReference,
        current: dict | None,
        payment: Mapping,
        steps: Sequence[Step],
        option,
        extra: dict | None = None,
    ) -> dict:
        """Stage steps on `writes` (a batch or transaction): creating the parent when absent, else updating it."""
        doc = dict(current) if current is not None else new_document(payment)
        for step in steps:
            doc = self._next(writes, ref, doc, step)
        doc.update(extra or {})
        if current is None:
            writes.create(ref, doc)
        else:
            changed = {name: value for name, value in doc.items() if current.get(name) != value}
            writes.update(ref, {**changed, "updated_at": firestore.SERVER_TIMESTAMP}, option=option)
        return doc

    def _next(self, writes, ref: firestore.DocumentReference, doc: dict, step: Step) -> dict:
        """Stage the step document and return the parent document after it."""
        doc = {**doc, **step.fields}
        seq = int(doc.get("version") or 0) + 1
        writes.create(
            ref.collection("steps").document(step_document_id(seq, step.name)),
            {
                "step": step.name,
                "seq": seq,
                "at": firestore.SERVER_TIMESTAMP,
                "service": self.service,
                "detail": step.detail,
            },
        )
        step_identity = identity(step.name, _intent(step), doc.get("intent_id"))
        return {
            **doc,
            "state": step.name,
            "version": seq,
            "steps_done": [*(doc.get("steps_done") or []), step_identity],
            "updated_at": firestore.SERVER_TIMESTAMP,
        }

    def _run(self, run: Callable):
        """Run a transactional function (a new transaction per contention round); the result carries the
        update time of the document as the transaction left it."""
        used: list[firestore.Transaction] = []

        def attempt():
            used.append(self.db.transaction())
            return run(used[-1])

        result = _with_contention_retries(attempt)
        update_time = _last_update_time(used[-1])
        if update_time is None:
            return result
        if isinstance(result, Claim):
            return Claim(result.status, {**result.doc, UPDATE_TIME: update_time})
        return {**result, UPDATE_TIME: update_time}


def _intent(step: Step) -> str | None:
    return step.detail.get("intent_id")


def _last_update_time(transaction: firestore.Transaction):
    """The update time the transaction's last write (always the parent document) gave it."""
    results = getattr(transaction, "write_results", None)
    return results[-1].update_time if results else None


def _with_contention_retries(run: Callable):
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
