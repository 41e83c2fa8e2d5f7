"""The saga log is a contract like the events (contracts/saga-log): every document and step the
initiator writes — consumer, reconciler, late-charge sweeper, operator — validates against the
schemas, and each step is one steps.json lets the initiator (and that source) write, in an order it
allows."""

import json
from datetime import datetime

import jsonschema
from django.conf import settings
from django.test import TestCase
from referencing import Registry, Resource

from payments import clients, settlement
from payments.operator import SettleAction, settle_payment
from payments.reconciler import reconcile
from payments.tests.test_reconciler import TIMEOUT, GatewayMixin, age, deliver
from testing.fixtures import INITIATOR_DIR, completion_event, make_user, pending_payment

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
        document = clients.firestore_client().collection(settings.FIRESTORE_COLLECTION).document(str(payment.pk))
        _validate(TRANSACTION, document.get().to_dict())
        previous, names = "", []
        for snapshot in document.collection("steps").order_by("seq").stream():
            step = snapshot.to_dict()
            _validate(STEP, step)
            self.assertEqual(snapshot.id, f"{step['seq']:02d}-{step['step']}")
            self.assertEqual(step["service"], "initiator")
            sources = PATHS["steps"][step["step"]]["writers"]["initiator"]
            self.assertTrue(sources is None or step["detail"].get("source") in sources, (step, sources))
            self.assertIn(step["step"], PATHS["next_steps"][previous], f"{step['step']} after {previous or 'nothing'}")
            previous = step["step"]
            names.append(previous)
        return names

    def test_reconciler_sweeper_consumer_and_operator_steps_follow_the_contract(self) -> None:
        charged = age(pending_payment(self.user, amount=1_200), TIMEOUT + 60)
        self.gateway.charge(reference=str(charged.pk), amount=1_200)
        declined = age(pending_payment(self.user, amount=1_351), TIMEOUT + 60)
        self.gateway.charge(reference=str(declined.pk), amount=1_351)
        canceled = age(pending_payment(self.user, amount=1_400), TIMEOUT + 60)
        mismatched = age(pending_payment(self.user, amount=1_500), TIMEOUT + 60)
        self.gateway.charge(reference=str(mismatched.pk), amount=1_499)
        swept = age(pending_payment(self.user, amount=1_600), TIMEOUT + 60)
        completed_late = age(pending_payment(self.user, amount=1_650), TIMEOUT + 60)
        held = pending_payment(self.user, amount=1_700)
        settlement.hold_for_attention(payment_id=held.pk, reason="charge_mismatch", detail={"source": "reconciler"})

        reconcile(older_than_seconds=TIMEOUT)
        # Charges the gateway committed after the rollbacks: one found by the sweeper, one announced.
        self.gateway.charge(reference=str(swept.pk), amount=1_600, key=f"late-{swept.pk}")
        late = self.gateway.charge(reference=str(completed_late.pk), amount=1_650, key=f"late-{completed_late.pk}")
        reconcile(older_than_seconds=TIMEOUT)
        deliver(*completion_event(completed_late, charge_id=late["id"]))
        settle_payment(payment_id=held.pk, action=SettleAction.RELEASE, reason="checked", actor="ops")

        expected = {
            charged: ["CHARGED", "CAPTURED"],
            declined: ["CHARGE_DECLINED", "COMPENSATED"],
            canceled: ["CHARGE_CANCELED", "COMPENSATED"],
            mismatched: ["NEEDS_ATTENTION"],
            swept: ["CHARGE_CANCELED", "COMPENSATED", "CHARGED", "REFUNDED"],
            completed_late: ["CHARGE_CANCELED", "COMPENSATED", "CHARGED", "REFUNDED"],
            held: ["NEEDS_ATTENTION", "CHARGE_CANCELED", "COMPENSATED"],
        }
        for payment, steps in expected.items():
            self.assertEqual(self.assert_follows_the_contract(payment), steps, payment.amount)

    def test_the_invariant_rules_step_table_mirrors_the_contract(self) -> None:
        from payments import invariants

        contract = {
            "steps": {name: {"writers": spec["writers"]} for name, spec in PATHS["steps"].items()},
            "next_steps": PATHS["next_steps"],
            "final_status": PATHS["final_status"],
        }
        self.assertEqual(invariants.STEP_TABLE, contract)
        self.assertEqual(invariants.PATHS, invariants.SagaPaths.from_table(PATHS))

    def test_the_initiators_step_names_are_the_contracts(self) -> None:
        from payments import saga_log

        written = {value for name, value in vars(saga_log).items() if name.startswith("STEP_")}
        self.assertLessEqual(written, set(PATHS["steps"]))
        initiator_steps = {name for name, rule in PATHS["steps"].items() if "initiator" in rule["writers"]}
        self.assertLessEqual(written - {saga_log.STEP_COMPLETED, saga_log.STEP_FAILED}, initiator_steps)
