"""The processor's metrics (Prometheus, on METRICS_PORT) and traces (OpenTelemetry).

Metrics: provider call latency by operation and outcome, consumer lag.

Served on METRICS_PORT (default 9090, 0 = off), never on the web port (binpay_common.metrics_server):
gunicorn's master adds up its workers' samples (multiprocess mode, a private directory made at
start, gunicorn.conf.py); the pull worker serves its own. The development server (`python app.py`)
serves none.

Traces: binpay_common.tracing (OTEL_TRACES_EXPORTER, the trace context in message attributes);
here only the Flask app's instrumentation.
"""

from __future__ import annotations

from datetime import UTC, datetime

from binpay_common import metrics_server, tracing
from binpay_common.tracing import exporter_from_env
from flask import Flask
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from prometheus_client import Histogram

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


def start_worker() -> None:
    """The pull worker's tracing, and its own metrics server on METRICS_PORT."""
    configure_tracing(exporter_from_env())
    metrics_server.serve_from_env()


# --- traces ----------------------------------------------------------------------------------

SERVICE_NAME = "binpay-processor"


def configure_tracing(exporter: SpanExporter | None, app: Flask | None = None, *, span_processor=BatchSpanProcessor):
    """Install tracing once per process (binpay_common.tracing) and instrument `app`; nothing without an exporter."""
    if not tracing.install(SERVICE_NAME, exporter, span_processor=span_processor):
        return
    if app is not None:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app, excluded_urls=tracing.UNTRACED_URLS)
