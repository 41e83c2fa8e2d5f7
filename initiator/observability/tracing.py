"""The initiator's traces: binpay_common.tracing (exporter choice, the trace context in message
attributes), plus the Django instrumentation, which must not stand before the probes' middleware."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from binpay_common import tracing

SERVICE_NAME = "binpay-initiator"
# Answer before anything checks the Host header (settings.MIDDLEWARE); the instrumentor puts its
# middleware first, and it reads the host, which would refuse probes sent to the pod IP.
HOST_EXEMPT_MIDDLEWARE = ("core.middleware.ProbeMiddleware",)


def configure(exporter: SpanExporter | None, *, span_processor=BatchSpanProcessor) -> bool:
    """Install tracing and instrument Django; False (nothing done) without an exporter."""
    if not tracing.install(SERVICE_NAME, exporter, span_processor=span_processor):
        return False
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().instrument(excluded_urls=tracing.UNTRACED_URLS)
    _after_host_exempt_middleware()
    return True


def _after_host_exempt_middleware() -> None:
    from django.conf import settings

    ours = [name for name in settings.MIDDLEWARE if not name.startswith("opentelemetry.")]
    theirs = [name for name in settings.MIDDLEWARE if name.startswith("opentelemetry.")]
    position = max((ours.index(name) + 1 for name in HOST_EXEMPT_MIDDLEWARE if name in ours), default=0)
    settings.MIDDLEWARE = ours[:position] + theirs + ours[position:]
