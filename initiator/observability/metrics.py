"""The initiator's Prometheus metrics: counted as the work happens, served on METRICS_PORT.

A scrape never touches the database (binpay_common.metrics_server). Counters and histograms are
incremented where the work happens: Django signals on the rows that record it (observability.signals),
after the transaction commits, the outbox's publish marking (payments/outbox.py) and the provider
gateway's observer (payments/clients.py: the reconciler's, sweeper's and operators' calls). Gunicorn's workers
write to one multiprocess directory the master adds up; the consumer and the loops serve their own.
Each process counts what it did: Prometheus adds processes and replicas up with `sum`, and a restart
is a counter reset, which `rate()` and `increase()` handle.

Two figures describe state, not events: the outbox backlog and the last reconciler pass. Each web
worker refreshes them every METRICS_REFRESH_SECONDS with index-bound queries (the partial index on
unpublished rows, the primary key of the passes), so their cost is fixed by the clock, not by the
number of scrapes or the size of the tables.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone
from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

# Seconds. A saga settles in well under a second when all is well; the reconciler's timeout is ten minutes.
SAGA_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 600, 1800, 3600)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)

PAYMENTS_INITIATED = Counter("binpay_payments_initiated_total", "Payments created (amount held, saga started).")
PAYMENTS_SETTLED = Counter(
    "binpay_payments_settled_total",
    "Payments that reached completed, rolled_back or needs_attention, by that status.",
    ["status"],
)
SAGA_DURATION = Histogram(
    "binpay_saga_duration_seconds",
    "Settled payments: from the POST that created them to their capture or release.",
    buckets=SAGA_BUCKETS,
)
OUTBOX_PUBLISH_LAG = Histogram(
    "binpay_outbox_publish_lag_seconds",
    "Outbox rows: written (with the payment) to published to Pub/Sub.",
    buckets=LAG_BUCKETS,
)
DEAD_LETTERS = Counter("binpay_dead_letters_total", "Messages received from the dead-letter topic.", ["subscription"])
RECONCILER_PASSES = Counter("binpay_reconciler_passes_total", "Reconciler passes finished.")
RECONCILER_PAYMENTS = Counter(
    "binpay_reconciler_payments_total", "Payments reconciler passes handled, by outcome.", ["outcome"]
)
# The initiator's own provider calls: its reconciler, sweeper and operators settle through payments/claims.py.
# Not the processor's metric name: both services' metrics share one registry where a test runs them together.
GATEWAY_LATENCY = Histogram(
    "binpay_initiator_gateway_request_duration_seconds",
    "The initiator's calls to the payment provider, by operation and outcome (ok, declined, rejected, ambiguous).",
    ["operation", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
# State, refreshed in the background; 'mostrecent': the latest refresh of any worker wins.
OUTBOX_UNPUBLISHED = Gauge(
    "binpay_outbox_unpublished", "Outbox rows not yet published.", multiprocess_mode="mostrecent"
)
OUTBOX_OLDEST_AGE = Gauge(
    "binpay_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest unpublished outbox row (0 when none), as of the last refresh.",
    multiprocess_mode="mostrecent",
)
RECONCILER_LAST_PASS = Gauge(
    "binpay_reconciler_last_pass_timestamp_seconds",
    "When the last reconciler pass finished (Unix time).",
    multiprocess_mode="mostrecent",
)
RECONCILER_LAST_PASS_DURATION = Gauge(
    "binpay_reconciler_last_pass_duration_seconds",
    "How long the last reconciler pass took.",
    multiprocess_mode="mostrecent",
)


def payment_saved(payment, *, created: bool) -> None:
    if created:
        PAYMENTS_INITIATED.inc()
        return
    from payments.models import PaymentStatus

    if payment.status == PaymentStatus.PENDING:
        return
    PAYMENTS_SETTLED.labels(payment.status).inc()
    if payment.status in (PaymentStatus.COMPLETED, PaymentStatus.ROLLED_BACK):
        SAGA_DURATION.observe(max(0.0, (payment.updated_at - payment.created_at).total_seconds()))


def gateway_call(operation: str, outcome: str, seconds: float) -> None:
    """binpay_common.gateway's observer (payments/clients.py): one provider call."""
    GATEWAY_LATENCY.labels(operation, outcome).observe(seconds)


def outbox_published(events) -> None:
    """Called with the rows one publish marked (each with its published_at)."""
    for event in events:
        OUTBOX_PUBLISH_LAG.observe(max(0.0, (event.published_at - event.created_at).total_seconds()))


def dead_letter_received(letter) -> None:
    DEAD_LETTERS.labels(letter.subscription).inc()


def reconciler_pass_recorded(record) -> None:
    RECONCILER_PASSES.inc()
    for outcome, count in record.counts.items():
        RECONCILER_PAYMENTS.labels(outcome).inc(count)


def refresh_state_gauges() -> None:
    """The outbox backlog and the last reconciler pass: three index-bound queries."""
    from payments.models import OutboxEvent, ReconcilerPass

    unpublished = OutboxEvent.objects.filter(published_at__isnull=True)
    oldest = unpublished.order_by("created_at").values_list("created_at", flat=True).first()
    OUTBOX_UNPUBLISHED.set(unpublished.count())
    OUTBOX_OLDEST_AGE.set((timezone.now() - oldest).total_seconds() if oldest else 0)
    last = ReconcilerPass.objects.order_by("-id").first()
    if last is not None:
        RECONCILER_LAST_PASS.set(last.finished_at.timestamp())
        RECONCILER_LAST_PASS_DURATION.set((last.finished_at - last.started_at).total_seconds())


def start_state_refresher() -> threading.Thread:
    """A daemon thread refreshing the state gauges every METRICS_REFRESH_SECONDS (a gunicorn worker's)."""

    def run() -> None:
        while True:
            try:
                refresh_state_gauges()
            except DatabaseError as error:
                logger.warning("metrics: state gauges not refreshed: %s", error)
            finally:
                close_old_connections()
            time.sleep(settings.METRICS_REFRESH_SECONDS)

    thread = threading.Thread(target=run, name="metrics-state-refresher", daemon=True)
    thread.start()
    return thread
