"""Publishing outbox rows to Pub/Sub.

Rows are taken with SELECT ... FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite serialises writers), so
the web process and any number of relays never publish the same row at the same time. A crash
between publish and marking the row re-publishes it later: consumers deduplicate on event_id.
"""

import atexit
import json
import logging
import os
import queue
import random
import threading
import uuid

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from observability import metrics
from payments import clients
from payments.models import OutboxEvent

logger = logging.getLogger(__name__)


def _encode(event: OutboxEvent) -> bytes:
    return json.dumps(event.body, separators=(",", ":"), sort_keys=True).encode()


RELAY_CRASH_EXIT_CODE = 70


def relay_crash_rate() -> float:
    """OUTBOX_RELAY_CRASH_RATE, honoured only with FAULT_INJECTION_ENABLED (never in production)."""
    return settings.OUTBOX_RELAY_CRASH_RATE if settings.FAULT_INJECTION_ENABLED else 0.0


def _publish_locked(events: list[OutboxEvent], *, crash_rate: float = 0.0) -> int:
    """Publish rows the caller holds locked; mark the ones Pub/Sub accepted. Returns how many.

    crash_rate (chaos runs, relay only): the chance that the process dies right after a successful
    publish, before the row is marked, so the row is published again later with the same event_id.
    """
    publisher = clients.publisher()
    futures = [
        (event, publisher.publish(clients.topic_path(event.topic), _encode(event), **event.attributes))
        for event in events
    ]
    published = 0
    for event, future in futures:
        event.publish_attempts += 1
        try:
            message_id = future.result(timeout=settings.PUBSUB_PUBLISH_TIMEOUT_SECONDS)
        except Exception as error:
            event.last_error = f"{type(error).__name__}: {error}"[:2000]
            logger.warning(
                "outbox: publishing %s %s failed (attempt %s): %s",
                event.event_type,
                event.pk,
                event.publish_attempts,
                event.last_error,
                extra={"payment_id": str(event.payment_id)},
            )
        else:
            if crash_rate and random.random() < crash_rate:
                logger.critical("fault injection: relay dies after publishing %s, before marking it", event.pk)
                logging.shutdown()
                os._exit(RELAY_CRASH_EXIT_CODE)
            event.published_at = timezone.now()
            event.last_error = ""
            published += 1
            logger.info(
                "outbox: published %s %s as message %s",
                event.event_type,
                event.pk,
                message_id,
                extra={"payment_id": str(event.payment_id), "correlation_id": event.attributes.get("correlation_id")},
            )
    _mark(events)
    return published


def _mark(events: list[OutboxEvent]) -> None:
    """Store the publish results: one UPDATE for the published rows, one per failed row.

    (bulk_update's per-row CASE expressions cost more CPU than the rest of a payment's request.)
    """
    published = [event for event in events if event.published_at is not None]
    if published:
        OutboxEvent.objects.filter(pk__in=[event.pk for event in published]).update(
            published_at=timezone.now(), publish_attempts=F("publish_attempts") + 1, last_error=""
        )
        metrics.outbox_published(published)
    for event in events:
        if event.published_at is None:
            OutboxEvent.objects.filter(pk=event.pk).update(
                publish_attempts=F("publish_attempts") + 1, last_error=event.last_error
            )


def publish_events_now(event_ids: list[uuid.UUID]) -> int:
    """Publish these rows if nobody has (nor holds them); returns how many were published."""
    with transaction.atomic():
        events = list(
            OutboxEvent.objects.select_for_update(skip_locked=True).filter(pk__in=event_ids, published_at__isnull=True)
        )
        return _publish_locked(events) if events else 0


def republish(payment, event_type: str) -> bool:
    """Publish a payment's event again with its event id (the reconciler's redrive); True if published."""
    with transaction.atomic():
        requeued = list(
            OutboxEvent.objects.select_for_update(skip_locked=True).filter(
                payment=payment, event_type=event_type, published_at__isnull=False
            )
        )
        for event in requeued:
            event.published_at = None
        return _publish_locked(requeued) > 0 if requeued else False


# The commit publisher keeps its database connection this long after its last row, then gives it back.
PUBLISHER_IDLE_SECONDS = 10.0


