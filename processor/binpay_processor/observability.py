"""The processor's metrics (Prometheus, GET /metrics) and traces (OpenTelemetry).

Metrics: gateway latency and errors, consumer lag.

Several processes count: gunicorn's workers (push deliveries) and the pull worker. With
PROMETHEUS_MULTIPROC_DIR set (before the process starts; a directory they share, emptied when
the pod or `make run` starts) prometheus_client's multiprocess mode writes every process's
samples there and /metrics adds them up. Without it each process counts on its own (tests, the
development server). The pull worker in its own pod serves /metrics itself on METRICS_PORT.

Traces: binpay_common.tracing (OTEL_TRACES_EXPORTER, the trace context in message attributes);
here only the Flask app's instrumentation. saga.py and events.py reach the shared helpers through
this module (`observability.consumes_message`, `observability.trace_attributes`).
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime

import requests
from binpay_common import tracing
from binpay_common.tracing import consumes_message as consumes_message  # re-exported for saga.py
from binpay_common.tracing import exporter_from_env
from binpay_common.tracing import trace_attributes as trace_attributes  # re-exported for events.py
from flask import Blueprint, Flask, Response
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

bp = Blueprint("metrics", __name__)

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


def configure_tracing(exporter: SpanExporter | None, app: Flask | None = None, *, span_processor=BatchSpanProcessor):
    """Install tracing once per process (binpay_common.tracing) and instrument `app`; nothing without an exporter."""
    if not tracing.install(SERVICE_NAME, exporter, span_processor=span_processor):
        return
    if app is not None:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app, excluded_urls=tracing.UNTRACED_URLS)
