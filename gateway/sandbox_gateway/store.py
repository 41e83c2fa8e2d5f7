"""SQLite persistence: charges, refunds and idempotency records.

One connection per thread, WAL journal, and every write in a ``BEGIN IMMEDIATE`` transaction,
which takes SQLite's write lock up front: requests from several threads or processes that
share the file run their read-check-write sequences one after the other, so two requests with
the same Idempotency-Key can never both create a charge.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    reference TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    failure_code TEXT,
    amount_refunded INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_by_reference ON charges (reference, seq);
CREATE TABLE IF NOT EXISTS refunds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    -- Full refunds only, so a charge has at most one refund.
    charge_id TEXT NOT NULL UNIQUE REFERENCES charges (id),
    amount INTEGER NOT NULL CHECK (amount > 0),
    status TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    -- Unix time until which a request holds the key (in flight); 0 when none does.
    locked_until REAL NOT NULL DEFAULT 0,
    response_status INTEGER,
    response_body TEXT,
    created REAL NOT NULL,
    completed REAL,
    -- Unix time the charge under this key was canceled (POST /v1/charges/cancel); NULL if never.
    canceled REAL
);
"""


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
        return conn

    def initialize(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self.connection()
        conn.execute("PRAGMA journal_mode = WAL")
        # Every statement is IF NOT EXISTS, so processes starting together on one file are fine.
        conn.executescript(SCHEMA)
        with self.transaction() as locked:
            # Ledgers written before cancellation existed (make run keeps its ledger across runs).
            columns = {row["name"] for row in locked.execute("PRAGMA table_info(idempotency_keys)")}
            if "canceled" not in columns:
                locked.execute("ALTER TABLE idempotency_keys ADD COLUMN canceled REAL")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its first statement."""
        conn = self.connection()
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
