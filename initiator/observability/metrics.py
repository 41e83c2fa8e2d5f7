"""The initiator's Prometheus metrics, read from the database at scrape time.

Every figure is derived from rows (payments, outbox, inbox, dead letters, reconciler passes)
when /metrics is scraped, not counted in memory: the payments are settled by the outcome
consumer, the reconciler job and the web's push endpoint, in separate processes and pods, and
gunicorn runs several workers, so in-process counters would each see a part. The database sees
all of it, and any worker answers the same. Counters are monotonic because the rows are never
deleted (a purge of old rows would show as a counter reset, which Prometheus handles).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from binpay_common import events
from payments.models import DeadLetter, OutboxEvent, Payment, PaymentStatus, ProcessedEvent, ReconcilerPass

# Seconds. A saga settles in well under a second when all is well; the reconciler's timeout is ten minutes.
SAGA_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 600, 1800, 3600)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
SETTLED = (PaymentStatus.COMPLETED, PaymentStatus.ROLLED_BACK)


def _histogram(
    name: str, documentation: str, rows: QuerySet, start: str, end: str, buckets: Sequence[float]
) -> HistogramMetricFamily:
    """A cumulative histogram of (end - start) over `rows`, computed by one aggregate query."""
    rows = rows.annotate(elapsed=ExpressionWrapper(F(end) - F(start), output_field=DurationField()))
    aggregates = {f"le_{i}": Count("pk", filter=Q(elapsed__lte=timedelta(seconds=b))) for i, b in enumerate(buckets)}
    figures = rows.aggregate(total=Count("pk"), elapsed_sum=Sum("elapsed"), **aggregates)
    histogram = HistogramMetricFamily(name, documentation)
    histogram.add_metric(
        [],
        buckets=[(str(float(b)), figures[f"le_{i}"]) for i, b in enumerate(buckets)] + [("+Inf", figures["total"])],
        sum_value=(figures["elapsed_sum"] or timedelta()).total_seconds(),
    )
    return histogram


class DatabaseCollector(Collector):
    def collect(self) -> Iterator:
        payments = GaugeMetricFamily("binpay_payments", "Payments by status.", labels=["status"])
        counts = dict.fromkeys(PaymentStatus.values, 0)
        counts.update(Payment.objects.values_list("status").annotate(n=Count("pk")).order_by())
        for status, count in sorted(counts.items()):
            payments.add_metric([status], count)
        yield payments

        yield _histogram(
            "binpay_saga_duration_seconds",
            "Settled payments: from the POST that created them to their capture or release.",
            Payment.objects.filter(status__in=SETTLED),
            "created_at",
            "updated_at",
            SAGA_BUCKETS,
        )

        unpublished = OutboxEvent.objects.filter(published_at__isnull=True)
        yield GaugeMetricFamily(
            "binpay_outbox_unpublished", "Outbox rows not yet published.", value=unpublished.count()
        )
        oldest = unpublished.order_by("created_at").values_list("created_at", flat=True).first()
        yield GaugeMetricFamily(
            "binpay_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox row (0 when none).",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0,
        )
        yield _histogram(
            "binpay_outbox_publish_lag_seconds",
            "Outbox rows: written (with the payment) to published to Pub/Sub.",
            OutboxEvent.objects.filter(published_at__isnull=False),
            "created_at",
            "published_at",
            LAG_BUCKETS,
        )
        yield _histogram(
            "binpay_consumer_lag_seconds",
            "Outcome events: payment.initiated published to the outcome applied by the initiator's consumer.",
            ProcessedEvent.objects.filter(
                payment__outbox_events__event_type=events.PAYMENT_INITIATED,
                payment__outbox_events__published_at__isnull=False,
            ),
            "payment__outbox_events__published_at",
            "processed_at",
            SAGA_BUCKETS,
        )

        dead_letters = CounterMetricFamily(
            "binpay_dead_letters", "Messages received from the dead-letter topic.", labels=["subscription"]
        )
        for subscription, count in DeadLetter.objects.values_list("subscription").annotate(n=Count("pk")).order_by():
            dead_letters.add_metric([subscription], count)
        yield dead_letters
        yield from _reconciler()


def _reconciler() -> Iterator:
    """The passes so far and what the last one did (sum_over_time of the gauge gives totals per outcome)."""
    yield CounterMetricFamily(
        "binpay_reconciler_passes", "Reconciler passes recorded.", value=ReconcilerPass.objects.count()
    )
    last = ReconcilerPass.objects.order_by("-started_at", "-id").first()
    if last is None:
        return
    outcomes = GaugeMetricFamily(
        "binpay_reconciler_last_pass_payments",
        "Payments the last reconciler pass handled, by outcome.",
        labels=["outcome"],
    )
    for outcome, count in sorted(last.counts.items()):
        outcomes.add_metric([outcome], count)
    yield outcomes
    yield GaugeMetricFamily(
        "binpay_reconciler_last_pass_timestamp_seconds",
        "When the last reconciler pass finished (Unix time).",
        value=last.finished_at.timestamp(),
    )
    yield GaugeMetricFamily(
        "binpay_reconciler_last_pass_duration_seconds",
        "How long the last reconciler pass took.",
        value=(last.finished_at - last.started_at).total_seconds(),
    )


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(DatabaseCollector())


def metrics_response() -> HttpResponse:
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
