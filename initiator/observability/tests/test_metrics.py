"""The initiator's metrics count what happened, as it happened, and a scrape reads no table."""

import json
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F
from django.test import TestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY, generate_latest

from binpay_common import metrics_server
from observability import metrics
from payments import clients, settlement
from payments.handlers import handle_outcome_message
from payments.models import DeadLetter, OutboxEvent, Payment, ReconcilerPass
from payments.operator import SettleAction, settle_payment
from payments.outbox import relay_batch
from testing.fixtures import (
    SandboxGatewayMixin,
    completion_event,
    create_topic,
    make_user,
    pending_payment,
    processor_logged,
    rollback_event,
    unique_name,
)


class Figures:
    """Samples of the process's registry, and how much each grew since this snapshot."""

    def __init__(self) -> None:
        self.before = self.samples()

    @staticmethod
    def samples() -> dict[tuple, float]:
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in REGISTRY.collect()
            for sample in family.samples
        }

    def grew(self, name: str, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        return self.samples().get(key, 0.0) - self.before.get(key, 0.0)


def deliver(body: dict, attributes: dict) -> None:
    assert handle_outcome_message(data=json.dumps(body).encode(), attributes=attributes) == "applied"


class CountersTests(TransactionTestCase):
    """Only committed work is counted (on_commit), hence a transactional test case."""

    def test_payments_settlements_and_saga_durations(self) -> None:
        figures = Figures()
        user = make_user()
        completed, rolled_back, _pending = (pending_payment(user) for _ in range(3))
        # The saga took 90 s for the rolled-back one: it lands in the 300 s bucket, not the 60 s one.
        Payment.objects.filter(pk=rolled_back.pk).update(created_at=F("created_at") - timedelta(seconds=90))
        deliver(*completion_event(completed))
        deliver(*rollback_event(rolled_back))

        self.assertEqual(figures.grew("binpay_payments_initiated_total"), 3)
        self.assertEqual(figures.grew("binpay_payments_settled_total", status="completed"), 1)
        self.assertEqual(figures.grew("binpay_payments_settled_total", status="rolled_back"), 1)
        self.assertEqual(figures.grew("binpay_saga_duration_seconds_count"), 2)
        self.assertEqual(figures.grew("binpay_saga_duration_seconds_bucket", le="60.0"), 1)
        self.assertEqual(figures.grew("binpay_saga_duration_seconds_bucket", le="300.0"), 2)
        self.assertGreaterEqual(figures.grew("binpay_saga_duration_seconds_sum"), 90)

    def test_the_settlement_paths_of_the_reconciler_sweeper_and_operators_count(self) -> None:
        """payments.settlement, through which every actor settles: a hold for attention, then its release
        (an operator's, a reconciler's), and a capture."""
        # The saga-log client is cached with its collection: none built here may outlive the override.
        clients.reset_clients()
        self.addCleanup(clients.reset_clients)
        figures = Figures()
        user = make_user()
        captured, held = pending_payment(user), pending_payment(user)
        with override_settings(FIRESTORE_COLLECTION=unique_name("transactions")):
            settlement.capture(event=completion_event(captured)[0], detail={"source": "reconciler"})
            settlement.hold_for_attention(
                payment_id=held.pk, reason="gateway_unreachable", detail={"source": "reconciler"}
            )
            settlement.release(
                event=rollback_event(held, reason_code="released_by_operator")[0],
                detail={"source": "operator", "actor": "alice", "reason": "the provider holds nothing"},
            )

        self.assertEqual(figures.grew("binpay_payments_settled_total", status="completed"), 1)
        self.assertEqual(figures.grew("binpay_payments_settled_total", status="needs_attention"), 1)
        self.assertEqual(figures.grew("binpay_payments_settled_total", status="rolled_back"), 1)
        self.assertEqual(figures.grew("binpay_saga_duration_seconds_count"), 2)

    def test_a_rolled_back_transaction_counts_nothing(self) -> None:
        figures = Figures()
        user = make_user()
        try:
            with transaction.atomic():
                pending_payment(user)
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        self.assertEqual(Payment.objects.count(), 0)
        self.assertEqual(figures.grew("binpay_payments_initiated_total"), 0)

    def test_outbox_publishes_dead_letters_and_reconciler_passes(self) -> None:
        topic = create_topic()
        with override_settings(PUBSUB_TOPIC=topic, OUTBOX_PUBLISH_ON_COMMIT=False):
            user = make_user()
            pending_payment(user)
            pending_payment(user)
            OutboxEvent.objects.update(topic=topic)
            figures = Figures()
            self.assertEqual(relay_batch(batch_size=10), (2, 2))
        DeadLetter.objects.create(subscription="completion-sub", message_id="m1", data=b"x")
        ReconcilerPass.objects.create(
            started_at=timezone.now(), finished_at=timezone.now(), counts={"captured": 3, "error": 1}
        )

        self.assertEqual(figures.grew("binpay_outbox_publish_lag_seconds_count"), 2)
        self.assertEqual(figures.grew("binpay_dead_letters_total", subscription="completion-sub"), 1)
        self.assertEqual(figures.grew("binpay_reconciler_passes_total"), 1)
        self.assertEqual(figures.grew("binpay_reconciler_payments_total", outcome="captured"), 3)
        self.assertEqual(figures.grew("binpay_reconciler_payments_total", outcome="error"), 1)


class ProviderCallTests(SandboxGatewayMixin, TestCase):
    def test_the_initiators_own_provider_calls_are_counted(self) -> None:
        """An operator's release cancels the intent at the provider (payments/claims.py), as the reconciler
        and the sweeper do: the process's gateway client, not the fixture's, counts the call."""
        clients.reset_clients()
        payment = pending_payment(make_user())
        processor_logged(payment, intent=self.gateway.intent(payment, confirm=False))
        settlement.hold_for_attention(
            payment_id=payment.pk, reason="gateway_unreachable", detail={"source": "reconciler"}
        )
        figures = Figures()

        with self.captureOnCommitCallbacks(execute=True):
            settle_payment(
                payment_id=payment.pk, action=SettleAction.RELEASE, reason="checked at the provider", actor="alice"
            )

        calls = "binpay_initiator_gateway_request_duration_seconds_count"
        self.assertEqual(figures.grew(calls, operation="cancel", outcome="ok"), 1)
        self.assertEqual(figures.grew("binpay_payments_settled_total", status="rolled_back"), 1)


class StateGaugeTests(TransactionTestCase):
    def test_refresh_reads_the_backlog_and_the_last_pass(self) -> None:
        with override_settings(OUTBOX_PUBLISH_ON_COMMIT=False):
            pending_payment(make_user())
        OutboxEvent.objects.update(created_at=F("created_at") - timedelta(seconds=30))
        ReconcilerPass.objects.create(started_at=timezone.now(), finished_at=timezone.now(), counts={})
        last = ReconcilerPass.objects.create(
            started_at=timezone.now(), finished_at=timezone.now() + timedelta(seconds=2), counts={}
        )

        with CaptureQueriesContext(connection) as queries:
            metrics.refresh_state_gauges()

        self.assertEqual(len(queries), 3)
        self.assertEqual(REGISTRY.get_sample_value("binpay_outbox_unpublished"), 1)
        self.assertGreaterEqual(REGISTRY.get_sample_value("binpay_outbox_oldest_unpublished_age_seconds"), 30)
        self.assertEqual(
            REGISTRY.get_sample_value("binpay_reconciler_last_pass_timestamp_seconds"), last.finished_at.timestamp()
        )
        self.assertAlmostEqual(REGISTRY.get_sample_value("binpay_reconciler_last_pass_duration_seconds"), 2, places=3)

    def test_a_scrape_runs_no_query_however_many_rows(self) -> None:
        user = make_user()
        for _ in range(20):
            pending_payment(user)
        with CaptureQueriesContext(connection) as queries:
            text = generate_latest(metrics_server.registry()).decode()
        self.assertEqual(len(queries), 0, [query["sql"] for query in queries])
        self.assertIn("binpay_payments_initiated_total", text)
