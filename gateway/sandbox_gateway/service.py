"""The sandbox's request engine: clock, Stripe's idempotency layer, faults, timers, reads.

Idempotency, as https://docs.stripe.com/idempotency documents it:
- keys are scoped per API key;
- "saving the resulting status code and body of the first request made for any given
  idempotency key, regardless of whether it succeeds or fails. Subsequent requests with the same
  key return the same result, including 500 errors" -- replayed with ``Idempotent-Replayed: true``;
- "We save results only after the execution of an endpoint begins": a request that fails
  validation, or a simulated 503/504 before execution, saves nothing;
- "compares incoming parameters to those of the original request and errors if they're not the
  same": 400 ``idempotency_error``;
- a duplicate while the first is still executing: 409 ``idempotency_key_in_use``
  (https://docs.stripe.com/api/errors: "409 Conflict ... perhaps due to using the same idempotent key");
- "You can remove keys from the system automatically after they're at least 24 hours old. We
  generate a new request if a key is reused after the original is pruned": the sandbox prunes a
  key exactly 24 h (sandbox clock) after its first use.

Each request is one ``BEGIN IMMEDIATE`` transaction (two for a request that must hold its key
while it waits): key look-up, due timers, the operation, its events and its saved answer commit
together. The operation runs inside a savepoint so an error it raises leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import errors
from .faults import (
    ALWAYS_UNAVAILABLE,
    CONFIRM_SAVED_ERRORS,
    CREATE_SAVED_ERRORS,
    FIRST_ATTEMPT_FAULTS,
    SLOW,
    Fault,
    KnobBoard,
)
from .payments import TIMERS, Ctx
from .store import Store

logger = logging.getLogger(__name__)

KEY_LIFETIME_SECONDS = 24 * 3600
# A waiting request holds its key for its latency plus this margin; past it (the process died
# mid-request) the key is free again.
IN_FLIGHT_MARGIN_SECONDS = 30.0

Operation = Callable[[Ctx], tuple[int, dict]]


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict
    replayed: bool = False
    drop_connection: bool = False
    faults: tuple[str, ...] = ()


@dataclass
class Plan:
    """The faults one request meets, decided before it runs."""

    unavailable: bool = False
    timeout: bool = False
    lose_response: bool = False
    latency: float = 0.0
    first_attempt: Fault | None = None
    saved_error: Fault | None = None
    # A magic saved 500 strikes once per mark (a payment id, an intent id); None: every time.
    saved_error_mark: str | None = None


@dataclass
class Call:
    """One API request as the engine sees it."""

    api_key: str
    method: str
    path: str
    params: dict
    idempotency_key: str | None
    request_id: str
    plan: Plan = field(default_factory=Plan)

    @property
    def scope(self) -> str:
        return hashlib.sha256(self.api_key.encode()).hexdigest()[:24]

    @property
    def fingerprint(self) -> str:
        canonical = json.dumps([self.method, self.path, self.params], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class Engine:
    def __init__(
        self,
        store: Store,
        knobs: KnobBoard,
        *,
        sleep: Callable[[float], None] = time.sleep,
        chance: Callable[[], float] = random.random,
        on_webhooks: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.knobs = knobs
        self._sleep = sleep
        self._chance = chance
        self._on_webhooks = on_webhooks

    # --- clock ----------------------------------------------------------------------------------

    def now(self, conn: sqlite3.Connection) -> float:
        """The sandbox clock: wall clock plus the offset tests add with POST /_sandbox/clock."""
        offset = conn.execute("SELECT offset_seconds FROM clock WHERE id = 1").fetchone()[0]
        return time.time() + offset

    def advance_clock(self, seconds: float) -> float:
        with self.store.transaction() as conn:
            conn.execute("UPDATE clock SET offset_seconds = offset_seconds + ? WHERE id = 1", (seconds,))
            now = self.now(conn)
            self._run_timers(conn, now)
        self._on_webhooks()
        return now

    # --- faults ---------------------------------------------------------------------------------

    def _happens(self, rate: float) -> bool:
        return rate >= 1.0 or (rate > 0.0 and self._chance() < rate)

    def plan(
        self,
        *,
        writes: bool,
        confirm_amount: int | None = None,
        create_amount: int | None = None,
        mark: str | None = None,
    ) -> Plan:
        knobs = self.knobs.current()
        plan = Plan(
            unavailable=self._happens(knobs.fail_rate),
            timeout=self._happens(knobs.timeout_rate),
            lose_response=self._happens(knobs.lost_response_rate),
            latency=knobs.latency_ms / 1000 if self._happens(knobs.latency_rate) else 0.0,
        )
        if writes:
            if self._happens(knobs.saved_error_rate):
                plan.saved_error = Fault.SAVED_ERROR
            elif self._happens(knobs.saved_error_applied_rate):
                plan.saved_error = Fault.SAVED_ERROR_APPLIED
        magic_error = None
        if create_amount is not None:
            magic_error = CREATE_SAVED_ERRORS.get(create_amount % 100)
        if confirm_amount is not None:
            magic = confirm_amount % 100
            plan.unavailable = plan.unavailable or magic == ALWAYS_UNAVAILABLE
            plan.first_attempt = FIRST_ATTEMPT_FAULTS.get(magic)
            magic_error = CONFIRM_SAVED_ERRORS.get(magic, magic_error)
            if magic == SLOW:
                plan.latency = knobs.latency_ms / 1000
        if magic_error is not None:
            plan.saved_error, plan.saved_error_mark = magic_error, mark
        return plan

    def _hang(self, faults: list[str]) -> None:
        """Hang past the client's read timeout, then answer 504 having done nothing."""
        faults.append(Fault.TIMEOUT.value)
        self._sleep(self.knobs.current().timeout_seconds)
        raise _FaultAnswer(errors.timed_out(), tuple(faults))

    def hang_instead_of_dropping(self) -> Outcome:
        """For servers that do not expose the client socket: the client must still get no answer."""
        self._sleep(self.knobs.current().timeout_seconds)
        error = errors.timed_out()
        return Outcome(error.status, error.body(), faults=(Fault.LOST_RESPONSE.value,))

    # --- writes ---------------------------------------------------------------------------------

    def execute(self, call: Call, operation: Operation) -> Outcome:
        """Run a POST through the idempotency layer and the faults of its plan."""
        try:
            return self._execute(call, operation)
        except _FaultAnswer as answer:
            return Outcome(answer.error.status, answer.error.body(), faults=answer.faults)

    def _execute(self, call: Call, operation: Operation) -> Outcome:
        plan, faults = call.plan, []
        if plan.unavailable:
            raise _FaultAnswer(errors.unavailable(), (Fault.UNAVAILABLE.value,))
        if plan.timeout:
            self._hang(faults)
        with self.store.transaction() as conn:
            now = self.now(conn)
            self._run_timers(conn, now)
            record = self._key_record(conn, call, now)
            if record is not None and record["response_status"] is not None:
                return self._replay(record, plan)
            attempt = 1 if record is None else record["attempts"] + 1
            fault = plan.first_attempt if attempt == 1 else None
            if fault in (Fault.UNAVAILABLE, Fault.TIMEOUT):
                self._hold_key(conn, call, attempt, locked_until=0.0, now=now)
            elif plan.latency > 0:
                locked_until = time.time() + plan.latency + IN_FLIGHT_MARGIN_SECONDS
                self._hold_key(conn, call, attempt, locked_until, now)
            else:
                return self._run(conn, now, call, attempt, operation, fault, faults)
        if fault is Fault.UNAVAILABLE:
            raise _FaultAnswer(errors.unavailable(), (Fault.UNAVAILABLE.value,))
        if fault is Fault.TIMEOUT:
            self._hang(faults)

        faults.append(Fault.LATENCY.value)
        self._sleep(plan.latency)
        with self.store.transaction() as conn:
            now = self.now(conn)
            self._run_timers(conn, now)
            record = self._stored_key(conn, call)
            if record is not None and record["response_status"] is not None:
                # Our hold expired and a repeat finished the work meanwhile.
                return self._replay(record, plan)
            if record is not None and record["locked_until"] != locked_until:
                # Our hold expired and a repeat holds the key now: it does the work, not us.
                raise _FaultAnswer(_in_use(), tuple(faults))
            return self._run(conn, now, call, attempt, operation, None, faults)

    def _run(
        self,
        conn: sqlite3.Connection,
        now: float,
        call: Call,
        attempt: int,
        operation: Operation,
        fault: Fault | None,
        faults: list[str],
    ) -> Outcome:
        ctx = Ctx(
            conn=conn,
            now=int(now),
            knobs=self.knobs.current(),
            request_id=call.request_id,
            idempotency_key=call.idempotency_key,
            chance=self._chance,
            faults=faults,
        )
        conn.execute("SAVEPOINT operation")
        try:
            status, body = operation(ctx)
        except errors.StripeError as error:
            conn.execute("ROLLBACK TO operation")
            conn.execute("RELEASE operation")
            if not error.saved:
                # Nothing is saved, and a hold this request took (latency) ends now.
                conn.execute(
                    "UPDATE idempotency_keys SET locked_until = 0 WHERE scope = ? AND key = ?",
                    (call.scope, call.idempotency_key),
                )
                return Outcome(error.status, error.body(), faults=tuple(faults))
            status, body = error.status, error.body()
        else:
            saved_error = self._saved_error(conn, call.plan)
            if saved_error is not None:
                faults.append(saved_error.value)
                if saved_error is Fault.SAVED_ERROR:
                    conn.execute("ROLLBACK TO operation")
                status, body = 500, errors.saved_server_error().body()
            conn.execute("RELEASE operation")
            if saved_error is not None and call.plan.saved_error_mark is not None:
                conn.execute("INSERT INTO fault_marks (mark) VALUES (?)", (call.plan.saved_error_mark,))
        if call.idempotency_key is not None:
            self._hold_key(conn, call, attempt, locked_until=0.0, now=now, response=(status, body))
        if ctx.webhooks_queued:
            self._on_webhooks()
        lose = call.plan.lose_response or fault is Fault.LOST_RESPONSE
        if lose:
            faults.append(Fault.LOST_RESPONSE.value)
        return Outcome(status, body, drop_connection=lose, faults=tuple(faults))

    def _saved_error(self, conn: sqlite3.Connection, plan: Plan) -> Fault | None:
        if plan.saved_error is None or plan.saved_error_mark is None:
            return plan.saved_error
        struck = conn.execute("SELECT 1 FROM fault_marks WHERE mark = ?", (plan.saved_error_mark,)).fetchone()
        return None if struck else plan.saved_error

    def _stored_key(self, conn: sqlite3.Connection, call: Call) -> sqlite3.Row | None:
        if call.idempotency_key is None:
            return None
        return conn.execute(
            "SELECT * FROM idempotency_keys WHERE scope = ? AND key = ?", (call.scope, call.idempotency_key)
        ).fetchone()

    def _key_record(self, conn: sqlite3.Connection, call: Call, now: float) -> sqlite3.Row | None:
        record = self._stored_key(conn, call)
        if record is None:
            return None
        if record["created"] <= now - KEY_LIFETIME_SECONDS:
            # Pruned: the key is new again.
            conn.execute("DELETE FROM idempotency_keys WHERE scope = ? AND key = ?", (call.scope, call.idempotency_key))
            return None
        if record["response_status"] is None and record["locked_until"] <= time.time():
            # Nothing was saved under the key (a 503 or 504 before execution): only the attempt counts.
            return record if record["fingerprint"] == call.fingerprint else None
        if record["fingerprint"] != call.fingerprint:
            raise errors.StripeError(
                400,
                "idempotency_error",
                f"Keys for idempotent requests can only be used with the same parameters they were first used "
                f"with. Try using a key other than '{call.idempotency_key}' if you meant to execute a different "
                "request.",
                saved=False,
            )
        if record["response_status"] is None:
            raise _in_use()
        return record

    def _hold_key(
        self,
        conn: sqlite3.Connection,
        call: Call,
        attempt: int,
        locked_until: float,
        now: float,
        response: tuple[int, dict] | None = None,
    ) -> None:
        """Record an attempt under the key: held until ``locked_until``, or with its saved ``response``."""
        if call.idempotency_key is None:
            return
        status, body = response if response is not None else (None, None)
        conn.execute(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, attempts, locked_until, response_status,"
            " response_body, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO UPDATE SET"
            " fingerprint = excluded.fingerprint, attempts = excluded.attempts, locked_until = excluded.locked_until,"
            " response_status = excluded.response_status, response_body = excluded.response_body",
            (
                call.scope,
                call.idempotency_key,
                call.fingerprint,
                attempt,
                locked_until,
                status,
                None if body is None else json.dumps(body, separators=(",", ":")),
                now,
            ),
        )

    def _replay(self, record: sqlite3.Row, plan: Plan) -> Outcome:
        faults = (Fault.LOST_RESPONSE.value,) if plan.lose_response else ()
        return Outcome(
            record["response_status"],
            json.loads(record["response_body"]),
            replayed=True,
            drop_connection=plan.lose_response,
            faults=faults,
        )

    # --- timers and reads -----------------------------------------------------------------------

    def _run_timers(self, conn: sqlite3.Connection, now: float) -> bool:
        """Apply every transition that is due (authorization expiry, processing, refund settlement)."""
        due = conn.execute("SELECT id, kind, object_id FROM timers WHERE due_at <= ? ORDER BY due_at, id", (now,))
        rows = due.fetchall()
        if not rows:
            return False
        ctx = Ctx(conn=conn, now=int(now), knobs=self.knobs.current(), chance=self._chance)
        for row in rows:
            TIMERS[row["kind"]](ctx, row["object_id"])
            conn.execute("DELETE FROM timers WHERE id = ?", (row["id"],))
        if ctx.webhooks_queued:
            self._on_webhooks()
        return True

    def read(self, reader: Callable[[sqlite3.Connection, float], dict], *, plan: Plan | None = None) -> Outcome:
        """A GET: due timers first (one write transaction only when some are due), then the read."""
        plan = plan or Plan()
        faults: list[str] = []
        try:
            if plan.unavailable:
                raise _FaultAnswer(errors.unavailable(), (Fault.UNAVAILABLE.value,))
            if plan.timeout:
                self._hang(faults)
        except _FaultAnswer as answer:
            return Outcome(answer.error.status, answer.error.body(), faults=answer.faults)
        if plan.latency:
            faults.append(Fault.LATENCY.value)
            self._sleep(plan.latency)
        conn = self.store.connection()
        now = self.now(conn)
        next_due = conn.execute("SELECT MIN(due_at) FROM timers").fetchone()[0]
        if next_due is not None and next_due <= now:
            with self.store.transaction() as locked:
                self._run_timers(locked, now)
        try:
            body = reader(conn, now)
        except errors.StripeError as error:
            return Outcome(error.status, error.body(), faults=tuple(faults))
        if plan.lose_response:
            faults.append(Fault.LOST_RESPONSE.value)
        return Outcome(200, body, drop_connection=plan.lose_response, faults=tuple(faults))

    def tick(self) -> float | None:
        """Background work: due timers and pruned keys; returns the next timer's due time."""
        with self.store.transaction() as conn:
            now = self.now(conn)
            self._run_timers(conn, now)
            conn.execute("DELETE FROM idempotency_keys WHERE created <= ?", (now - KEY_LIFETIME_SECONDS,))
            return conn.execute("SELECT MIN(due_at) FROM timers").fetchone()[0]


class _FaultAnswer(Exception):
    def __init__(self, error: errors.StripeError, faults: tuple[str, ...]) -> None:
        super().__init__(error.message)
        self.error = error
        self.faults = faults


def _in_use() -> errors.StripeError:
    return errors.StripeError(
        409,
        "invalid_request_error",
        "There is currently another in-progress request using this idempotency key (that probably means you "
        "submitted twice, and the other request is still going through). Please try again later.",
        code="idempotency_key_in_use",
        saved=False,
    )


def new_request_id() -> str:
    return "req_" + secrets.token_hex(7)
