"""The processor's metrics (Prometheus, on METRICS_PORT) and traces (OpenTelemetry).

Metrics: gateway latency and errors, consumer lag.

Served on METRICS_PORT (default 9090, 0 = off), never on the web port (binpay_common.metrics_server):
gunicorn's master adds up its workers' samples (multiprocess mode, a private directory made at
start, gunicorn.conf.py); the pull worker serves its own. The development server (`python app.py`)
serves none.

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
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

import requests
from binpay_common import metrics_server
from flask import Flask
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from prometheus_client import Counter, Histogram

logger = logging.getLogger(__name__)

GATEWAY_LATENCY = Histogram(
    "binpay_gateway_request_duration_seconds",
    "Requests to the payment gateway, by route and HTTP status (status 0: no answer).",
    ["method", "route", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
GATEWAY_ERRORS = Counter(
    "binpay_gateway_errors_total",
    "Gateway requests that did not succeed, by the gateway's error code (or the transport error).",
    ["method", "route", "code"],
)
CONSUMER_LAG = Histogram(
    "binpay_processor_consumer_lag_seconds",
    "payment.initiated messages: Pub/Sub publish time to handled by the pull worker, by disposition.",
    ["disposition"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
_CHARGE_ID = re.compile(r"^/v1/charges/(?!cancel$)[^/]+")


def gateway_route(path: str) -> str:
    """The route template, so charge ids do not become label values."""
    return _CHARGE_ID.sub("/v1/charges/{charge_id}", path.split("?", 1)[0])


def gateway_answered(method: str, path: str, response: requests.Response, started: float) -> None:
    route = gateway_route(path)
    GATEWAY_LATENCY.labels(method, route, str(response.status_code)).observe(time.perf_counter() - started)
    if response.status_code >= 400:
        try:
            code = (response.json().get("error") or {}).get("code")
        except (ValueError, AttributeError):
            code = None
        GATEWAY_ERRORS.labels(method, route, code or f"http_{response.status_code}").inc()


def gateway_unanswered(method: str, path: str, error: requests.RequestException, started: float) -> None:
    route = gateway_route(path)
    GATEWAY_LATENCY.labels(method, route, "0").observe(time.perf_counter() - started)
    GATEWAY_ERRORS.labels(method, route, type(error).__name__).inc()


def message_handled(publish_time: datetime, disposition: str) -> None:
    CONSUMER_LAG.labels(disposition).observe(max(0.0, (datetime.now(UTC) - publish_time).total_seconds()))


def start_worker() -> None:
    """The pull worker's tracing, and its own metrics server on METRICS_PORT."""
    configure_tracing(exporter_from_env())
    metrics_server.serve_from_env()


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
        FlaskInstrumentor().instrument_app(app, excluded_urls="healthz,readyz")


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
