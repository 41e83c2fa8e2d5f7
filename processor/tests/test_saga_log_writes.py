"""The processor's saga-log writes on the happy path: the first delivery logs RECEIVED and the intent in
one create, and CHARGED and COMPLETED in one conditional write (the primitives and their fallbacks
are tested in common/tests/test_saga_log.py)."""

from __future__ import annotations

from binpay_processor.saga import Disposition
from conftest import make_event, step_names


def step_documents(processor, payment_id: str) -> dict[str, dict]:
    collection = processor.clients.firestore.collection(processor.settings.firestore_collection)
    return {step.get("step"): step.to_dict() for step in collection.document(payment_id).collection("steps").stream()}


def test_an_approved_payment_takes_two_step_writes_each_in_order(processor, client, topics):
    data, attributes = make_event(10000)

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    payment_id = attributes["payment_id"]
    assert step_names(client, payment_id) == ["RECEIVED", "INTENT_CREATED", "CHARGED", "COMPLETED"]
    steps = step_documents(processor, payment_id)
    # One commit each: the steps of a commit carry its server timestamp.
    assert steps["RECEIVED"]["at"] == steps["INTENT_CREATED"]["at"]
    assert steps["CHARGED"]["at"] == steps["COMPLETED"]["at"]
    assert steps["INTENT_CREATED"]["at"] < steps["CHARGED"]["at"]
    assert len(topics.pull(topics.completion)) == 1
