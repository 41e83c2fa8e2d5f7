"""/metrics against the test database: every figure is what the rows say."""

import json
from datetime import timedelta

from django.db.models import F
from django.test import Client, TestCase
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from payments.handlers import handle_outcome_message
from payments.models import DeadLetter, OutboxEvent, Payment, ReconcilerPass
from testing.fixtures import completion_event, make_user, pending_payment, rollback_event


def scrape(host: str = "10.1.2.3:8080") -> dict[str, list]:
    response = Client(HTTP_HOST=host).get("/metrics")
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.content.decode())}


def sample(families: dict, name: str, **labels) -> float:
    for samples in families.values():
        for candidate in samples:
            if candidate.name == name and all(candidate.labels.get(k) == v for k, v in labels.items()):
                return candidate.value
    raise AssertionError(f"no sample {name} {labels}")


def deliver(body: dict, attributes: dict) -> None:
    assert handle_outcome_message(data=json.dumps(body).encode(), attributes=attributes) == "applied"


class MetricsTests(TestCase):
    def test_figures_match_the_database(self) -> None:
        user = make_user()
        completed, rolled_back, pending = (pending_payment(user) for _ in range(3))
        deliver(*completion_event(completed))
        deliver(*rollback_event(rolled_back))
        # The saga took 90 s for the rolled-back one: it lands in the 300 s bucket, not the 60 s one.
        Payment.objects.filter(pk=rolled_back.pk).update(created_at=F("updated_at") - timedelta(seconds=90))
        # The relay published two of the three payment.initiated rows, 20 ms after they were written.
        OutboxEvent.objects.exclude(payment=pending).update(published_at=F("created_at") + timedelta(milliseconds=20))
        DeadLetter.objects.create(subscription="completion-sub", message_id="m1", data=b"x")
        ReconcilerPass.objects.create(started_at=timezone.now(), finished_at=timezone.now(), counts={"captured": 9})
        last = ReconcilerPass.objects.create(
            started_at=timezone.now(),
            finished_at=timezone.now() + timedelta(seconds=2),
            counts={"captured": 3, "error": 1},
        )

        families = scrape()

        self.assertEqual(sample(families, "binpay_payments", status="completed"), 1)
        self.assertEqual(sample(families, "binpay_payments", status="rolled_back"), 1)
        self.assertEqual(sample(families, "binpay_payments", status="pending"), 1)
        self.assertEqual(sample(families, "binpay_payments", status="needs_attention"), 0)
        self.assertEqual(sample(families, "binpay_saga_duration_seconds_count"), 2)
        self.assertEqual(sample(families, "binpay_saga_duration_seconds_bucket", le="60.0"), 1)
        self.assertEqual(sample(families, "binpay_saga_duration_seconds_bucket", le="300.0"), 2)
        self.assertGreaterEqual(sample(families, "binpay_saga_duration_seconds_sum"), 90)
        self.assertEqual(sample(families, "binpay_outbox_unpublished"), 1)
        self.assertGreater(sample(families, "binpay_outbox_oldest_unpublished_age_seconds"), 0)
        self.assertEqual(sample(families, "binpay_outbox_publish_lag_seconds_count"), 2)
        self.assertEqual(sample(families, "binpay_outbox_publish_lag_seconds_bucket", le="0.01"), 0)
        self.assertEqual(sample(families, "binpay_outbox_publish_lag_seconds_bucket", le="0.05"), 2)
        self.assertEqual(sample(families, "binpay_consumer_lag_seconds_count"), 2)
        self.assertEqual(sample(families, "binpay_dead_letters_total", subscription="completion-sub"), 1)
        self.assertEqual(sample(families, "binpay_reconciler_passes_total"), 2)
        self.assertEqual(sample(families, "binpay_reconciler_last_pass_payments", outcome="captured"), 3)
        self.assertEqual(sample(families, "binpay_reconciler_last_pass_payments", outcome="error"), 1)
        self.assertEqual(
            sample(families, "binpay_reconciler_last_pass_timestamp_seconds"), last.finished_at.timestamp()
        )
        self.assertAlmostEqual(sample(families, "binpay_reconciler_last_pass_duration_seconds"), 2, places=3)

    def test_the_scrape_is_answered_whatever_the_host_header(self) -> None:
        # A host ALLOWED_HOSTS refuses for every other path (scrapers send the pod IP).
        self.assertEqual(Client(HTTP_HOST="10.9.8.7").get("/users").status_code, 400)
        self.assertIn("binpay_payments", scrape("10.9.8.7"))