class CommitPublisher:
    """Publishes outbox rows right after the commit that wrote them, on one background thread per process.

    The request that wrote a row returns once it committed: it never waits for Pub/Sub (a publish is a
    round trip after up to 10 ms of client-side batching, and took a third of the request's CPU on a
    second transaction). Rows committed close together go out in one transaction and one UPDATE. A row
    this thread has not published when the process dies, or whose publish failed, is the relay's.

    in_request (OUTBOX_PUBLISH_IN_REQUEST, set on Cloud Run): publish in the committing thread instead,
    before the response. With request-based billing Cloud Run takes the CPU away once a response is
    sent, so a background thread would stall holding the row's lock, and the relay skips locked rows.
    """

    def __init__(self, batch_size: int = 100, *, in_request: bool = False) -> None:
        self.batch_size = batch_size
        self.in_request = in_request
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pid: int | None = None
        self._queue: queue.SimpleQueue[uuid.UUID | threading.Event] = queue.SimpleQueue()
        self._submitted = self._done = 0

    def submit(self, event_id: uuid.UUID) -> None:
        if self.in_request:
            try:
                publish_events_now([event_id])
            except Exception:
                logger.exception("outbox: publishing %s in the request failed; the relay will retry", event_id)
            return
        with self._lock:
            if self._pid != os.getpid():
                # First use in this process (gunicorn forks workers after import): a thread of its own.
                self._queue, self._submitted, self._done = queue.SimpleQueue(), 0, 0
                threading.Thread(target=self._run, name="outbox-commit-publisher", daemon=True).start()
                self._pid = os.getpid()
            self._submitted += 1
        self._queue.put(event_id)

    def flush(self, timeout: float) -> bool:
        """Wait until every row submitted so far was handed to Pub/Sub (or left to the relay)."""
        with self._changed:
            target = self._submitted
            return self._changed.wait_for(lambda: self._done >= target, timeout)

    def release_connection(self, timeout: float) -> bool:
        """Have this process's publisher thread close its database connection now (before a test
        database is dropped); True once it did, or when the process has no such thread."""
        with self._lock:
            if self._pid != os.getpid():
                return True
        released = threading.Event()
        self._queue.put(released)
        return released.wait(timeout)

    def _run(self) -> None:
        while True:
            try:
                items = [self._queue.get(timeout=PUBLISHER_IDLE_SECONDS)]
            except queue.Empty:
                # Idle: give the database connection back rather than hold one per idle worker. Not
                # after every row: at a steady 20 payments/s that was a new connection per payment.
                connection.close()
                continue
            while len(items) < self.batch_size:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch = [item for item in items if not isinstance(item, threading.Event)]
            if batch:
                self._publish(batch)
            releases = [item for item in items if isinstance(item, threading.Event)]
            if releases:
                connection.close()
                for released in releases:
                    released.set()

    def _publish(self, batch: list[uuid.UUID]) -> None:
        try:
            publish_events_now(batch)
        except Exception:
            logger.exception("outbox: publishing %d row(s) after commit failed; the relay will retry", len(batch))
        finally:
            # As Django does after a request: drop a connection that failed or outlived CONN_MAX_AGE.
            close_old_connections()
            with self._changed:
                self._done += len(batch)
                self._changed.notify_all()


commit_publisher = CommitPublisher(in_request=settings.OUTBOX_PUBLISH_IN_REQUEST)
# A worker that exits normally (SIGTERM, max_requests) publishes what it queued instead of leaving it
# to the relay's next pass.
atexit.register(commit_publisher.flush, timeout=5)


def relay_batch(*, batch_size: int) -> tuple[int, int]:
    """Publish up to batch_size unpublished rows, oldest first. Returns (taken, published)."""
    with transaction.atomic():
        events = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True)
            .order_by("created_at")[:batch_size]
        )
        if not events:
            return 0, 0
        return len(events), _publish_locked(events, crash_rate=relay_crash_rate())


def log_oldest_pending() -> None:
    """After a relay pass: the age of the oldest unpublished row (the outbox alert reads this field)."""
    oldest = OutboxEvent.objects.filter(published_at__isnull=True).order_by("created_at").values("created_at").first()
    if oldest is not None:
        age = (timezone.now() - oldest["created_at"]).total_seconds()
        logger.info(
            "outbox: oldest unpublished row is %.0f s old", age, extra={"outbox_oldest_pending_seconds": round(age, 1)}
        )
