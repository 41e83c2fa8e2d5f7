"""The processor's metrics (Prometheus, GET /metrics) and traces (OpenTelemetry).

Metrics: provider call latency by operation and outcome, consumer lag.

Several processes count: gunicorn's workers (push deliveries) and the pull worker. With
PROMETHEUS_MULTIPROC_DIR set (before the process starts; a directory they share, emptied when
the pod or `make run` starts) prometheus_client's multiprocess mode writes every process's
samples there and /metrics adds them up. Without it each process counts on its own (tests, the
development server). The pull worker in its own pod serves /metrics itself on METRICS_PORT.

Traces: OTEL_TRACES_EXPORTER is `gcp_trace` (Cloud Trace; the default when BINPAY_ENV=production),
`console` or `none` (the default elsewhere: nothing is installed). A payment.initiated message
carries the initiator's W3C `traceparent` in its attributes; the processor's handling continues
that trace, its gateway calls are child spans, and the outcome event carries the context on.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import Blueprint, Flask, Response
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

logger = logging.getLogger(__name__)
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
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
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
    port = os.environ.get("METRICS_PORT")
    if port:
        start_http_server(int(port), registry=_registry())


# --- traces ----------------------------------------------------------------------------------

SERVICE_NAME = "binpay-processor"
tracer = trace.get_tracer("binpay.processor")
_provider_lock = threading.Lock()
_provider_installed = False


def exporter_from_env() -> SpanExporter | None:
    production = os.environ.get("BINPAY_ENV") == "production"
    choice = os.environ.get("OTEL_TRACES_EXPORTER") or ("gcp_trace" if production else "none")
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    if choice == "gcp_trace":
        from google.auth.exceptions import DefaultCredentialsError
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

        try:
            return CloudTraceSpanExporter()
        except DefaultCredentialsError as error:
            # Traces are worth having, not worth refusing to serve payments over.
            logger.warning("tracing off: no credentials for Cloud Trace (%s)", error)
            return None
    raise ValueError(f"OTEL_TRACES_EXPORTER must be gcp_trace, console or none, not {choice!r}")


def configure_tracing(exporter: SpanExporter | None, app: Flask | None = None, *, span_processor=BatchSpanProcessor):
    """Install the tracer provider once per process and instrument requests (and `app`); nothing without an exporter."""
    global _provider_installed
    if exporter is None:
        return
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    with _provider_lock:
        if not _provider_installed:
            provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
            provider.add_span_processor(span_processor(exporter))
            trace.set_tracer_provider(provider)
            RequestsInstrumentor().instrument()
            _provider_installed = True
    if app is not None:
        FlaskInstrumentor().instrument_app(app, excluded_urls="healthz,readyz,metrics")


def trace_attributes() -> dict[str, str]:
    """The current trace context as message attributes (`traceparent`, `tracestate` when set)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def consuming(event_type: str | None, attributes: Mapping[str, str]) -> Iterator[trace.Span]:
    """A consumer span for one message, continuing the trace its attributes carry."""
    token = context.attach(propagate.extract(dict(attributes or {})))
    try:
        with tracer.start_as_current_span(
            f"{event_type or 'message'} process",
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "gcp_pubsub",
                "messaging.operation.type": "process",
                "binpay.event_id": str(attributes.get("event_id", "")),
                "binpay.payment_id": str(attributes.get("payment_id", "")),
            },
        ) as span:
            yield span
    finally:
        context.detach(token)


def consumes_message(handler: Callable) -> Callable:
    """Run `handler` (which takes an `attributes` argument) in a consuming() span."""
    signature = inspect.signature(handler)

    @functools.wraps(handler)
    def traced(*args, **kwargs):
        attributes = signature.bind(*args, **kwargs).arguments.get("attributes") or {}
        with consuming(attributes.get("event_type"), attributes):
            return handler(*args, **kwargs)

    return traced
