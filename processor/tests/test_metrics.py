"""The provider calls as the processor counted them, against the real sandbox gateway (the metrics server
on METRICS_PORT: tests/test_processes.py)."""

from __future__ import annotations

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


def test_provider_calls_are_counted_by_operation_and_outcome(client, topics):
    before = samples(client)
    for amount in (10000, 10051):  # approved, then declined (and its intent canceled)
        data, attributes = make_event(amount)
        assert client.post("/pubsub/push", json=push_envelope(data, attributes)).status_code == 200
    after = samples(client)

    def grew(operation: str, outcome: str, suffix: str = "count") -> float:
        name = f"binpay_gateway_request_duration_seconds_{suffix}"
        labels = {"operation": operation, "outcome": outcome}
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("create", "ok") == 2
    assert grew("confirm", "ok") == 1 and grew("confirm", "declined") == 1
    assert grew("cancel", "ok") == 1
    assert grew("confirm", "ok", "sum") > 0
