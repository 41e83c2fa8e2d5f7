"""The processor's metrics (Prometheus, GET /metrics) and traces (OpenTelemetry).

Metrics: provider call latency by operation and outcome, consumer lag.

Several processes count: gunicorn's workers (push deliveries) and the pull worker. With
PROMETHEUS_MULTIPROC_DIR set (before the process starts; a directory they share, emptied when
the pod or `make run` starts) prometheus_client's multiprocess mode writes every process's
samples there and /metrics adds them up. Without it each process counts on its own (tests, the
development server). The pull worker in its own pod serves /metrics itself on METRICS_PORT.

Traces: binpay_common.tracing (OTEL_TRACES_EXPORTER, the trace context in message attributes);
here only the Flask app's instrumentation.
"""

from __future__ import annotations

from datetime import UTC, datetime

from binpay_common import tracing
from binpay_common.env import env_int, env_str
from binpay_common.tracing import exporter_from_env
from flask import Blueprint, Flask, Response
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

bp = Blueprint("metrics", __name__)

GATEWAY_LATENCY = Histogram(
    "binpay_gateway_request_duration_seconds",
    "Calls to the payment provider, by operation and outcome (ok, declined, rejected, ambiguous).",
    ["operation", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
CONSUMER_LAG = Histogram(
    "binpay_processor_consumer_lag_seconds",
    "payment.initiated messages: Pub/Sub publish time to handled by the pull worker, by disposition.",
    ["disposition"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)


def gateway_call(operation: str, outcome: str, seconds: float) -> None:
    """binpay_common.gateway's observer: one provider call."""
    GATEWAY_LATENCY.labels(operation, outcome).observe(seconds)


def message_handled(publish_time: datetime, disposition: str) -> None:
    CONSUMER_LAG.labels(disposition).observe(max(0.0, (datetime.now(UTC) - publish_time).total_seconds()))


def _registry() -> CollectorRegistry:
    if env_str("PROMETHEUS_MULTIPROC_DIR", None) is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)


def start_worker() -> None:
    """The pull worker's tracing, and its own /metrics on METRICS_PORT when set (its pod has no web server)."""
    configure_tracing(exporter_from_env())
    port = env_int("METRICS_PORT", None)
    if port is not None:
        start_http_server(port, registry=_registry())


# --- traces ----------------------------------------------------------------------------------

SERVICE_NAME = "binpay-processor"


def configure_tracing(exporter: SpanExporter | None, app: Flask | None = None, *, span_processor=BatchSpanProcessor):
    """Install tracing once per process (binpay_common.tracing) and instrument `app`; nothing without an exporter."""
    if not tracing.install(SERVICE_NAME, exporter, span_processor=span_processor):
        return
    if app is not None:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app, excluded_urls=tracing.UNTRACED_URLS)
