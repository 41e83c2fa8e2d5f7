"""The saga log's writes without a read: a delivery that knows the document as it last wrote it
writes on the condition that nobody changed it since, and falls back to the transaction when
somebody did (the initiator's fence or step, another delivery). The guarantees stay those of the
transaction: the lease, the fence, each step once and in order."""

from __future__ import annotations

import pytest
from binpay_processor.events import parse_payment_initiated
from binpay_processor.saga import Disposition
from binpay_processor.saga_log import ClaimStatus, LeaseLost, SagaLog
from conftest import make_event, step_names


@pytest.fixture
def saga_log(processor):
    return SagaLog(processor.clients.firestore, processor.settings.firestore_collection, 30)


def claimed(saga_log, amount=10000, owner="worker-a"):
    data, attributes = make_event(amount)
    claim = saga_log.claim(parse_payment_initiated(data, attributes), owner=owner)
    assert claim.status is ClaimStatus.CLAIMED
    return attributes["payment_id"], claim.doc


def test_an_approved_charge_logs_charged_and_completed_in_one_commit_in_order(processor, client, topics):
    data, attributes = make_event(10000)

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    payment_id = attributes["payment_id"]
    assert step_names(client, payment_id) == ["RECEIVED", "CHARGED", "COMPLETED"]
    steps = {
        step.get("step"): step.to_dict()
        for step in processor.clients.firestore.collection(processor.settings.firestore_collection)
        .document(payment_id)
        .collection("steps")
        .stream()
    }
    # One commit: both steps carry the commit's server timestamp.
    assert steps["CHARGED"]["at"] == steps["COMPLETED"]["at"]
    assert steps["RECEIVED"]["at"] < steps["CHARGED"]["at"]
    assert len(topics.pull(topics.completion)) == 1


def test_a_fence_set_after_the_deliverys_last_write_stops_its_next_write(saga_log, client):
    payment_id, known = claimed(saga_log)
    # The reconciler fenced the payment after this delivery's claim; the delivery's copy is stale.
    saga_log.collection.document(payment_id).update({"fenced": True})

    with pytest.raises(LeaseLost, match="fenced"):
        saga_log.append_step(payment_id, "worker-a", "CHARGED", {"charge_id": "ch_1"}, known=known)

    assert step_names(client, payment_id) == ["RECEIVED"]


def test_a_lease_taken_over_since_the_last_write_stops_the_old_delivery(saga_log, client):
    payment_id, known = claimed(saga_log)
    saga_log.collection.document(payment_id).update({"lease_owner": "worker-b"})

    with pytest.raises(LeaseLost, match="worker-b"):
        saga_log.append_steps(payment_id, "worker-a", [("CHARGED", {"charge_id": "ch_1"}, {})], known=known)

    assert step_names(client, payment_id) == ["RECEIVED"]


def test_a_step_another_writer_logged_meanwhile_is_not_logged_twice(saga_log, client):
    payment_id, known = claimed(saga_log)
    # Another write by this owner's saga (e.g. a retried commit whose answer was lost) logged CHARGED.
    saga_log.append_step(payment_id, "worker-a", "CHARGED", {"charge_id": "ch_1"}, {"charge_id": "ch_1"})

    doc = saga_log.append_steps(
        payment_id, "worker-a", [("CHARGED", {"charge_id": "ch_1"}, {}), ("COMPLETED", {}, {})], known=known
    )

    assert doc["steps_done"] == ["RECEIVED", "CHARGED", "COMPLETED"]
    assert step_names(client, payment_id) == ["RECEIVED", "CHARGED", "COMPLETED"]


def test_marking_published_after_the_initiator_logged_its_step_still_releases_the_lease(saga_log, client):
    payment_id, known = claimed(saga_log)
    known = saga_log.append_steps(payment_id, "worker-a", [("COMPLETED", {}, {})], known=known)
    # The outcome reached the initiator before the mark: its CAPTURED step changed the document.
    document = saga_log.collection.document(payment_id)
    document.update({"steps_done": ["RECEIVED", "COMPLETED", "CAPTURED"], "state": "CAPTURED", "version": 3})

    saga_log.mark_published(payment_id, "worker-a", "message-1", known=known)

    stored = document.get().to_dict()
    assert (stored["outcome_published"], stored["outcome_message_id"]) == (True, "message-1")
    assert (stored["lease_owner"], stored["lease_expires_at"]) == (None, None)
    assert stored["steps_done"] == ["RECEIVED", "COMPLETED", "CAPTURED"]


def test_the_second_first_delivery_finds_the_document_and_the_lease_taken(saga_log):
    data, attributes = make_event(10000)
    payment = parse_payment_initiated(data, attributes)

    first = saga_log.claim(payment, owner="worker-a")
    second = saga_log.claim(payment, owner="worker-b")

    assert (first.status, second.status) == (ClaimStatus.CLAIMED, ClaimStatus.BUSY)
    assert saga_log.collection.document(payment.payment_id).get().to_dict()["steps_done"] == ["RECEIVED"]
