"""The saga against the real emulators and sandbox gateway, one gateway behaviour per test.

Every test checks the saga log's steps in order, the gateway's ledger for the payment and the
exact outcome events published (validated against contracts/events by Topics.pull).
"""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest
import requests
from binpay_processor.bootstrap import build_processor
from binpay_processor.clients import Clients
from binpay_processor.config import Settings
from binpay_processor.saga import Disposition
from conftest import GATEWAY_API_KEY, ledger, long_ago, make_event, saga, step_names


def deliver_until_acked(processor, data, attributes, max_deliveries=6) -> list[Disposition]:
    """Redeliver like Pub/Sub does until the handler acks; returns every delivery's disposition.

    A BUSY answer is waited out as the pull worker does: until the other delivery's lease lapses.
    """
    dispositions = []
    for attempt in range(1, max_deliveries + 1):
        result = processor.handle_payment_initiated(data, attributes, attempt)
        dispositions.append(result.disposition)
        if result.disposition.ack:
            return dispositions
        if result.disposition is Disposition.BUSY:
            time.sleep(result.retry_after + 0.5)
    raise AssertionError(f"not acked after {max_deliveries} deliveries: {dispositions}")


def test_approved_charge_completes_and_publishes_completed(processor, client, topics, gateway_url, caplog):
    data, attributes = make_event(10000)
    payment_id = attributes["payment_id"]
    caplog.set_level(logging.INFO)

    result = processor.handle_payment_initiated(data, attributes, 1)

    assert result.disposition is Disposition.DONE
    assert step_names(client, payment_id) == ["RECEIVED", "CHARGED", "COMPLETED"]
    log = saga(client, payment_id)
    assert log["state"] == "COMPLETED" and log["outcome_published"] is True
    assert log["charge_id"].startswith("ch_")
    assert log["steps"][1]["detail"] == {"charge_id": log["charge_id"]}
    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 1
    [(event, event_attributes)] = topics.pull(topics.completion)
    assert event["payment_id"] == payment_id
    assert event["charge_id"] == log["charge_id"]
    assert (event["amount"], event["currency"]) == (10000, "USD")
    assert event["event_id"] == str(uuid.uuid5(uuid.UUID(payment_id), "payment.completed"))
    assert event_attributes["correlation_id"] == attributes["correlation_id"]
    assert topics.pull(topics.rollback) == []
    # every log line of the saga carries the ids from the message attributes
    saga_records = [r for r in caplog.records if r.name.startswith("binpay_processor")]
    assert saga_records and all(r.payment_id == payment_id for r in saga_records)
    assert all(r.correlation_id == attributes["correlation_id"] for r in saga_records)


@pytest.mark.parametrize(
    ("amount", "reason_code"), [(10051, "card_declined"), (10052, "insufficient_funds")], ids=["declined", "nsf"]
)
def test_decline_fails_and_publishes_rollback(processor, client, topics, gateway_url, amount, reason_code):
    data, attributes = make_event(amount)
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    assert step_names(client, payment_id) == ["RECEIVED", "CHARGE_DECLINED", "FAILED"]
    log = saga(client, payment_id)
    assert log["steps"][1]["detail"]["reason_code"] == reason_code
    assert log["charge_id"] is None
    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 0
    [(event, _)] = topics.pull(topics.rollback)
    assert event["reason_code"] == reason_code
    assert (event["failed_step"], event["refunded"], event["charge_id"]) == ("charge", False, None)
    assert topics.pull(topics.completion) == []


@pytest.mark.parametrize("amount", [10053, 10054, 10055], ids=["5xx-then-ok", "timeout-then-ok", "lost-response"])
def test_transient_gateway_faults_are_retried_within_one_delivery(processor, client, topics, gateway_url, amount):
    """The session retries connection errors, read timeouts and 5xx with the same idempotency key."""
    data, attributes = make_event(amount)
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    assert step_names(client, payment_id) == ["RECEIVED", "CHARGED", "COMPLETED"]
    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 1
    assert len(topics.pull(topics.completion)) == 1


# No retries, 1 s timeouts: one delivery's worst case is 2 x 2 s + 5 s, so a 10 s lease is allowed.
NO_RETRY = {"GATEWAY_MAX_RETRIES": 0, "LEASE_SECONDS": 10}


@pytest.fixture
def no_retry_processor(config):
    """A processor whose gateway session does not retry: every ambiguous answer reaches the saga."""
    settings = Settings.from_env(environ={}, overrides={**config, **NO_RETRY})
    own_clients = Clients(settings)
    yield build_processor(settings, own_clients)
    own_clients.close()


