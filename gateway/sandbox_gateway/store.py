"""SQLite persistence: Stripe-shaped objects, events, webhook deliveries, timers, idempotency keys.

One connection per thread, WAL journal, ``synchronous = FULL`` (a committed answer survives a
crash), and every write in a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock
up front: every request's read-check-write runs alone, across threads and processes sharing
the file. That lock is what makes confirm, capture and cancel of one PaymentIntent mutually
exclusive, and what lets one idempotency key execute at most once.

Objects are stored as their JSON bodies with the columns lists and search filter on. Keys of a
body that start with "_" are the sandbox's own (a test card's behaviour, an endpoint's secret)
and never leave it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,             -- payment_intent, charge, refund, customer, payment_method, webhook_endpoint
    created INTEGER NOT NULL,       -- sandbox clock
    customer TEXT,
    payment_intent TEXT,            -- charges and refunds: the intent they belong to
    charge TEXT,                    -- refunds: their charge
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_by_type ON objects (type, seq);
CREATE INDEX IF NOT EXISTS objects_by_intent ON objects (payment_intent, type, seq);
CREATE INDEX IF NOT EXISTS objects_by_customer ON objects (customer, type, seq);
CREATE INDEX IF NOT EXISTS objects_by_charge ON objects (charge, type, seq);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    created INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_type ON events (type, seq);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    due_at REAL NOT NULL,           -- sandbox clock
    expires_at REAL NOT NULL,       -- retries stop here (3 days after the event)
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    claimed_until REAL NOT NULL DEFAULT 0,  -- wall clock: a dispatcher is sending it
    last_http_status INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, due_at);
CREATE TABLE IF NOT EXISTS timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    due_at REAL NOT NULL,           -- sandbox clock
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope TEXT NOT NULL,            -- a hash of the API key: keys are scoped per API key
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    locked_until REAL NOT NULL DEFAULT 0,   -- wall clock: a request is executing under the key
    response_status INTEGER,
    response_body TEXT,
    created REAL NOT NULL,          -- sandbox clock: pruned 24 h after this
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_age ON idempotency_keys (created);
-- Magic saved 500s that already struck (see faults.py): each mark strikes once.
CREATE TABLE IF NOT EXISTS fault_marks (mark TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    offset_seconds REAL NOT NULL
);
INSERT OR IGNORE INTO clock (id, offset_seconds) VALUES (1, 0);
"""


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        # The threads of one process wait for the write lock here, woken as soon as it is free.
        # Left to SQLite, a waiting writer polls with sleeps of up to 100 ms and loses the lock to
        # newcomers meanwhile: under the bench's bursts a create waited up to 18 s (p99 8.6 s).
        # Between processes sharing the file, SQLite's busy handler still decides.
        self._write_lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
        return conn

    def initialize(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self.connection()
        conn.execute("PRAGMA journal_mode = WAL")
        # Every statement is IF NOT EXISTS / OR IGNORE, so processes starting together on one file are fine.
        conn.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its first statement."""
        conn = self.connection()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def check(self) -> None:
        """Raise if the database cannot be read (for /readyz)."""
        self.connection().execute("SELECT count(*) FROM idempotency_keys").fetchone()


def load(conn: sqlite3.Connection, object_id: str, object_type: str) -> dict | None:
    row = conn.execute("SELECT body FROM objects WHERE id = ? AND type = ?", (object_id, object_type)).fetchone()
    return None if row is None else json.loads(row["body"])


def insert(conn: sqlite3.Connection, obj: dict) -> None:
    conn.execute(
        "INSERT INTO objects (id, type, created, customer, payment_intent, charge, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            obj["id"],
            obj["object"],
            obj["created"],
            obj.get("customer"),
            obj.get("payment_intent"),
            obj.get("charge"),
            json.dumps(obj, separators=(",", ":")),
        ),
    )


def save(conn: sqlite3.Connection, obj: dict) -> None:
    conn.execute(
        "UPDATE objects SET customer = ?, body = ? WHERE id = ?",
        (obj.get("customer"), json.dumps(obj, separators=(",", ":")), obj["id"]),
    )


def public(obj: dict) -> dict:
    """The object as the API shows it: without the sandbox's own "_" keys."""
    return {key: value for key, value in obj.items() if not key.startswith("_")}
