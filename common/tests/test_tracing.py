"""binpay_common.tracing: the exporter choice, one provider per process, and a message's handling
continuing the trace its attributes carry. (The initiator's suite follows one payment's trace through
both services, the Pub/Sub emulator and the gateway.)"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from binpay_common import tracing
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

COMMON = Path(__file__).resolve().parents[1]


def test_off_locally_console_on_request_and_nothing_else(monkeypatch) -> None:
    monkeypatch.setenv("BINPAY_ENV", "development")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "")
    assert tracing.exporter_from_env() is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert isinstance(tracing.exporter_from_env(), ConsoleSpanExporter)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER must be"):
        tracing.exporter_from_env()


def test_cloud_trace_without_credentials_turns_tracing_off_instead_of_failing_start_up(
    monkeypatch, caplog, tmp_path
) -> None:
    monkeypatch.setenv("BINPAY_ENV", "production")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-credentials.json"))

    with caplog.at_level(logging.WARNING, logger="binpay_common.tracing"):
        assert tracing.exporter_from_env() is None

    assert "tracing off" in caplog.text


def test_a_consumer_continues_the_trace_of_its_message_in_a_process_with_one_provider() -> None:
    program = """
import json
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from binpay_common import tracing

exporter = InMemorySpanExporter()
off = tracing.install("binpay-test", None)
first = tracing.install("binpay-test", exporter, span_processor=SimpleSpanProcessor)
provider = trace.get_tracer_provider()
again = tracing.install("binpay-other", InMemorySpanExporter(), span_processor=SimpleSpanProcessor)

with trace.get_tracer("test").start_as_current_span("POST /initiate-payment") as post:
    attributes = {"event_type": "payment.initiated", "payment_id": "p-1", **tracing.trace_attributes()}

@tracing.consumes_message
def handle(data, attributes):
    return tracing.trace_attributes()["traceparent"]

outgoing = handle(b"{}", attributes=attributes)
[consumer] = [span for span in exporter.get_finished_spans() if span.name == "payment.initiated process"]
print(json.dumps({
    "off": off, "first": first, "again": again,
    "same_provider": trace.get_tracer_provider() is provider,
    "service": provider.resource.attributes["service.name"],
    "post_trace": format(post.get_span_context().trace_id, "032x"),
    "post_span": format(post.get_span_context().span_id, "016x"),
    "consumer_trace": format(consumer.context.trace_id, "032x"),
    "consumer_parent": format(consumer.parent.span_id, "016x"),
    "consumer_kind": consumer.kind.name,
    "consumer_payment": consumer.attributes["binpay.payment_id"],
    "outgoing": outgoing,
}))
"""
    result = json.loads(
        subprocess.run([sys.executable, "-c", program], cwd=COMMON, capture_output=True, text=True, check=True).stdout
    )

    assert (result["off"], result["first"], result["again"]) == (False, True, True)
    assert (result["same_provider"], result["service"]) == (True, "binpay-test")
    assert result["consumer_trace"] == result["post_trace"]
    assert result["consumer_parent"] == result["post_span"]
    assert (result["consumer_kind"], result["consumer_payment"]) == ("CONSUMER", "p-1")
    # What the consumer publishes carries the same trace on.
    assert result["outgoing"].split("-")[1] == result["post_trace"]
