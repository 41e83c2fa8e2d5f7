"""One payment is one trace: the initiator's POST, the processor's handling and the initiator's consumer,
through the real Pub/Sub emulator, the Firestore emulator and the real sandbox gateway.

Both services run in this process (the processor's PaymentProcessor is imported from processor/),
so one in-memory exporter sees every span; the trace context crosses only in message attributes.
"""

import sys

from django.conf import settings
from django.test import Client, TestCase, override_settings
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability import tracing
from payments.handlers import handle_outcome_message
from payments.models import OutboxEvent
from testing.fixtures import (
    GATEWAY_API_KEY,
    INITIATOR_DIR,
    SandboxGateway,
    api_client,
    create_subscription,
    create_topic,
    make_user,
    publish,
    pull_messages,
    unique_name,
)

sys.path.insert(0, str(INITIATOR_DIR.parent / "processor"))
from binpay_processor.bootstrap import build_processor  # noqa: E402
from binpay_processor.clients import Clients  # noqa: E402
from binpay_processor.config import Settings  # noqa: E402

EXPORTER = InMemorySpanExporter()


class OneTraceAcrossServicesTests(TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.gateway = SandboxGateway()
        # The provider is process-wide and cannot be replaced: install it once for the whole run.
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            raise AssertionError("a tracer provider is already installed; this test needs its own")
        tracing.configure(EXPORTER, span_processor=SimpleSpanProcessor)

    @classmethod
    def tearDownClass(cls) -> None:
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        DjangoInstrumentor().uninstrument()
        RequestsInstrumentor().uninstrument()
        cls.gateway.stop()
        super().tearDownClass()

    def test_probes_still_answer_any_host_header(self) -> None:
        pod_ip = Client(HTTP_HOST="10.1.2.3:8080")
        self.assertEqual(pod_ip.get("/healthz").status_code, 200)
        self.assertEqual(pod_ip.get("/users").status_code, 400)

    def test_the_post_the_processor_and_the_outcome_share_one_trace_through_pubsub(self) -> None:
        collection = unique_name("transactions")
        initiated_topic, completion_topic, rollback_topic = (create_topic() for _ in range(3))
        initiated_sub = create_subscription(initiated_topic)
        completion_sub = create_subscription(completion_topic)
        processor_settings = Settings.from_env(
            environ={},
            overrides={
                "BINPAY_ENV": "development",
                "PROJECT_ID": settings.PROJECT_ID,
                "FIRESTORE_COLLECTION": collection,
                "PAYMENT_GATEWAY_URL": self.gateway.url,
                "PAYMENT_GATEWAY_API_KEY": GATEWAY_API_KEY,
                "PUBSUB_TOPIC": initiated_topic,
                "PUBSUB_SUBSCRIPTION": initiated_sub,
                "PUBSUB_COMPLETION_TOPIC": completion_topic,
                "PUBSUB_ROLLBACK_TOPIC": rollback_topic,
            },
        )
        processor = build_processor(processor_settings, Clients(processor_settings))
        client, _ = api_client()
        user = make_user()
        EXPORTER.clear()

        with override_settings(FIRESTORE_COLLECTION=collection, OUTBOX_PUBLISH_ON_COMMIT=False):
            response = client.post(
                "/initiate-payment", {"user_id": user.pk, "amount": "12.00"}, content_type="application/json"
            )
            self.assertEqual(response.status_code, 202, response.content)
            outbox = OutboxEvent.objects.get(payment_id=response.json()["id"])
            self.assertIn("traceparent", outbox.attributes)

            # The relay's publish, then the processor's delivery, through the emulator.
            publish(initiated_topic, outbox.body, outbox.attributes)
            [initiated] = pull_messages(initiated_sub, expected=1)
            result = processor.handle_payment_initiated(
                initiated.data, dict(initiated.attributes), 1, initiated.message_id
            )
            self.assertTrue(result.disposition.ack, result)
            [completed] = pull_messages(completion_sub, expected=1)
            self.assertEqual(completed.attributes["event_type"], "payment.completed")
            self.assertIn("traceparent", completed.attributes)
            self.assertEqual(
                handle_outcome_message(data=completed.data, attributes=dict(completed.attributes)), "applied"
            )

        spans = EXPORTER.get_finished_spans()
        [post] = [s for s in spans if s.kind == trace.SpanKind.SERVER]
        [processing] = [s for s in spans if s.name == "payment.initiated process"]
        [settling] = [s for s in spans if s.name == "payment.completed process"]
        # The provider calls (create, confirm): the SDK's requests, instrumented.
        charges = [s for s in spans if s.kind == trace.SpanKind.CLIENT and "/v1/payment_intents" in str(s.attributes)]
        self.assertEqual(len(charges), 2, [(s.name, dict(s.attributes)) for s in spans])

        trace_id = post.context.trace_id
        self.assertEqual({s.context.trace_id for s in (processing, settling, *charges)}, {trace_id})
        self.assertEqual(processing.parent.span_id, post.context.span_id)
        self.assertEqual(settling.parent.span_id, processing.context.span_id)
        self.assertTrue(all(charge.parent.span_id == processing.context.span_id for charge in charges))
        self.assertEqual(completed.attributes["traceparent"].split("-")[1], format(trace_id, "032x"))
