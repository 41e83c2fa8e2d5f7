"""The saga log is a contract like the events: every document and step the processor writes, in every
path, validates against contracts/saga-log/*.schema.json, and the processor writes only the steps
steps.json gives it, in an order steps.json allows."""

from __future__ import annotations

import json
from datetime import datetime

import jsonschema
import pytest
from binpay_processor.saga import Disposition
from conftest import REPO_DIR, long_ago, make_event
from referencing import Registry, Resource

SAGA_LOG_DIR = REPO_DIR / "contracts" / "saga-log"


def _schema(name: str) -> dict:
    return json.loads((SAGA_LOG_DIR / name).read_text())


TRANSACTION, STEP = _schema("transaction.schema.json"), _schema("step.schema.json")
PATHS = _schema("steps.json")
REGISTRY = Registry().with_resources(
    [(schema["$id"], Resource.from_contents(schema)) for schema in (TRANSACTION, STEP)]
    + [("transaction.schema.json", Resource.from_contents(TRANSACTION))]
)


def _plain(value):
    """A Firestore value as the schema sees it: timestamps as RFC 3339 strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _validate(schema: dict, instance: dict) -> None:
    validator = jsonschema.Draft202012Validator(
        schema, registry=REGISTRY, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(_plain(instance))


@pytest.mark.parametrize(
    ("amount", "metadata", "created_at"),
    [
        (10000, {}, None),
        (10051, {}, None),
        (10000, {"simulate_failure": "after_charge"}, None),
        (10000, {"simulate_failure": "before_charge"}, None),
        (10056, {}, "long_ago"),
    ],
    ids=["approved", "declined", "refunded", "canceled-before-charge", "no-intent-past-saga-timeout"],
)
def test_every_document_and_step_the_processor_writes_follows_the_contract(
    processor, clients, base_config, amount, metadata, created_at
):
    data, attributes = make_event(amount, metadata=metadata, created_at=long_ago() if created_at else None)
    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    document = clients.firestore.collection(base_config["FIRESTORE_COLLECTION"]).document(attributes["payment_id"])
    _validate(TRANSACTION, document.get().to_dict())
    steps = [(snapshot.id, snapshot.to_dict()) for snapshot in document.collection("steps").order_by("seq").stream()]
    previous = ""
    for step_id, step in steps:
        _validate(STEP, step)
        assert step_id == f"{step['seq']:02d}-{step['step']}"
        assert step["service"] == "processor"
        assert "processor" in PATHS["steps"][step["step"]]["writers"]
        assert step["step"] in PATHS["next_steps"][previous], f"{step['step']} after {previous or 'nothing'}"
        previous = step["step"]
