"""The saga log's claim, fence and conditional writes, against the Firestore emulator (docs/protocol.md §2, §5)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from binpay_common import steps
from binpay_common.saga_log import (
    CLAIM_SEQ,
    INITIATOR,
    PROCESSOR,
    UPDATE_TIME,
    ClaimStatus,
    LeaseLost,
    SagaLog,
    Step,
)


def payment() -> dict:
    return {"payment_id": str(uuid.uuid4()), "user_id": 7, "amount": 1250, "currency": "USD", "correlation_id": "c-1"}


def processor_log(firestore_client, collection: str, lease_seconds: float = 60) -> SagaLog:
    return SagaLog(firestore_client, collection, lease_seconds, PROCESSOR)


def initiator_log(firestore_client, collection: str, lease_seconds: float = 60, grace: float = 0) -> SagaLog:
    return SagaLog(firestore_client, collection, lease_seconds, INITIATOR, lease_grace=timedelta(seconds=grace))


def intent_created(intent_id: str) -> Step:
    return Step(steps.INTENT_CREATED, {"intent_id": intent_id}, {"intent_id": intent_id})


def test_first_delivery_creates_the_document_with_its_steps_in_one_write(firestore_client, collection) -> None:
    log = processor_log(firestore_client, collection)
    paid = payment()
    claim = log.claim_delivery(paid, "delivery-1", [Step(steps.RECEIVED), intent_created("pi_1")])
    assert claim.status is ClaimStatus.CLAIMED
    doc, logged = log.read_with_steps(paid["payment_id"])
    assert doc["steps_done"] == ["RECEIVED", "INTENT_CREATED"]
    assert doc["intent_id"] == "pi_1" and doc["lease_owner"] == "delivery-1" and doc["lease_holder"] == "processor"
    assert [(s["id"], s["seq"]) for s in logged] == [("01-RECEIVED", 1), ("02-INTENT_CREATED", 2)]


def test_a_second_delivery_waits_for_the_live_lease_and_takes_it_once_released(firestore_client, collection) -> None:
    log = processor_log(firestore_client, collection)
    paid = payment()
    log.claim_delivery(paid, "delivery-1", [Step(steps.RECEIVED)])
    busy = log.claim_delivery(paid, "delivery-2", [Step(steps.RECEIVED)])
    assert busy.status is ClaimStatus.BUSY and busy.busy_for_seconds > 50
    log.release(paid["payment_id"], "delivery-1")
    again = log.claim_delivery(paid, "delivery-2", [Step(steps.RECEIVED)])
    assert again.status is ClaimStatus.CLAIMED
    assert again.doc["steps_done"] == ["RECEIVED"], "a later delivery does not write the first steps again"


def test_an_initiator_claim_fences_out_every_processor_delivery_for_good(firestore_client, collection) -> None:
    processor = processor_log(firestore_client, collection, lease_seconds=0.2)
    initiator = initiator_log(firestore_client, collection)
    paid = payment()
    delivery = processor.claim_delivery(paid, "delivery-1", [Step(steps.RECEIVED), intent_created("pi_1")])
    time.sleep(0.3)  # the delivery's lease lapses (a paused or dead processor)
    claim = initiator.claim_settlement(paid, "reconciler-1", "reconciler")
    assert claim.status is ClaimStatus.CLAIMED and claim.doc["fenced"] is True
    # The paused delivery wakes: its next write (e.g. logging a charge) is refused.
    with pytest.raises(LeaseLost):
        processor.append(paid["payment_id"], "delivery-1", [Step(steps.CHARGE_DECLINED)], known=delivery.doc)
    initiator.release(paid["payment_id"], "reconciler-1")
    later = processor.claim_delivery(paid, "delivery-2", [Step(steps.RECEIVED)])
    assert later.status is ClaimStatus.SETTLED_ELSEWHERE


def test_one_initiator_actor_at_a_time(firestore_client, collection) -> None:
    """The claim that keeps an operator's refund from racing the reconciler's capture (review finding F1)."""
    log = initiator_log(firestore_client, collection, grace=30)
    paid = payment()
    operator = log.claim_settlement(paid, "operator-1", "operator:alice")
    assert operator.claimed
    reconciler = log.claim_settlement(paid, "reconciler-1", "reconciler")
    assert reconciler.status is ClaimStatus.BUSY
    assert reconciler.doc["lease_holder"] == "operator:alice"
    log.release(paid["payment_id"], "operator-1")
    assert log.claim_settlement(paid, "reconciler-1", "reconciler").claimed


def test_initiator_claims_are_numbered_in_the_order_they_were_taken(firestore_client, collection) -> None:
    """The numbers the payment row registers, so a settlement commits only under the newest claim."""
    log = initiator_log(firestore_client, collection, lease_seconds=0.1, grace=0)
    paid = payment()
    numbers = []
    for owner in ("reconciler-1", "operator-1", "reconciler-2"):
        claim = log.claim_settlement(paid, owner, owner.split("-")[0])
        numbers.append(claim.doc[CLAIM_SEQ])
        time.sleep(0.2)  # each claim lapses before the next (a paused holder)
    renewed = log.claim_settlement(paid, "reconciler-2", "reconciler")  # its holder's own claim: same number
    assert numbers == [1, 2, 3]
    assert renewed.doc[CLAIM_SEQ] == 3
    assert log.read(paid["payment_id"])[CLAIM_SEQ] == 3


def test_a_lapsed_claim_counts_as_live_for_its_grace(firestore_client, collection) -> None:
    paid = payment()
    initiator_log(firestore_client, collection, lease_seconds=0.1).claim_settlement(paid, "reconciler-1", "reconciler")
    time.sleep(0.2)
    with_grace = initiator_log(firestore_client, collection, grace=30)
    assert with_grace.claim_settlement(paid, "operator-1", "operator:bob").status is ClaimStatus.BUSY
    without_grace = initiator_log(firestore_client, collection, grace=0)
    assert without_grace.claim_settlement(paid, "operator-1", "operator:bob").claimed


def test_a_holder_that_lost_its_claim_writes_nothing(firestore_client, collection) -> None:
    log = initiator_log(firestore_client, collection, lease_seconds=0.1)
    paid = payment()
    first = log.claim_settlement(paid, "sweeper-1", "sweeper")
    time.sleep(0.2)
    assert log.claim_settlement(paid, "reconciler-1", "reconciler").claimed
    with pytest.raises(LeaseLost):
        log.append(paid["payment_id"], "sweeper-1", [Step(steps.CANCEL_REQUESTED)], known=first.doc)
    with pytest.raises(LeaseLost):
        log.append(paid["payment_id"], "sweeper-1", [Step(steps.CANCEL_REQUESTED)])
    assert log.read(paid["payment_id"])["steps_done"] == []


def test_a_stale_precondition_falls_back_to_the_transaction(firestore_client, collection) -> None:
    """A write whose `known` document is out of date (someone else wrote since) is decided again on a fresh read."""
    log = processor_log(firestore_client, collection)
    other = initiator_log(firestore_client, collection)
    paid = payment()
    claim = log.claim_delivery(paid, "delivery-1", [Step(steps.RECEIVED), intent_created("pi_1")])
    # The consumer delivers a settlement step meanwhile (no claim needed): the document's update time moves.
    assert other.deliver(paid, Step(steps.CAPTURED, {"event_id": "e"}))
    doc = log.append(paid["payment_id"], "delivery-1", [Step(steps.CHARGED, {"intent_id": "pi_1"})], known=claim.doc)
    assert doc["steps_done"] == ["RECEIVED", "INTENT_CREATED", "CAPTURED", "CHARGED"]
    assert doc[UPDATE_TIME] is not None


def test_a_replayed_step_is_detected_not_written_twice(firestore_client, collection) -> None:
    log = processor_log(firestore_client, collection)
    paid = payment()
    claim = log.claim_delivery(paid, "delivery-1", [Step(steps.RECEIVED)])
    doc = log.append(paid["payment_id"], "delivery-1", [intent_created("pi_1")], known=claim.doc)
    again = log.append(paid["payment_id"], "delivery-1", [intent_created("pi_1")], known=doc)
    assert again["version"] == doc["version"] == 2
    initiator = initiator_log(firestore_client, collection)
    assert initiator.deliver(paid, Step(steps.COMPENSATED)) is True
    assert initiator.deliver(paid, Step(steps.COMPENSATED)) is False
    _, logged = log.read_with_steps(paid["payment_id"])
    assert [s["step"] for s in logged] == ["RECEIVED", "INTENT_CREATED", "COMPENSATED"]


def test_a_step_about_another_intent_has_an_identity_of_its_own(firestore_client, collection) -> None:
    """The sweeper's refund of an intent found later sits beside the payment's own steps of that name."""
    log = initiator_log(firestore_client, collection)
    paid = payment()
    processor = processor_log(firestore_client, collection)
    processor.claim_delivery(paid, "delivery-1", [Step(steps.RECEIVED), intent_created("pi_own")])
    processor.release(paid["payment_id"], "delivery-1")
    claim = log.claim_settlement(paid, "sweeper-1", "sweeper")
    assert claim.claimed
    doc = log.append(
        paid["payment_id"],
        "sweeper-1",
        [Step(steps.REFUND_REQUESTED, {"intent_id": "pi_own"}), Step(steps.REFUND_REQUESTED, {"intent_id": "pi_late"})],
        known=claim.doc,
    )
    assert doc["steps_done"][-2:] == ["REFUND_REQUESTED", "REFUND_REQUESTED:pi_late"]


def test_deliver_creates_the_document_when_nothing_was_logged_yet(firestore_client, collection) -> None:
    log = initiator_log(firestore_client, collection)
    paid = payment()
    assert log.deliver(paid, Step(steps.COMPENSATED, {"reason_code": "expired"}))
    doc = log.read(paid["payment_id"])
    assert doc["steps_done"] == ["COMPENSATED"] and doc["amount"] == 1250 and not doc.get("lease_owner")


def test_release_in_the_same_write_as_the_last_step(firestore_client, collection) -> None:
    log = initiator_log(firestore_client, collection)
    paid = payment()
    claim = log.claim_settlement(paid, "operator-1", "operator:alice")
    doc = log.append(paid["payment_id"], "operator-1", [Step(steps.CANCEL_REQUESTED)], known=claim.doc, release=True)
    assert doc["lease_owner"] is None
    stored = log.read(paid["payment_id"])
    assert stored["lease_owner"] is None and stored["fenced"] is True and stored["steps_done"] == ["CANCEL_REQUESTED"]


def test_concurrent_deliveries_append_each_step_once_in_one_sequence(firestore_client, collection) -> None:
    """The relay and settling actors deliver outbox steps of one payment at the same time (Firestore
    transactions and update-time preconditions decide; nobody loses a step or writes one twice)."""
    log = initiator_log(firestore_client, collection)
    names = (steps.CHARGED, steps.REFUNDED, steps.NEEDS_ATTENTION, steps.CAPTURED)
    for _ in range(3):
        paid = payment()
        start = threading.Barrier(len(names))
        written: list[bool] = []

        def deliver(name: str, paid=paid, start=start, written=written) -> None:
            start.wait()
            written.append(log.deliver(paid, Step(name, {"source": "test"})))
            written.append(log.deliver(paid, Step(name, {"source": "test"})))

        threads = [threading.Thread(target=deliver, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        doc, logged = log.read_with_steps(paid["payment_id"])
        assert sorted(written) == [False] * len(names) + [True] * len(names)
        assert sorted(doc["steps_done"]) == sorted(names)
        assert [s["seq"] for s in logged] == [1, 2, 3, 4] and doc["version"] == 4
