"""The gateway's latency and errors as the processor counted them, against the real sandbox gateway (the
metrics server on METRICS_PORT: tests/test_processes.py)."""

from __future__ import annotations

from binpay_processor.observability import gateway_route
from conftest import make_event, push_envelope
from prometheus_client import REGISTRY


def samples(_client) -> dict[tuple, float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
    }


def value(figures: dict, name: str, **labels) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


def test_gateway_requests_and_errors_are_counted_by_route_status_and_code(client, topics):
    before = samples(client)
    for amount in (10000, 10051):  # approved, then declined (card_declined)
        data, attributes = make_event(amount)
        assert client.post("/pubsub/push", json=push_envelope(data, attributes)).status_code == 200
    after = samples(client)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    charge = {"method": "POST", "route": "/v1/charges"}
    assert grew("binpay_gateway_request_duration_seconds_count", **charge, status="201") == 1
    assert grew("binpay_gateway_request_duration_seconds_count", **charge, status="402") == 1
    assert grew("binpay_gateway_request_duration_seconds_sum", **charge, status="201") > 0
    assert grew("binpay_gateway_errors_total", **charge, code="card_declined") == 1


def test_charge_ids_do_not_become_label_values():
    assert gateway_route("/v1/charges/ch_123/refunds") == "/v1/charges/{charge_id}/refunds"
    assert gateway_route("/v1/charges/ch_123") == "/v1/charges/{charge_id}"
    assert gateway_route("/v1/charges/cancel") == "/v1/charges/cancel"
    assert gateway_route("/v1/charges?reference=p1") == "/v1/charges"
