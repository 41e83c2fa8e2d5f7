"""Background work of one sandbox process: due timers, pruned keys, signed webhook deliveries.

One daemon thread per process. It sleeps until the next timer or delivery is due (at most
IDLE_SECONDS, so work queued by another process on the same database is found too) or until a
request of this process queues a webhook. Deliveries are claimed in a transaction, so two
processes never send the same delivery row; a duplicate is only ever the duplicate knob.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request

from .events import signature_header
from .service import Engine
from .store import Store

logger = logging.getLogger("sandbox_gateway.webhooks")
IDLE_SECONDS = 1.0
PRUNE_EVERY_SECONDS = 60.0
SEND_TIMEOUT_SECONDS = 10.0
CLAIM_SECONDS = 60.0
BATCH = 20


class Dispatcher:
    def __init__(self, engine: Engine, store: Store) -> None:
        self._engine = engine
        self._store = store
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sandbox-dispatcher", daemon=True)
        self._last_prune = 0.0

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while True:  # a daemon thread: it ends with the process
            try:
                wait = self.step()
            except Exception:
                logger.exception("sandbox dispatcher step failed")
                wait = IDLE_SECONDS
            self._wake.wait(timeout=wait)
            self._wake.clear()

    def step(self) -> float:
        """Do what is due; answer how long to sleep. Idle, it only reads."""
        conn = self._store.connection()
        now = self._engine.now(conn)
        next_timer, next_delivery = self._next_due(conn)
        if (next_timer is not None and next_timer <= now) or time.monotonic() - self._last_prune > PRUNE_EVERY_SECONDS:
            self._last_prune = time.monotonic()
            self._engine.tick()
        if next_delivery is not None and next_delivery <= now:
            while self._deliver_batch():
                pass
        now = self._engine.now(conn)
        upcoming = [value - now for value in self._next_due(conn) if value is not None]
        return max(0.01, min([IDLE_SECONDS, *upcoming]))

    @staticmethod
    def _next_due(conn) -> tuple[float | None, float | None]:
        next_timer = conn.execute("SELECT MIN(due_at) FROM timers").fetchone()[0]
        next_delivery = conn.execute(
            "SELECT MIN(due_at) FROM deliveries WHERE status = 'pending' AND claimed_until < ?", (time.time(),)
        ).fetchone()[0]
        return next_timer, next_delivery

    def _deliver_batch(self) -> bool:
        with self._store.transaction() as conn:
            now = self._engine.now(conn)
            rows = conn.execute(
                "SELECT d.id, d.attempts, d.expires_at, d.endpoint_id, e.id AS event_id, e.type, e.body AS payload,"
                " o.body AS endpoint FROM deliveries d JOIN events e ON e.id = d.event_id"
                " LEFT JOIN objects o ON o.id = d.endpoint_id"
                " WHERE d.status = 'pending' AND d.due_at <= ? AND d.claimed_until < ? ORDER BY d.due_at, d.id LIMIT ?",
                (now, time.time(), BATCH),
            ).fetchall()
            conn.executemany(
                "UPDATE deliveries SET claimed_until = ? WHERE id = ?",
                [(time.time() + CLAIM_SECONDS, row["id"]) for row in rows],
            )
        for row in rows:
            self._deliver(row)
        return len(rows) == BATCH

    def _deliver(self, row) -> None:
        if row["endpoint"] is None:
            self._finish(row, "failed", None, due_at=None)
            return
        endpoint = json.loads(row["endpoint"])
        payload = row["payload"].encode()
        request = urllib.request.Request(  # noqa: S310 - the operator's own endpoint URL
            endpoint["url"],
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": signature_header(payload, endpoint["_secret"], int(time.time())),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_SECONDS) as answer:  # noqa: S310
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError):
            status = None
        attempt = row["attempts"] + 1
        extra = {
            "event_id": row["event_id"],
            "event_type": row["type"],
            "endpoint_id": row["endpoint_id"],
            "http_status": status,
            "attempt": attempt,
        }
        if status is not None and 200 <= status < 300:
            logger.info("webhook delivered", extra=extra)
            self._finish(row, "delivered", status, due_at=None)
            return
        now = self._engine.now(self._store.connection())
        backoff = self._engine.knobs.current().webhook_retry_seconds * 2 ** (attempt - 1)
        if now + backoff > row["expires_at"]:
            logger.warning("webhook delivery failed; retries exhausted", extra=extra)
            self._finish(row, "failed", status, due_at=None)
            return
        logger.warning("webhook delivery failed; will retry", extra={**extra, "retry_in_seconds": backoff})
        self._finish(row, "pending", status, due_at=now + backoff)

    def _finish(self, row, status: str, http_status: int | None, *, due_at: float | None) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "UPDATE deliveries SET status = ?, attempts = attempts + 1, last_http_status = ?, claimed_until = 0,"
                " due_at = COALESCE(?, due_at) WHERE id = ?",
                (status, http_status, due_at, row["id"]),
            )
