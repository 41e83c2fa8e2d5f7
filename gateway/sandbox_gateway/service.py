"""Charges, refunds and the ledger, with Stripe-style idempotency and the sandbox's faults.

Every POST runs through ``Gateway._execute``:

1. rate knobs that act "before doing anything" (503, hang-then-504);
2. a ``BEGIN IMMEDIATE`` transaction that looks the Idempotency-Key up: a different request
   under the key is 409 ``idempotency_key_reused``, a stored result is replayed, a key held by
   a request still in flight is 409 ``idempotency_key_in_use``; otherwise the attempt is
   counted (magic 53/54/55 act on attempt 1 only) and, unless the request must be slow, the
   work and its stored result are written in that same transaction;
3. a slow request (magic 57, latency knob) holds the key while it sleeps, then does the work
   in a second transaction.

``Gateway.cancel_charge`` takes the same write lock: it either finds the charge the key already
made, or marks the key canceled, after which every request with it — one still sleeping in step 3
included — answers 409 ``charge_canceled``. Cancel and a slow charge race for real, and the lock
decides which one wins.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from . import errors
from .chaos import ALWAYS_UNAVAILABLE, DECLINE_CODES, FIRST_ATTEMPT_FAULTS, SLOW, Fault, KnobBoard
from .store import Store

# A slow request holds its key for its latency plus this margin; past it (the process died
# mid-request) the key is free again.
IN_FLIGHT_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict
    replayed: bool = False
    # Saved as the key's result (replayed on a repeat). 404 and "charge not succeeded" are not:
    # like Stripe, only requests that did something are saved.
    saved: bool = True
    drop_connection: bool = False


Operation = Callable[[sqlite3.Connection, int], Outcome]


def fingerprint(method: str, path: str, payload: dict) -> str:
    canonical = json.dumps({"method": method, "path": path, "body": payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def charge_json(row: sqlite3.Row) -> dict:
    return {
        "id": row["id"],
        "object": "charge",
        "amount": row["amount"],
        "currency": row["currency"],
        "reference": row["reference"],
        "status": row["status"],
        "failure_code": row["failure_code"],
        "refunded": row["amount_refunded"] > 0,
        "amount_refunded": row["amount_refunded"],
        "created": row["created"],
    }


def refund_json(row: sqlite3.Row) -> dict:
    return {
        "id": row["id"],
        "object": "refund",
        "charge": row["charge_id"],
        "amount": row["amount"],
        "status": row["status"],
        "created": row["created"],
    }


class Gateway:
    def __init__(
        self,
        store: Store,
        knobs: KnobBoard,
        *,
        sleep: Callable[[float], None] = time.sleep,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.knobs = knobs
        self._sleep = sleep
        self._chance = chance

    # --- writes -----------------------------------------------------------------------------

    def create_charge(self, *, idempotency_key: str, path: str, payload: dict) -> Outcome:
        magic = payload["amount"] % 100
        if magic == ALWAYS_UNAVAILABLE:
            raise errors.unavailable()
        latency = self.knobs.current().latency_ms / 1000 if magic == SLOW else 0.0

        def operation(conn: sqlite3.Connection, now: int) -> Outcome:
            charge_id = "ch_" + secrets.token_hex(12)
            failure_code = DECLINE_CODES.get(magic)
            conn.execute(
                "INSERT INTO charges (id, amount, currency, reference, description, status, failure_code,"
                " idempotency_key, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    charge_id,
                    payload["amount"],
                    payload["currency"],
                    payload["reference"],
                    payload.get("description"),
                    "failed" if failure_code else "succeeded",
                    failure_code,
                    idempotency_key,
                    now,
                ),
            )
            if failure_code:
                error = errors.ApiError(
                    402, "card_error", failure_code, _DECLINE_MESSAGES[failure_code], charge=charge_id
                )
                return Outcome(402, error.body())
            row = conn.execute("SELECT * FROM charges WHERE id = ?", (charge_id,)).fetchone()
            return Outcome(201, charge_json(row))

        return self._execute(
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint("POST", path, payload),
            first_attempt_fault=FIRST_ATTEMPT_FAULTS.get(magic),
            latency=latency,
            operation=operation,
        )

    def refund_charge(self, *, charge_id: str, idempotency_key: str, path: str, payload: dict) -> Outcome:
        def operation(conn: sqlite3.Connection, now: int) -> Outcome:
            charge = conn.execute("SELECT * FROM charges WHERE id = ?", (charge_id,)).fetchone()
            if charge is None:
                error = errors.not_found(f"No such charge: {charge_id}")
                return Outcome(error.status, error.body(), saved=False)
            if charge["status"] != "succeeded":
                error = errors.ApiError(
                    409, "invalid_request_error", "charge_not_succeeded", f"Charge {charge_id} did not succeed."
                )
                return Outcome(error.status, error.body(), saved=False)
            existing = conn.execute("SELECT * FROM refunds WHERE charge_id = ?", (charge_id,)).fetchone()
            if existing is not None:
                return Outcome(200, refund_json(existing))
            refund_id = "re_" + secrets.token_hex(12)
            conn.execute(
                "INSERT INTO refunds (id, charge_id, amount, status, idempotency_key, created)"
                " VALUES (?, ?, ?, 'succeeded', ?, ?)",
                (refund_id, charge_id, charge["amount"], idempotency_key, now),
            )
            conn.execute("UPDATE charges SET amount_refunded = amount WHERE id = ?", (charge_id,))
            row = conn.execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()
            return Outcome(201, refund_json(row))

        return self._execute(
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint("POST", path, payload),
            first_attempt_fault=None,
            latency=0.0,
            operation=operation,
        )

    def cancel_charge(self, *, charge_idempotency_key: str) -> dict:
        """End the charge attempts made with this key: the charge it made, or a guarantee of none."""
        knobs = self.knobs.current()
        if self._chance() < knobs.fail_rate:
            raise errors.unavailable()
        if self._chance() < knobs.timeout_rate:
            self._hang()
        now = time.time()
        with self.store.transaction() as conn:
            charge = conn.execute(
                "SELECT * FROM charges WHERE idempotency_key = ? ORDER BY seq DESC LIMIT 1", (charge_idempotency_key,)
            ).fetchone()
            if charge is not None:
                return _cancellation(charge_idempotency_key, canceled=False, charge=charge_json(charge))
            conn.execute(
                "INSERT INTO idempotency_keys (key, fingerprint, attempts, created, canceled) VALUES (?, '', 0, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET canceled = COALESCE(canceled, excluded.canceled)",
                (charge_idempotency_key, now, now),
            )
        return _cancellation(charge_idempotency_key, canceled=True, charge=None)

    def _execute(
        self,
        *,
        idempotency_key: str,
        request_fingerprint: str,
        first_attempt_fault: Fault | None,
        latency: float,
        operation: Operation,
    ) -> Outcome:
        knobs = self.knobs.current()
        if self._chance() < knobs.fail_rate:
            raise errors.unavailable()
        if self._chance() < knobs.timeout_rate:
            self._hang()
        lose_response = self._chance() < knobs.lost_response_rate
        if self._chance() < knobs.latency_rate:
            latency = max(latency, knobs.latency_ms / 1000)

        now = time.time()
        with self.store.transaction() as conn:
            record = conn.execute("SELECT * FROM idempotency_keys WHERE key = ?", (idempotency_key,)).fetchone()
            _raise_on_conflict(record, request_fingerprint, now)
            if record is not None and record["response_status"] is not None:
                return _lost_if(_replay(record), lose_response)
            attempt = 1 if record is None else record["attempts"] + 1
            fault = first_attempt_fault if attempt == 1 else None
            if fault in (Fault.UNAVAILABLE, Fault.TIMEOUT):
                _count_attempt(conn, idempotency_key, request_fingerprint, attempt, locked_until=0.0, now=now)
            elif latency > 0:
                locked_until = now + latency + IN_FLIGHT_MARGIN_SECONDS
                _count_attempt(conn, idempotency_key, request_fingerprint, attempt, locked_until, now)
            else:
                outcome = _run(conn, operation, idempotency_key, request_fingerprint, attempt, record, now)
                return _lost_if(outcome, lose_response or fault is Fault.LOST_RESPONSE)
        if fault is Fault.UNAVAILABLE:
            raise errors.unavailable()
        if fault is Fault.TIMEOUT:
            self._hang()

        self._sleep(latency)
        now = time.time()
        with self.store.transaction() as conn:
            record = conn.execute("SELECT * FROM idempotency_keys WHERE key = ?", (idempotency_key,)).fetchone()
            if record["canceled"] is not None:
                # The charge was canceled while we slept: we must not charge.
                raise _canceled_error()
            if record["response_status"] is not None:
                # Our hold expired and a repeat finished the work meanwhile.
                return _lost_if(_replay(record), lose_response)
            if record["locked_until"] != locked_until:
                # Our hold expired and a repeat holds the key now: it does the work, not us.
                _raise_on_conflict(record, request_fingerprint, now)
            outcome = _run(conn, operation, idempotency_key, request_fingerprint, record["attempts"], record, now)
            return _lost_if(outcome, lose_response or fault is Fault.LOST_RESPONSE)

    def _hang(self) -> None:
        """Hang past the client's read timeout, then answer 504 having done nothing."""
        self._sleep(self.knobs.current().timeout_seconds)
        raise errors.timed_out()

    def hang_instead_of_dropping(self) -> Outcome:
        """For servers that do not expose the client socket: the client must still get no answer."""
        self._sleep(self.knobs.current().timeout_seconds)
        error = errors.timed_out()
        return Outcome(error.status, error.body())

    # --- reads ------------------------------------------------------------------------------

    def get_charge(self, charge_id: str) -> dict:
        row = self.store.connection().execute("SELECT * FROM charges WHERE id = ?", (charge_id,)).fetchone()
        if row is None:
            raise errors.not_found(f"No such charge: {charge_id}")
        return charge_json(row)

    def charges_by_reference(self, reference: str) -> list[dict]:
        rows = self.store.connection().execute("SELECT * FROM charges WHERE reference = ? ORDER BY seq", (reference,))
        return [charge_json(row) for row in rows]

    def ledger(self, reference: str | None) -> list[dict]:
        query = (
            "SELECT c.reference AS reference,"
            " SUM(c.status = 'succeeded') AS charges_succeeded,"
            " SUM(c.status = 'failed') AS charges_failed,"
            " COUNT(r.id) AS refunds,"
            " COALESCE(SUM(CASE WHEN c.status = 'succeeded' THEN c.amount END), 0) AS amount_charged,"
            " COALESCE(SUM(r.amount), 0) AS amount_refunded"
            " FROM charges c LEFT JOIN refunds r ON r.charge_id = c.id"
        )
        params: tuple = ()
        if reference is not None:
            query += " WHERE c.reference = ?"
            params = (reference,)
        query += " GROUP BY c.reference ORDER BY MIN(c.seq)"
        entries = [dict(row) for row in self.store.connection().execute(query, params)]
        if reference is not None and not entries:
            # An explicit reference always gets its row, so "nothing charged" reads as zeros.
            entries = [
                {
                    "reference": reference,
                    "charges_succeeded": 0,
                    "charges_failed": 0,
                    "refunds": 0,
                    "amount_charged": 0,
                    "amount_refunded": 0,
                }
            ]
        return entries