@pytest.mark.parametrize("amount", [10053, 10054, 10055], ids=["5xx-then-ok", "timeout-then-ok", "lost-response"])
def test_ambiguous_answer_is_not_a_decline_and_the_redelivery_reuses_the_key(
    no_retry_processor, client, topics, gateway_url, amount
):
    data, attributes = make_event(amount)
    payment_id = attributes["payment_id"]

    dispositions = deliver_until_acked(no_retry_processor, data, attributes)

    # The ambiguous delivery kept its lease: the next one waited for it to lapse, then charged.
    assert dispositions == [Disposition.RETRY, Disposition.BUSY, Disposition.DONE]
    assert step_names(client, payment_id) == ["RECEIVED", "CHARGED", "COMPLETED"]
    # 55: the first attempt made the charge; the redelivery got it replayed, not a second one
    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 1
    assert len(topics.pull(topics.completion)) == 1
    assert topics.pull(topics.rollback) == []


def test_gateway_outage_is_retried_without_rollback_until_the_saga_timeout(
    no_retry_processor, client, topics, gateway_url, config
):
    data, attributes = make_event(10056)
    payment_id = attributes["payment_id"]

    first = no_retry_processor.handle_payment_initiated(data, attributes, 1)
    assert first.disposition is Disposition.RETRY
    # The lease is kept on an ambiguous answer: a redelivery meanwhile is told to wait for it.
    busy = no_retry_processor.handle_payment_initiated(data, attributes, 2)
    assert busy.disposition is Disposition.BUSY and 0 < busy.retry_after <= NO_RETRY["LEASE_SECONDS"]
    time.sleep(busy.retry_after + 0.5)
    assert no_retry_processor.handle_payment_initiated(data, attributes, 3).disposition is Disposition.RETRY
    assert step_names(client, payment_id) == ["RECEIVED"]
    assert topics.pull(topics.rollback) == [] and topics.pull(topics.completion) == []

    # Past the saga timeout the charge key is canceled at the gateway; only then does the payment fail.
    expired = build_processor(
        Settings.from_env(environ={}, overrides={**config, **NO_RETRY, "SAGA_TIMEOUT_SECONDS": 0}),
        no_retry_processor.clients,
    )
    time.sleep(NO_RETRY["LEASE_SECONDS"] + 0.5)
    assert expired.handle_payment_initiated(data, attributes, 4).disposition is Disposition.DONE
    assert step_names(client, payment_id) == ["RECEIVED", "CHARGE_CANCELED", "FAILED"]
    assert saga(client, payment_id)["steps"][1]["detail"]["reason_code"] == "gateway_unavailable"
    [(event, _)] = topics.pull(topics.rollback)
    assert (event["reason_code"], event["failed_step"], event["refunded"]) == ("gateway_unavailable", "charge", False)
    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 0


def test_past_the_saga_timeout_a_lost_response_charge_is_found_and_completed(
    config, client, topics, gateway_url, clients
):
    """55 with no retries and an old payment: the cancel finds the charge, so no rollback."""
    settings = Settings.from_env(environ={}, overrides={**config, **NO_RETRY})
    own_clients = Clients(settings)
    try:
        data, attributes = make_event(10055, created_at=long_ago())
        payment_id = attributes["payment_id"]

        result = build_processor(settings, own_clients).handle_payment_initiated(data, attributes, 1)

        assert result.disposition is Disposition.DONE
    finally:
        own_clients.close()
    assert step_names(client, payment_id) == ["RECEIVED", "CHARGED", "COMPLETED"]
    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 1
    assert len(topics.pull(topics.completion)) == 1
    assert topics.pull(topics.rollback) == []


def test_failure_after_charge_refunds_and_publishes_rollback(processor, client, topics, gateway_url):
    data, attributes = make_event(10000, metadata={"simulate_failure": "after_charge"})
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    assert step_names(client, payment_id) == ["RECEIVED", "CHARGED", "REFUNDED"]
    log = saga(client, payment_id)
    assert log["refund_id"].startswith("re_") and log["steps"][2]["detail"]["refund_id"] == log["refund_id"]
    row = ledger(gateway_url, payment_id)
    assert (row["charges_succeeded"], row["refunds"]) == (1, 1)
    assert row["amount_refunded"] == row["amount_charged"] == 10000
    [(event, _)] = topics.pull(topics.rollback)
    assert (event["reason_code"], event["failed_step"]) == ("processor_failure", "post_charge")
    assert event["refunded"] is True and event["charge_id"] == log["charge_id"]
    assert topics.pull(topics.completion) == []


