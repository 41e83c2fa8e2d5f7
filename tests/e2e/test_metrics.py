"""After a small burst on the real stack, both services' metrics servers (METRICS_PORT) tell what the database
and the provider say, and the web ports serve no metrics."""

from __future__ import annotations

import collections

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from stack import build_stack

# Each kind of outcome: approved, declined by the gateway (magic amount), refunded after the charge.
BURST = [("30.00", {})] * 6 + [("100.51", {})] * 3 + [("42.00", {"metadata[simulate_failure]": "after_charge"})] * 3


@pytest.fixture(scope="module")
def metrics_stack(emulator_env, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics-stack")
    # The relay drains once at start and then not during the test: it takes any committed row the web
    # server's publisher has not locked yet, so it would count some publishes in its own process.
    built = build_stack("pull", emulator_env, tmp, extra_env={"OUTBOX_RELAY_INTERVAL_SECONDS": "3600"})
    yield built
    dead = built.dead()
    built.stop_all()
    assert not dead, f"processes died during the run: {dead}"


def scrape(url: str) -> dict[tuple, float]:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(figures: dict, name: str, **labels) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_match_the_database_and_the_provider_after_a_burst(metrics_stack, report_figures):
    stack = metrics_stack
    user = stack.create_funded_user("1000.00")
    api = stack.api()
    payment_ids = []
    for amount, fields in BURST:
        response = api.post(
            f"{stack.initiator_url}/initiate-payment",
            data={"user_id": user["id"], "amount": amount, **fields},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        payment_ids.append(response.json()["id"])
    stack.wait_terminal(payment_ids)

    listed = api.get(f"{stack.initiator_url}/users/{user['id']}/payments", params={"limit": 100}, timeout=10).json()
    by_status = collections.Counter(payment["status"] for payment in listed["data"])
    money = [stack.money(payment_id) for payment_id in payment_ids]
    succeeded = sum(row.succeeded for row in money)
    declined = sum(row.declined for row in money)
    refunds = sum(row.refunds for row in money)
    assert (by_status["completed"], by_status["rolled_back"]) == (6, 6)
    assert (succeeded, declined, refunds) == (9, 3, 3)

    for web in (stack.initiator_url, stack.processor_url):
        assert "binpay_" not in requests.get(f"{web}/metrics", headers={"Host": "10.20.30.40:8080"}, timeout=10).text
    # Each process counts what it did: the web server the POSTs and their publishes, the consumer the settlements.
    initiator = scrape(stack.metrics_urls["initiator-web"])
    assert value(initiator, "binpay_payments_initiated_total") == len(BURST)
    assert value(initiator, "binpay_outbox_publish_lag_seconds_count") == len(BURST)
    consumer = scrape(stack.metrics_urls["initiator-consumer"])
    for status in ("completed", "rolled_back"):
        assert value(consumer, "binpay_payments_settled_total", status=status) == by_status[status], status
    assert value(consumer, "binpay_saga_duration_seconds_count") == len(BURST)
    assert value(consumer, "binpay_saga_duration_seconds_sum") > 0

    # In pull mode the worker calls the provider: its own metrics server.
    processor = scrape(stack.metrics_urls["processor-worker"])
    calls = "binpay_gateway_request_duration_seconds_count"
    assert value(processor, calls, operation="confirm", outcome="ok") == succeeded
    assert value(processor, calls, operation="confirm", outcome="declined") == declined
    assert value(processor, calls, operation="cancel", outcome="ok") == declined
    assert value(processor, calls, operation="refund", outcome="ok") == refunds
    handled = sum(
        count for (name, _labels), count in processor.items() if name == "binpay_processor_consumer_lag_seconds_count"
    )
    assert handled >= len(BURST)
    assert "binpay_gateway" not in requests.get(stack.metrics_urls["processor-web"], timeout=10).text
    report_figures(
        f"metrics burst: {len(BURST)} payments, {by_status['completed']} completed, {by_status['rolled_back']} rolled "
        f"back; gateway {succeeded} charges, {declined} declines, {refunds} refunds; saga duration sum "
        f"{value(consumer, 'binpay_saga_duration_seconds_sum'):.2f} s over {len(BURST)}"
    )
