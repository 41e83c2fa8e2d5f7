"""OpenTelemetry traces, the same in both services; the trace context rides in Pub/Sub attributes.

OTEL_TRACES_EXPORTER picks where spans go: `gcp_trace` (Cloud Trace, the default when
BINPAY_ENV=production), `console` (stdout, for a local look) or `none` (the default elsewhere: no
provider, no instrumentation, nothing to pay). Sampling follows the SDK's own OTEL_TRACES_SAMPLER /
OTEL_TRACES_SAMPLER_ARG (default: parent-based, always on).

A payment is one trace: the initiator's POST span is current when the payment.initiated attributes
are built (trace_attributes), so its W3C `traceparent` is stored with the outbox row and published
with it; the processor continues the trace (consuming) and puts its own context on the outcome
event, which the initiator's consumer continues in turn. Each service instruments its own web
framework after `install` (Django: observability/tracing.py; Flask: binpay_processor/observability.py).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from .env import env_str

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("binpay")
# Probes would be most of the spans and say nothing about payments (metrics have their own port).
UNTRACED_URLS = "healthz,readyz"
_install_lock = threading.Lock()
_installed = False


def exporter_from_env() -> SpanExporter | None:
    production = env_str("BINPAY_ENV", "development") == "production"
    choice = env_str("OTEL_TRACES_EXPORTER", "gcp_trace" if production else "none")
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


def install(service_name: str, exporter: SpanExporter | None, *, span_processor=BatchSpanProcessor) -> bool:
    """Install the tracer provider and instrument `requests`, once per process; False (nothing done)
    without an exporter. The caller then instruments its web framework."""
    global _installed
    if exporter is None:
        return False
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    with _install_lock:
        if not _installed:
            provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
            provider.add_span_processor(span_processor(exporter))
            trace.set_tracer_provider(provider)
            RequestsInstrumentor().instrument()
            _installed = True
    return True


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