def test_failure_before_charge_charges_nothing(processor, client, topics, gateway_url):
    data, attributes = make_event(10000, metadata={"simulate_failure": "before_charge"})
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    assert step_names(client, payment_id) == ["RECEIVED", "CHARGE_CANCELED", "FAILED"]
    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 0
    [(event, _)] = topics.pull(topics.rollback)
    assert (event["reason_code"], event["failed_step"], event["refunded"]) == ("processor_failure", "charge", False)


def test_a_payment_fenced_by_the_reconciler_is_never_charged(
    processor, clients, base_config, client, topics, gateway_url
):
    data, attributes = make_event(10000)
    payment_id = attributes["payment_id"]
    # The initiator's reconciler fenced the payment before this (late) delivery arrived.
    document = clients.firestore.collection(base_config["FIRESTORE_COLLECTION"]).document(payment_id)
    document.set({"payment_id": payment_id, "fenced": True, "version": 0, "steps_done": [], "state": None})

    assert processor.handle_payment_initiated(data, attributes, 1).disposition.ack

    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 0
    assert document.get().to_dict()["steps_done"] == []
    assert topics.pull(topics.completion) == [] and topics.pull(topics.rollback) == []


def test_crash_before_publish_republishes_the_same_event_once(processor, client, topics, gateway_url):
    data, attributes = make_event(10000, metadata={"simulate_failure": "before_publish"})
    payment_id = attributes["payment_id"]

    first = processor.handle_payment_initiated(data, attributes, 1)
    assert first.disposition is Disposition.CRASH and not first.disposition.ack
    log = saga(client, payment_id)
    assert log["state"] == "COMPLETED" and log["outcome_published"] is False
    assert topics.pull(topics.completion) == []

    assert processor.handle_payment_initiated(data, attributes, 2).disposition is Disposition.DONE
    assert processor.handle_payment_initiated(data, attributes, 3).disposition is Disposition.DONE

    [(event, _)] = topics.pull(topics.completion)
    assert event["event_id"] == log["outcome_event"]["event_id"]
    assert event == log["outcome_event"]
    assert step_names(client, payment_id) == ["RECEIVED", "CHARGED", "COMPLETED"]
    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 1


def test_fault_injection_is_ignored_when_disabled(config, clients, client, topics, gateway_url):
    settings = Settings.from_env(environ={}, overrides={**config, "FAULT_INJECTION_ENABLED": False})
    data, attributes = make_event(10000, metadata={"simulate_failure": "after_charge"})

    build_processor(settings, clients).handle_payment_initiated(data, attributes, 1)

    assert step_names(client, attributes["payment_id"]) == ["RECEIVED", "CHARGED", "COMPLETED"]
    assert ledger(gateway_url, attributes["payment_id"])["refunds"] == 0


def test_duplicate_deliveries_charge_once_and_publish_once(processor, client, topics, gateway_url):
    data, attributes = make_event(10000)
    payment_id = attributes["payment_id"]

    results = [processor.handle_payment_initiated(data, attributes, n).disposition for n in (1, 2, 3)]
    # a re-published outbox row: new event_id and message, same payment
    body = json.loads(data)
    body["event_id"] = str(uuid.uuid4())
    republished = processor.handle_payment_initiated(
        json.dumps(body).encode(), {**attributes, "event_id": body["event_id"]}
    )

    assert results == [Disposition.DONE] * 3 and republished.disposition is Disposition.DONE
    assert step_names(client, payment_id) == ["RECEIVED", "CHARGED", "COMPLETED"]
    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 1
    assert len(topics.pull(topics.completion)) == 1


def test_a_payment_contradicting_the_saga_log_is_poison(processor, client, topics, gateway_url):
    data, attributes = make_event(10000)
    payment_id = attributes["payment_id"]
    processor.handle_payment_initiated(data, attributes, 1)
    topics.pull(topics.completion)

    other_data, other_attributes = make_event(99900, payment_id=payment_id)
    result = processor.handle_payment_initiated(other_data, other_attributes, 1)

    assert result.disposition is Disposition.POISON
    assert step_names(client, payment_id) == ["RECEIVED", "CHARGED", "COMPLETED"]
    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 1
    assert topics.pull(topics.completion) == []


