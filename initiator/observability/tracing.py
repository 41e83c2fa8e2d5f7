"""OpenTelemetry traces of the initiator; the trace context rides in Pub/Sub message attributes.

OTEL_TRACES_EXPORTER picks where spans go: `gcp_trace` (Cloud Trace, the default when
BINPAY_ENV=production), `console` (stdout, for a local look) or `none` (the default elsewhere: no
provider, no instrumentation, nothing to pay). Sampling follows the SDK's own OTEL_TRACES_SAMPLER /
OTEL_TRACES_SAMPLER_ARG (default: parent-based, always on).

A payment is one trace: the POST's span is current when the payment.initiated attributes are built,
so its W3C `traceparent` is stored with the outbox row and published with it; the processor
continues the trace and puts its own context on the outcome event, which the initiator's
consumer continues in turn.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

logger = logging.getLogger("observability.tracing")
SERVICE_NAME = "binpay-initiator"
tracer = trace.get_tracer("binpay.initiator")


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


def configure(exporter: SpanExporter | None, *, span_processor=BatchSpanProcessor) -> bool:
    """Install the tracer provider and instrument Django and requests; False (nothing done) without an exporter."""
    if exporter is None:
        return False
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(span_processor(exporter))
    trace.set_tracer_provider(provider)
    # Probes would be most of the spans and say nothing about payments.
    DjangoInstrumentor().instrument(excluded_urls="healthz,readyz")
    _after_host_exempt_middleware()
    RequestsInstrumentor().instrument()
    return True


# Answer before anything checks the Host header (settings.MIDDLEWARE); the instrumentor puts its
# middleware first, and it reads the host, which would refuse probes sent to the pod IP.
HOST_EXEMPT_MIDDLEWARE = ("core.middleware.ProbeMiddleware",)


def _after_host_exempt_middleware() -> None:
    from django.conf import settings

    ours = [name for name in settings.MIDDLEWARE if not name.startswith("opentelemetry.")]
    theirs = [name for name in settings.MIDDLEWARE if name.startswith("opentelemetry.")]
    position = max((ours.index(name) + 1 for name in HOST_EXEMPT_MIDDLEWARE if name in ours), default=0)
    settings.MIDDLEWARE = ours[:position] + theirs + ours[position:]


def trace_attributes() -> dict[str, str]:
    """The current trace context as message attributes (`traceparent`, `tracestate` when set)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def consuming(event_type: str | None, attributes: Mapping[str, str]) -> Iterator[trace.Span]:
    """A consumer span for one message, continuing the trace its attributes carry."""
    parent = propagate.extract(dict(attributes or {}))
    token = context.attach(parent)
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
