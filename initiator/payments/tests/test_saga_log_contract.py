"""The saga log is a contract like the events (contracts/saga-log): every document and step the
initiator writes — consumer, reconciler, sweeper, operator — validates against the schemas, each step
is one steps.json lets the initiator (and that source) write, and every log is a legal path for its
payment's final status (binpay_common.steps, the rules the invariant checker and the console run)."""

import json
from datetime import datetime

import jsonschema
from django.conf import settings
from django.test import TestCase, override_settings
from django.utils import timezone
from referencing import Registry, Resource

from binpay_common import steps
from binpay_common.saga_log import Step
from payments import clients, settlement
from payments.models import Payment
from payments.operator import SettleAction, settle_payment
from payments.reconciler import reconcile
from payments.tests.test_reconciler import TIMEOUT, GatewayMixin, age, deliver
from testing.fixtures import INITIATOR_DIR, completion_event, make_user, pending_payment, processor_logged

SAGA_LOG_DIR = INITIATOR_DIR.parent / "contracts" / "saga-log"


def _load(name: str) -> dict:
    return json.loads((SAGA_LOG_DIR / name).read_text())


TRANSACTION, STEP, PATHS = _load("transaction.schema.json"), _load("step.schema.json"), _load("steps.json")
REGISTRY = Registry().with_resources(
    [(TRANSACTION["$id"], Resource.from_contents(TRANSACTION)), (STEP["$id"], Resource.from_contents(STEP))]
    + [("transaction.schema.json", Resource.from_contents(TRANSACTION))]
)


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _validate(schema: dict, instance: dict) -> None:
    jsonschema.Draft202012Validator(
        schema, registry=REGISTRY, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(_plain(instance))


class SagaLogContractTests(GatewayMixin, TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.user = make_user(balance=1_000_000)

    def assert_follows_the_contract(self, payment) -> list[str]:
        """Every document and step validates, the initiator's steps come from the sources steps.json
        lets it write from, and the whole log is legal for the payment's final status."""
        document = clients.firestore_client().collection(settings.FIRESTORE_COLLECTION).document(str(payment.pk))
        snapshot = document.get().to_dict()
        _validate(TRANSACTION, snapshot)
        step_docs = []
        for step_snapshot in document.collection("steps").order_by("seq").stream():
            step = step_snapshot.to_dict()
            _validate(STEP, step)
            step_docs.append({"id": step_snapshot.id, **step})
            if step["service"] == "initiator":
                sources = PATHS["steps"][step["step"]]["writers"]["initiator"]
                self.assertTrue(sources is None or step["detail"].get("source") in sources, (step, sources))
        payment.refresh_from_db()
        facts = {"id": str(payment.pk), "status": payment.status}
        self.assertEqual(steps.check_saga_log(facts, snapshot, _plain(step_docs)), [])
        return [step["step"] for step in step_docs if step["service"] == "initiator"]

    def test_reconciler_sweeper_consumer_and_operator_steps_follow_the_contract(self) -> None:
        never_seen = age(pending_payment(self.user, amount=1_100), TIMEOUT + 60)
        charged = age(pending_payment(self.user, amount=1_200), TIMEOUT + 60)
        processor_logged(charged, intent=self.gateway.intent(charged))
        declined = age(pending_payment(self.user, amount=1_351), TIMEOUT + 60)
        declined_intent = self.gateway.intent(declined)
        processor_logged(
            declined,
            intent=declined_intent,
            extra=(Step(steps.CHARGE_DECLINED, {"intent_id": declined_intent.id, "reason_code": "generic_decline"}),),
        )
        canceled = age(pending_payment(self.user, amount=1_400), TIMEOUT + 60)
        processor_logged(canceled, intent=self.gateway.intent(canceled, confirm=False))
        mismatched = age(pending_payment(self.user, amount=1_500), TIMEOUT + 60)
        processor_logged(mismatched, intent=self.gateway.intent(mismatched, amount=1_499))
        held = pending_payment(self.user, amount=1_700)
        processor_logged(held, intent=self.gateway.intent(held, confirm=False))
        settlement.hold_for_attention(payment_id=held.pk, reason="charge_mismatch", detail={"source": "reconciler"})
        swept = age(pending_payment(self.user, amount=1_600), TIMEOUT + 60)
        completed_late = age(pending_payment(self.user, amount=1_650), TIMEOUT + 60)

        with override_settings(PROVIDER_SEARCH_LAG_SECONDS=0):
            reconcile(older_than_seconds=TIMEOUT)
            # Money the provider took after the rollbacks, outside the saga: one found by the
            # sweeper's search, one announced by a payment.completed.
            self.gateway.intent(swept, payment_id=str(swept.pk))
            late = self.gateway.intent(completed_late, payment_id=str(completed_late.pk))
            Payment.objects.filter(pk=swept.pk).update(sweep_due_at=timezone.now())
            reconcile(older_than_seconds=TIMEOUT)
            deliver(*completion_event(completed_late, charge_id=late.charge_id, intent_id=late.id))
        settle_payment(payment_id=held.pk, action=SettleAction.RELEASE, reason="checked", actor="ops")

        expected = {
            never_seen: ["COMPENSATED"],
            charged: ["CANCEL_REQUESTED", "CHARGED", "CAPTURED"],
            declined: ["CHARGE_CANCELED", "COMPENSATED"],
            canceled: ["CANCEL_REQUESTED", "CHARGE_CANCELED", "COMPENSATED"],
            mismatched: ["CANCEL_REQUESTED", "CHARGED", "NEEDS_ATTENTION"],
            swept: ["COMPENSATED", "REFUND_REQUESTED", "REFUNDED"],
            completed_late: ["COMPENSATED", "REFUND_REQUESTED", "REFUNDED"],
            held: ["NEEDS_ATTENTION", "CANCEL_REQUESTED", "CHARGE_CANCELED", "COMPENSATED"],
        }
        for payment, names in expected.items():
            self.assertEqual(self.assert_follows_the_contract(payment), names, payment.amount)