def _bad_messages() -> list[tuple[str, bytes, dict]]:
    good_data, good_attributes = make_event(10000)
    body = json.loads(good_data)
    cases = [
        ("not-json", b"{not json", good_attributes),
        ("not-utf8", b"\xff\xfe", good_attributes),
        ("float-amount", json.dumps({**body, "amount": 100.5}).encode(), good_attributes),
        ("missing-currency", json.dumps({k: v for k, v in body.items() if k != "currency"}).encode(), good_attributes),
        ("extra-field", json.dumps({**body, "extra": 1}).encode(), good_attributes),
        ("bad-uuid", json.dumps({**body, "payment_id": "nope"}).encode(), {**good_attributes, "payment_id": "nope"}),
        ("unknown-event-type", good_data, {**good_attributes, "event_type": "payment.exploded"}),
        ("schema-version-2", good_data, {**good_attributes, "schema_version": "2"}),
        ("attribute-mismatch", good_data, {**good_attributes, "payment_id": str(uuid.uuid4())}),
    ]
    return cases


@pytest.mark.parametrize(("name", "data", "attributes"), _bad_messages(), ids=[case[0] for case in _bad_messages()])
def test_poison_messages_are_acked_logged_and_charge_nothing(
    processor, client, topics, gateway_url, caplog, name, data, attributes
):
    result = processor.handle_payment_initiated(data, attributes, 1)

    assert result.disposition is Disposition.POISON and result.disposition.ack
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "poison" in errors[0].getMessage()
    payment_id = attributes["payment_id"]
    assert client.get(f"/transactions/{payment_id}").status_code == 404
    assert ledger(gateway_url, payment_id)["charges_succeeded"] == 0
    assert topics.pull(topics.completion) == [] and topics.pull(topics.rollback) == []


@pytest.fixture
def slow_gateway_processor(config, slow_gateway_url):
    """Default retries against a gateway slower (4 s) than the suite's 1 s read timeout."""
    settings = Settings.from_env(environ={}, overrides={**config, "PAYMENT_GATEWAY_URL": slow_gateway_url})
    own_clients = Clients(settings)
    yield build_processor(settings, own_clients)
    own_clients.close()


def test_a_charge_still_in_flight_past_the_saga_timeout_is_canceled_before_any_rollback(
    slow_gateway_processor, client, topics, slow_gateway_url, caplog
):
    """Finding 1: the first request times out and is still running at the gateway, the retry hears
    `idempotency_key_in_use`, and the payment is past the saga timeout. A list by reference is empty
    then; rolling back on it left the customer charged once the slow request committed."""
    data, attributes = make_event(10057, created_at=long_ago())
    payment_id = attributes["payment_id"]

    result = slow_gateway_processor.handle_payment_initiated(data, attributes, 1)
    time.sleep(5)  # the slow request (4 s at the gateway) has finished, one way or the other

    # The fault happened: the first attempt was cut off by the read timeout while the gateway held the key.
    assert any("idempotency_key_in_use" in record.getMessage() for record in caplog.records)
    rollbacks, completions = topics.pull(topics.rollback), topics.pull(topics.completion)
    charged = ledger(slow_gateway_url, payment_id)["charges_succeeded"]
    assert (len(rollbacks), charged) != (1, 1), "rolled back while the customer was charged"
    assert result.disposition is Disposition.DONE
    assert step_names(client, payment_id) == ["RECEIVED", "CHARGE_CANCELED", "FAILED"]
    [(event, _)] = rollbacks
    assert (event["reason_code"], event["refunded"]) == ("gateway_unavailable", False)
    assert completions == [] and charged == 0


def test_a_charge_found_by_the_cancel_that_does_not_match_the_payment_is_never_completed(
    processor, client, topics, gateway_url
):
    """Finding 4: the charge the gateway holds for the payment's key is for another amount. The
    processor neither completes nor rolls back: it leaves the payment to the reconciler, which
    parks it as needs_attention (charge_mismatch)."""
    data, attributes = make_event(10000, metadata={"simulate_failure": "before_charge"})
    payment_id = attributes["payment_id"]
    stray = requests.post(
        f"{gateway_url}/v1/charges",
        json={"amount": 9000, "currency": "USD", "reference": payment_id},
        headers={"Authorization": f"Bearer {GATEWAY_API_KEY}", "Idempotency-Key": f"charge-{payment_id}"},
        timeout=10,
    )
    assert stray.status_code == 201

    result = processor.handle_payment_initiated(data, attributes, 1)

    assert (result.disposition, result.detail) == (Disposition.DONE, "charge_mismatch")
    assert step_names(client, payment_id) == ["RECEIVED"]
    assert saga(client, payment_id)["charge_id"] is None
    assert topics.pull(topics.completion) == [] and topics.pull(topics.rollback) == []
