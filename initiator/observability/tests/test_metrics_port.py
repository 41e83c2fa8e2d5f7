"""Issue 22 (H1): the metrics are served on METRICS_PORT only, by a live gunicorn, and a scrape reads
counters kept as the work happened: no database query, whatever the tables hold."""

import requests
from prometheus_client.parser import text_string_to_metric_families

from testing.fixtures import api_client, free_port, make_user, wait_until
from testing.live import LiveGunicornTestCase


def scrape(url: str) -> dict[tuple, float]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


class MetricsPortTests(LiveGunicornTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.metrics_port = free_port()
        cls.server_env = {"METRICS_PORT": str(cls.metrics_port), "METRICS_REFRESH_SECONDS": "1"}
        super().setUpClass()

    def test_the_public_port_does_not_serve_metrics(self) -> None:
        for host in ("x", "localhost"):
            response = requests.get(f"{self.base}/metrics", headers={"Host": host}, timeout=10)
            self.assertNotEqual(response.status_code, 200, response.text[:200])
            self.assertNotIn("binpay_", response.text)

    def test_the_metrics_port_counts_what_the_workers_did(self) -> None:
        metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        _, raw_key = api_client()
        user = make_user()
        for _ in range(3):
            response = requests.post(
                f"{self.base}/initiate-payment",
                data={"user_id": user.pk, "amount": "1.00"},
                headers={"Authorization": f"Bearer {raw_key}"},
                timeout=10,
            )
            self.assertEqual(response.status_code, 202, response.text)

        # Both gunicorn workers may have served the POSTs: the master adds their counts up.
        figures = scrape(metrics_url)
        self.assertEqual(figures[("binpay_payments_initiated_total", ())], 3)
        # The outbox gauges are refreshed in the background (every METRICS_REFRESH_SECONDS), not per scrape.
        self.assertTrue(
            wait_until(lambda: ("binpay_outbox_unpublished", ()) in scrape(metrics_url), deadline_seconds=20),
            scrape(metrics_url),
        )