_DECLINE_MESSAGES = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
}


def _cancellation(charge_idempotency_key: str, *, canceled: bool, charge: dict | None) -> dict:
    return {
        "object": "charge_cancellation",
        "charge_idempotency_key": charge_idempotency_key,
        "canceled": canceled,
        "charge": charge,
    }


def _canceled_error() -> errors.ApiError:
    return errors.ApiError(
        409,
        "invalid_request_error",
        "charge_canceled",
        "The charge for this Idempotency-Key was canceled; no charge was made and none will be.",
    )


def _raise_on_conflict(record: sqlite3.Row | None, request_fingerprint: str, now: float) -> None:
    if record is None:
        return
    if record["canceled"] is not None:
        raise _canceled_error()
    if record["fingerprint"] != request_fingerprint:
        raise errors.ApiError(
            409,
            "idempotency_error",
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request.",
        )
    if record["response_status"] is None and record["locked_until"] > now:
        raise errors.ApiError(
            409,
            "idempotency_error",
            "idempotency_key_in_use",
            "A request with this Idempotency-Key is still in progress; retry later.",
        )


def _count_attempt(
    conn: sqlite3.Connection, key: str, request_fingerprint: str, attempt: int, locked_until: float, now: float
) -> None:
    conn.execute(
        "INSERT INTO idempotency_keys (key, fingerprint, attempts, locked_until, created) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET attempts = excluded.attempts, locked_until = excluded.locked_until",
        (key, request_fingerprint, attempt, locked_until, now),
    )


def _run(
    conn: sqlite3.Connection,
    operation: Operation,
    key: str,
    request_fingerprint: str,
    attempt: int,
    record: sqlite3.Row | None,
    now: float,
) -> Outcome:
    outcome = operation(conn, int(now))
    if outcome.saved:
        _count_attempt(conn, key, request_fingerprint, attempt, locked_until=0.0, now=now)
        conn.execute(
            "UPDATE idempotency_keys SET response_status = ?, response_body = ?, completed = ? WHERE key = ?",
            (outcome.status, json.dumps(outcome.body), now, key),
        )
    elif record is not None:
        # Nothing to save, but the attempt counts and the key is free again.
        _count_attempt(conn, key, request_fingerprint, attempt, locked_until=0.0, now=now)
    return outcome


def _replay(record: sqlite3.Row) -> Outcome:
    return Outcome(record["response_status"], json.loads(record["response_body"]), replayed=True)


def _lost_if(outcome: Outcome, lose: bool) -> Outcome:
    return replace(outcome, drop_connection=True) if lose else outcome
