"""Two deliveries of one payment at the same time: one intent, one charge, one set of steps, one outcome event."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from binpay_common.events import parse_payment_initiated
from binpay_common.saga_log import LeaseLost, Step
from binpay_processor.saga import Disposition
from conftest import make_event, money, push_envelope, step_names

APPROVED = ["RECEIVED", "INTENT_CREATED", "CHARGED", "COMPLETED"]


def run_concurrently(*calls):
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def worker(index, call):
        barrier.wait()
        results[index] = call()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def redeliver_until_acked(processor, data, attributes, dispositions):
    """Pub/Sub redelivers whatever was not acked; do the same for every unacked delivery."""
    for attempt in range(2, 8):
        if all(disposition.ack for disposition in dispositions):
            return
        dispositions[:] = [
            d if d.ack else processor.handle_payment_initiated(data, attributes, attempt).disposition
            for d in dispositions
        ]
    raise AssertionError(f"still not acked: {dispositions}")


# 57 confirms after SANDBOX_LATENCY_MS (0.7 s here), holding the key: the second delivery arrives mid-charge.
@pytest.mark.parametrize("amount", [10000, 10057], ids=["fast", "slow-gateway"])
def test_two_concurrent_handlers_charge_once_and_publish_once(processor, client, topics, gateway_url, amount):
    data, attributes = make_event(amount)
    payment_id = attributes["payment_id"]

    results = run_concurrently(
        lambda: processor.handle_payment_initiated(data, attributes, 1),
        lambda: processor.handle_payment_initiated(data, attributes, 1),
    )
    dispositions = [result.disposition for result in results]
    # The lease turned one of them away, or it came after the other had published the outcome.
    assert Disposition.BUSY in dispositions or "duplicate" in [result.detail for result in results]
    redeliver_until_acked(processor, data, attributes, dispositions)

    assert step_names(client, payment_id) == APPROVED
    held = money(gateway_url, payment_id)
    assert len(held.intents) == 1 and held.succeeded == 1
    assert len(topics.pull(topics.completion)) == 1
    assert topics.pull(topics.rollback) == []


def test_push_and_pull_deliveries_at_once_charge_once(app, processor, topics, gateway_url):
    data, attributes = make_event(10057)
    payment_id = attributes["payment_id"]
    push_client = app.test_client()

    push_response, pull_result = run_concurrently(
        lambda: push_client.post("/pubsub/push", json=push_envelope(data, attributes)),
        lambda: processor.handle_payment_initiated(data, attributes, 1),
    )

    # one of them did the work; the other found the lease taken (or, if it came late, the outcome published)
    assert push_response.status_code in (200, 429)
    assert pull_result.disposition in (Disposition.DONE, Disposition.BUSY)
    assert push_response.status_code == 200 or pull_result.disposition is Disposition.DONE
    # the redeliveries of the one that was turned away
    assert push_client.post("/pubsub/push", json=push_envelope(data, attributes, 2)).status_code == 200
    assert processor.handle_payment_initiated(data, attributes, 2).disposition is Disposition.DONE
    assert step_names(app.test_client(), payment_id) == APPROVED
    assert money(gateway_url, payment_id).succeeded == 1
    assert len(topics.pull(topics.completion)) == 1


def claim_as(processor, data, attributes, owner: str) -> dict:
    payment = parse_payment_initiated(data, attributes)
    return processor.saga_log.claim_delivery(payment.fields(), owner, [Step("RECEIVED")]).doc


def test_a_crashed_deliverys_lease_blocks_until_it_expires(processor, client, topics, gateway_url):
    data, attributes = make_event(10000)
    payment_id = attributes["payment_id"]
    claim_as(processor, data, attributes, "crashed-worker")

    assert processor.handle_payment_initiated(data, attributes, 2).disposition is Disposition.BUSY
    assert money(gateway_url, payment_id).succeeded == 0

    processor.saga_log.document(payment_id).update({"lease_expires_at": datetime.now(UTC) - timedelta(seconds=1)})
    assert processor.handle_payment_initiated(data, attributes, 3).disposition is Disposition.DONE
    assert step_names(client, payment_id) == APPROVED
    assert len(topics.pull(topics.completion)) == 1


@pytest.mark.parametrize(
    "steps_done",
    [
        ["NEEDS_ATTENTION"],
        # An initiator actor refunded and released it: its REFUNDED is no processor outcome to resume from.
        ["RECEIVED", "INTENT_CREATED", "CHARGED", "REFUND_REQUESTED", "REFUNDED", "COMPENSATED"],
    ],
    ids=["needs-attention", "refunded-by-the-initiator"],
)
def test_a_payment_the_initiator_settled_is_not_confirmed(processor, client, topics, gateway_url, steps_done):
    """The initiator claimed the payment (and settled it) before this late message arrived."""
    data, attributes = make_event(10000)
    payment_id = attributes["payment_id"]
    document = processor.saga_log.document(payment_id)
    document.set(
        {
            "payment_id": payment_id,
            "state": steps_done[-1],
            "version": len(steps_done),
            "steps_done": steps_done,
            "fenced": True,
        }
    )

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    assert document.get().to_dict()["steps_done"] == steps_done
    assert money(gateway_url, payment_id).succeeded == 0
    assert topics.pull(topics.completion) == [] and topics.pull(topics.rollback) == []


def test_a_fence_set_mid_saga_stops_the_delivery_that_holds_the_lease(processor, client, gateway_url):
    data, attributes = make_event(10000)
    payment_id = attributes["payment_id"]
    known = claim_as(processor, data, attributes, "slow-worker")

    # The reconciler fenced the payment (a lease that had lapsed); the slow delivery must not go on.
    processor.saga_log.document(payment_id).update({"fenced": True})
    with pytest.raises(LeaseLost, match="fenced"):
        processor.saga_log.append(
            payment_id, "slow-worker", [Step("INTENT_CREATED", {"intent_id": "pi_late"})], known=known
        )
    with pytest.raises(LeaseLost, match="fenced"):
        processor.saga_log.append(payment_id, "slow-worker", [Step("INTENT_CREATED", {"intent_id": "pi_late"})])
    assert step_names(client, payment_id) == ["RECEIVED"]
