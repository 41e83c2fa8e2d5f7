"""The saga against the real emulators and the sandbox gateway (a model of Stripe's PaymentIntents API),
one provider behaviour per test.

Every test checks the saga log's steps in order, what the provider holds for the payment (read
through the gateway port) and the exact outcome events published (validated against
contracts/events by Topics.pull). Magic amounts and knobs: gateway/README.md.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import pytest
from binpay_common.gateway import IntentStatus, PaymentRef
from binpay_common.saga_log import Step
from binpay_processor.bootstrap import build_processor
from binpay_processor.clients import Clients
from binpay_processor.config import Settings
from binpay_processor.saga import Disposition
from conftest import long_ago, make_event, money, provider, saga, sandbox, step_names

APPROVED = ["RECEIVED", "INTENT_CREATED", "CHARGED", "COMPLETED"]
CANCELED = ["RECEIVED", "INTENT_CREATED", "CANCEL_REQUESTED", "CHARGE_CANCELED", "FAILED"]
DECLINED = ["RECEIVED", "INTENT_CREATED", "CHARGE_DECLINED", "CHARGE_CANCELED", "FAILED"]


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


def test_approved_payment_logs_the_intent_before_the_confirm_and_completes(
    processor, client, topics, gateway_url, caplog
):
    data, attributes = make_event(10000)
    payment_id = attributes["payment_id"]
    caplog.set_level(logging.INFO)

    result = processor.handle_payment_initiated(data, attributes, 1)

    assert result.disposition is Disposition.DONE
    assert step_names(client, payment_id) == APPROVED
    log = saga(client, payment_id)
    assert log["state"] == "COMPLETED" and log["outcome_published"] is True
    intent_id = log["intent_id"]
    assert intent_id.startswith("pi_") and log["charge_id"].startswith("ch_")
    assert log["steps"][1]["detail"] == {"intent_id": intent_id}
    assert log["steps"][2]["detail"] == {"intent_id": intent_id, "charge_id": log["charge_id"]}
    held = money(gateway_url, payment_id)
    assert [intent.id for intent in held.intents] == [intent_id]
    assert held.succeeded == 1 and held.standing == 10000
    [(event, event_attributes)] = topics.pull(topics.completion)
    assert (event["payment_id"], event["intent_id"], event["charge_id"]) == (payment_id, intent_id, log["charge_id"])
    assert (event["amount"], event["currency"]) == (10000, "USD")
    assert event["event_id"] == str(uuid.uuid5(uuid.UUID(payment_id), "payment.completed"))
    assert event_attributes["correlation_id"] == attributes["correlation_id"]
    assert topics.pull(topics.rollback) == []
    # every log line of the saga carries the ids from the message attributes
    saga_records = [r for r in caplog.records if r.name.startswith("binpay_processor")]
    assert saga_records and all(r.payment_id == payment_id for r in saga_records)
    assert all(r.correlation_id == attributes["correlation_id"] for r in saga_records)


@pytest.mark.parametrize(
    ("amount", "payment_method", "reason_code"),
    [
        (10051, "pm_card_visa", "generic_decline"),
        (10052, "pm_card_visa", "insufficient_funds"),
        (10000, "pm_card_chargeDeclined", "generic_decline"),
        (10000, "pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        # Off-session nobody can authenticate: Stripe declines with authentication_required.
        (10000, "pm_card_authenticationRequired", "authentication_required"),
    ],
    ids=["magic-declined", "magic-nsf", "test-card-declined", "test-card-nsf", "authentication-required"],
)
def test_a_decline_cancels_the_intent_then_rolls_back(
    processor, client, topics, gateway_url, amount, payment_method, reason_code
):
    data, attributes = make_event(amount, payment_method=payment_method)
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    assert step_names(client, payment_id) == DECLINED
    log = saga(client, payment_id)
    assert log["steps"][2]["detail"]["reason_code"] == reason_code
    held = money(gateway_url, payment_id)
    # After the cancel no later confirm can make the intent take money.
    assert held.status_of(log["intent_id"]) is IntentStatus.CANCELED and held.standing == 0
    [(event, _)] = topics.pull(topics.rollback)
    assert (event["reason_code"], event["failed_step"], event["refunded"]) == (reason_code, "charge", False)
    assert (event["intent_id"], event["charge_id"]) == (log["intent_id"], None)
    assert topics.pull(topics.completion) == []


def test_an_unknown_payment_method_rolls_back_without_any_intent(processor, client, topics, gateway_url, caplog):
    data, attributes = make_event(10000, payment_method="pm_does_not_exist")
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    assert step_names(client, payment_id) == ["RECEIVED", "FAILED"]
    assert money(gateway_url, payment_id).intents == []
    [(event, _)] = topics.pull(topics.rollback)
    assert (event["reason_code"], event["intent_id"]) == ("payment_method_invalid", None)
    assert any(r.levelno == logging.ERROR and "refuses the payment method" in r.getMessage() for r in caplog.records)


def test_a_5xx_that_did_nothing_is_asked_again_in_the_same_delivery_under_the_same_key(
    processor, client, topics, gateway_url, caplog
):
    """53: a 503 before execution (nothing saved under the key). Answered fast, it is asked again at once
    instead of going back to Pub/Sub, which would hold the payment for a whole lease."""
    data, attributes = make_event(10053)
    payment_id = attributes["payment_id"]

    assert deliver_until_acked(processor, data, attributes) == [Disposition.DONE]
    assert any("asking again" in r.getMessage() and "503" in r.getMessage() for r in caplog.records)
    assert step_names(client, payment_id) == APPROVED
    assert saga(client, payment_id).get("key_attempts") is None
    assert money(gateway_url, payment_id).succeeded == 1
    assert len(topics.pull(topics.completion)) == 1 and topics.pull(topics.rollback) == []


def test_a_slow_answer_that_says_nothing_keeps_the_lease_and_the_redelivery_confirms_with_the_same_key(
    processor, client, topics, gateway_url
):
    """54: the confirm hangs, then 504, having done nothing: too slow to ask again within the delivery."""
    data, attributes = make_event(10054)
    payment_id = attributes["payment_id"]

    dispositions = deliver_until_acked(processor, data, attributes)

    # The first confirm had no effect (the retrieve showed it); the delivery kept its lease, the next
    # one waited for it to lapse, then confirmed under the same key.
    assert dispositions == [Disposition.RETRY, Disposition.BUSY, Disposition.DONE]
    assert step_names(client, payment_id) == APPROVED
    assert saga(client, payment_id).get("key_attempts") is None
    assert money(gateway_url, payment_id).succeeded == 1
    assert len(topics.pull(topics.completion)) == 1 and topics.pull(topics.rollback) == []


@pytest.mark.parametrize(("amount"), [10055, 10059], ids=["response-lost", "saved-500-applied"])
def test_a_confirm_that_took_effect_without_saying_so_is_found_by_retrieving_the_intent(
    processor, client, topics, gateway_url, amount
):
    """55: the confirm committed and the connection was dropped; 59: it committed and a 500 was saved."""
    data, attributes = make_event(amount)
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    assert step_names(client, payment_id) == APPROVED
    assert money(gateway_url, payment_id).succeeded == 1
    assert len(topics.pull(topics.completion)) == 1


def test_a_saved_500_under_the_confirm_key_is_replayed_so_the_next_attempt_takes_a_new_key(
    processor, client, topics, gateway_url
):
    """60: the provider saved a 500 without confirming. Stripe replays a saved answer under its key for
    every retry (docs.stripe.com/idempotency): resending the same key can never confirm."""
    data, attributes = make_event(10060)
    payment_id = attributes["payment_id"]

    # The first answer is the 500; asked again, the key replays it, so the next attempt takes a new key.
    assert deliver_until_acked(processor, data, attributes) == [Disposition.DONE]
    log = saga(client, payment_id)
    assert log["key_attempts"] == {"confirm": 2}
    assert step_names(client, payment_id) == APPROVED
    assert money(gateway_url, payment_id).succeeded == 1


@pytest.mark.parametrize(("amount", "intents"), [(10058, 2), (10061, 1)], ids=["intent-created", "nothing-created"])
def test_a_saved_500_under_the_create_key_moves_to_the_next_key_and_never_confirms_an_unlogged_intent(
    processor, client, topics, gateway_url, amount, intents
):
    data, attributes = make_event(amount)
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    log = saga(client, payment_id)
    assert log["key_attempts"] == {"create": 2}
    assert step_names(client, payment_id) == APPROVED
    held = money(gateway_url, payment_id)
    # 58 created an intent behind the saved 500: never logged, so never confirmed (no money in it).
    assert len(held.intents) == intents and held.succeeded == 1
    assert [i.status for i in held.intents if i.id != log["intent_id"]] == [IntentStatus.REQUIRES_CONFIRMATION] * (
        intents - 1
    )


def test_an_intent_in_processing_is_not_decided_until_it_settles(processor, client, topics, gateway_url):
    data, attributes = make_event(10062)
    payment_id = attributes["payment_id"]

    first = processor.handle_payment_initiated(data, attributes, 1)
    assert first.disposition is Disposition.RETRY and "processing" in first.detail
    assert step_names(client, payment_id) == ["RECEIVED", "INTENT_CREATED"]
    sandbox(gateway_url, "clock", {"advance_seconds": 10})  # the intent settles

    dispositions = deliver_until_acked(processor, data, attributes)

    assert dispositions[-1] is Disposition.DONE
    assert step_names(client, payment_id) == APPROVED
    assert money(gateway_url, payment_id).succeeded == 1


def test_a_provider_outage_is_retried_without_rollback_until_the_saga_timeout(
    processor, client, topics, gateway_url, config
):
    data, attributes = make_event(10056)
    payment_id = attributes["payment_id"]

    first = processor.handle_payment_initiated(data, attributes, 1)
    assert first.disposition is Disposition.RETRY
    # The lease is kept on an ambiguous answer: a redelivery meanwhile is told to wait for it.
    busy = processor.handle_payment_initiated(data, attributes, 2)
    assert busy.disposition is Disposition.BUSY and 0 < busy.retry_after <= config["LEASE_SECONDS"]
    assert step_names(client, payment_id) == ["RECEIVED", "INTENT_CREATED"]
    assert topics.pull(topics.rollback) == [] and topics.pull(topics.completion) == []

    # Past the saga timeout the intent is canceled (announced first); only then does the payment fail.
    expired = build_processor(
        Settings.from_env(environ={}, overrides={**config, "SAGA_TIMEOUT_SECONDS": 0}), processor.clients
    )
    time.sleep(busy.retry_after + 0.5)
    assert expired.handle_payment_initiated(data, attributes, 3).disposition is Disposition.DONE
    assert step_names(client, payment_id) == CANCELED
    log = saga(client, payment_id)
    assert log["steps"][2]["detail"]["reason_code"] == "gateway_unavailable"
    [(event, _)] = topics.pull(topics.rollback)
    assert (event["reason_code"], event["failed_step"], event["refunded"]) == ("gateway_unavailable", "charge", False)
    held = money(gateway_url, payment_id)
    assert held.status_of(log["intent_id"]) is IntentStatus.CANCELED and held.standing == 0


def test_past_the_saga_timeout_with_no_intent_created_nothing_can_land(processor, client, topics, gateway_url, config):
    """A payment this old never had an intent logged, so no confirm was ever sent: it fails at once."""
    data, attributes = make_event(10000, created_at=long_ago())
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    assert step_names(client, payment_id) == ["RECEIVED", "FAILED"]
    assert money(gateway_url, payment_id).intents == []
    [(event, _)] = topics.pull(topics.rollback)
    assert (event["reason_code"], event["intent_id"]) == ("gateway_unavailable", None)


def test_failure_after_the_charge_announces_the_refund_then_rolls_back(processor, client, topics, gateway_url):
    data, attributes = make_event(10000, metadata={"simulate_failure": "after_charge"})
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    assert step_names(client, payment_id) == ["RECEIVED", "INTENT_CREATED", "CHARGED", "REFUND_REQUESTED", "REFUNDED"]
    log = saga(client, payment_id)
    refund_step = log["steps"][4]["detail"]
    assert log["refund_id"].startswith("re_") and refund_step["refund_id"] == log["refund_id"]
    assert refund_step["refund_status"] == "succeeded"
    held = money(gateway_url, payment_id)
    assert held.succeeded == 1 and held.standing == 0
    [(event, _)] = topics.pull(topics.rollback)
    assert (event["reason_code"], event["failed_step"]) == ("processor_failure", "post_charge")
    assert event["refunded"] is True and event["charge_id"] == log["charge_id"]
    assert topics.pull(topics.completion) == []


def test_a_refund_that_answers_pending_is_logged_with_its_status(processor, client, topics, gateway_url):
    """64: the refund answers pending (it succeeds later); the sweeper follows it (initiator)."""
    data, attributes = make_event(10064, metadata={"simulate_failure": "after_charge"})
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    refund_step = saga(client, payment_id)["steps"][4]
    assert (refund_step["step"], refund_step["detail"]["refund_status"]) == ("REFUNDED", "pending")
    [(event, _)] = topics.pull(topics.rollback)
    assert event["refunded"] is True


def test_failure_before_the_charge_cancels_the_intent_it_never_confirmed(processor, client, topics, gateway_url):
    data, attributes = make_event(10000, metadata={"simulate_failure": "before_charge"})
    payment_id = attributes["payment_id"]

    assert processor.handle_payment_initiated(data, attributes, 1).disposition is Disposition.DONE

    assert step_names(client, payment_id) == CANCELED
    log = saga(client, payment_id)
    held = money(gateway_url, payment_id)
    assert held.status_of(log["intent_id"]) is IntentStatus.CANCELED and held.succeeded == 0
    [(event, _)] = topics.pull(topics.rollback)
    assert (event["reason_code"], event["failed_step"], event["refunded"]) == ("processor_failure", "charge", False)


def test_a_payment_the_initiator_took_over_is_never_confirmed(
    processor, clients, base_config, client, topics, gateway_url
):
    data, attributes = make_event(10000)
    payment_id = attributes["payment_id"]
    # The reconciler claimed (and so fenced) the payment before this late delivery arrived.
    document = clients.firestore.collection(base_config["FIRESTORE_COLLECTION"]).document(payment_id)
    document.set({"payment_id": payment_id, "fenced": True, "version": 0, "steps_done": [], "state": None})

    assert processor.handle_payment_initiated(data, attributes, 1).disposition.ack

    # The delivery may have created an intent before it saw the fence: it moved no money and is never confirmed.
    held = money(gateway_url, payment_id)
    assert held.succeeded == 0 and all(i.status is IntentStatus.REQUIRES_CONFIRMATION for i in held.intents)
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
    assert event == log["outcome_event"]
    assert step_names(client, payment_id) == APPROVED
    assert money(gateway_url, payment_id).succeeded == 1


def test_fault_injection_is_ignored_when_disabled(config, clients, client, topics, gateway_url):
    settings = Settings.from_env(environ={}, overrides={**config, "FAULT_INJECTION_ENABLED": False})
    data, attributes = make_event(10000, metadata={"simulate_failure": "after_charge"})

    build_processor(settings, clients).handle_payment_initiated(data, attributes, 1)

    assert step_names(client, attributes["payment_id"]) == APPROVED
    assert money(gateway_url, attributes["payment_id"]).standing == 10000


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
    assert step_names(client, payment_id) == APPROVED
    held = money(gateway_url, payment_id)
    assert len(held.intents) == 1 and held.succeeded == 1
    assert len(topics.pull(topics.completion)) == 1


def test_a_payment_contradicting_the_saga_log_is_poison(processor, client, topics, gateway_url):
    data, attributes = make_event(10000)
    payment_id = attributes["payment_id"]
    processor.handle_payment_initiated(data, attributes, 1)
    topics.pull(topics.completion)

    other_data, other_attributes = make_event(99900, payment_id=payment_id)
    result = processor.handle_payment_initiated(other_data, other_attributes, 1)

    assert result.disposition is Disposition.POISON
    assert step_names(client, payment_id) == APPROVED
    assert money(gateway_url, payment_id).succeeded == 1
    assert topics.pull(topics.completion) == []


def test_parameters_the_provider_refuses_are_retried_never_rolled_back_in_silence(
    processor, client, topics, gateway_url, caplog
):
    """The create key was used with other parameters (BinPay's own bug): Stripe answers 400
    idempotency_error. No rollback, no money: the message is retried (and dead-lettered), loudly."""
    data, attributes = make_event(10000)
    payment_id = attributes["payment_id"]
    provider(gateway_url).create_intent(PaymentRef(payment_id, 9000, "USD", "pm_card_visa"))

    result = processor.handle_payment_initiated(data, attributes, 1)

    assert result.disposition is Disposition.RETRY and "refused to create the intent" in result.detail
    assert any(r.levelno == logging.ERROR and "a bug to fix" in r.getMessage() for r in caplog.records)
    assert step_names(client, payment_id) == ["RECEIVED"]
    assert money(gateway_url, payment_id).succeeded == 0
    assert topics.pull(topics.completion) == [] and topics.pull(topics.rollback) == []


def _bad_messages() -> list[tuple[str, bytes, dict]]:
    good_data, good_attributes = make_event(10000)
    body = json.loads(good_data)
    cases = [
        ("not-json", b"{not json", good_attributes),
        ("not-utf8", b"\xff\xfe", good_attributes),
        ("float-amount", json.dumps({**body, "amount": 100.5}).encode(), good_attributes),
        ("missing-currency", json.dumps({k: v for k, v in body.items() if k != "currency"}).encode(), good_attributes),
        ("no-payment-method", json.dumps({**body, "payment_method": ""}).encode(), good_attributes),
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
    if name != "bad-uuid":
        assert money(gateway_url, payment_id).intents == []
    assert topics.pull(topics.completion) == [] and topics.pull(topics.rollback) == []


@pytest.fixture
def expired_slow_processor(config, slow_gateway_url):
    """A processor past its saga timeout against a gateway whose 57 confirms take 4 s."""
    settings = Settings.from_env(
        environ={}, overrides={**config, "PAYMENT_GATEWAY_URL": slow_gateway_url, "SAGA_TIMEOUT_SECONDS": 0}
    )
    own_clients = Clients(settings)
    yield build_processor(settings, own_clients)
    own_clients.close()


def test_a_confirm_still_in_flight_when_the_intent_is_canceled_never_leaves_money_on_a_rollback(
    expired_slow_processor, client, topics, slow_gateway_url
):
    """A delivery logged the intent and sent its confirm, then died; the confirm is still running at the
    provider when the next delivery, past the saga timeout, cancels the intent. A search shows nothing
    decided at that moment (the old protocol rolled back on that and left the customer charged); the
    provider decides between the cancel and the confirm instead, so the payment is either rolled back
    with nothing charged, or completes."""
    data, attributes = make_event(10057)
    payment_id = attributes["payment_id"]
    gateway = provider(slow_gateway_url)
    ref = PaymentRef(payment_id, 10057, "USD", "pm_card_visa")
    intent = gateway.create_intent(ref)
    log = expired_slow_processor.saga_log
    fields = {"payment_id": payment_id, "user_id": 1, "amount": 10057, "currency": "USD"}
    log.claim_delivery(
        fields,
        "dead-delivery",
        [Step("RECEIVED"), Step("INTENT_CREATED", {"intent_id": intent.id}, {"intent_id": intent.id})],
    )
    log.release(payment_id, "dead-delivery")
    in_flight = threading.Thread(target=lambda: _confirm_ignoring_answer(gateway, intent.id, ref))
    in_flight.start()
    time.sleep(1)  # the confirm holds its key at the provider for 4 s

    result = expired_slow_processor.handle_payment_initiated(data, attributes, 1)
    in_flight.join()

    assert result.disposition is Disposition.DONE
    held = money(slow_gateway_url, payment_id)
    rollbacks, completions = topics.pull(topics.rollback), topics.pull(topics.completion)
    assert len(rollbacks) + len(completions) == 1
    assert not (rollbacks and held.standing), "rolled back while the customer was charged"
    if rollbacks:
        assert step_names(client, payment_id) == CANCELED and held.succeeded == 0
    else:
        assert held.standing == 10057


def _confirm_ignoring_answer(gateway, intent_id: str, ref: PaymentRef) -> None:
    try:
        gateway.confirm_intent(intent_id, ref)
    except Exception:  # noqa: S110 - the dead delivery never heard the answer; the provider decides
        pass
