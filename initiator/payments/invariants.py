"""The saga's per-payment invariants as pure checks over its three sources of truth (docs/architecture.md).

The initiator's rows, the Firestore saga log and the gateway's charges must tell one story. Each
check takes plain values (no database, no network, no Django: devtools/check_invariants.py
imports this file too) and returns what is wrong, one sentence per problem prefixed with the
payment id (or user id). The operator console highlights what these find on one payment;
devtools/check_invariants.py runs them over every payment, with what needs the running system
(fetching, the whole-ledger scan).

The saga-log rules take the step table as data (`SagaPaths`): the checker loads
contracts/saga-log/steps.json; the initiator's image cannot read contracts/, so its runtime uses
STEP_TABLE below, which payments/tests/test_saga_log_contract.py compares with steps.json.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

COMPLETED = "completed"
ROLLED_BACK = "rolled_back"
NEEDS_ATTENTION = "needs_attention"
PENDING = "pending"
TERMINAL_STATUSES = frozenset({COMPLETED, ROLLED_BACK, NEEDS_ATTENTION})
# A payment in these states still holds its amount on the account.
HOLDING_STATUSES = frozenset({PENDING, NEEDS_ATTENTION})

# contracts/saga-log/steps.json without its prose: who writes each step (and from which detail.source;
# None: any), which step may follow which ("" is the empty log), and how each final status ends the log.
STEP_TABLE: dict = {
    "steps": {
        "RECEIVED": {"writers": {"processor": None}},
        "CHARGED": {"writers": {"processor": None, "initiator": ["reconciler", "operator", "consumer"]}},
        "CHARGE_DECLINED": {"writers": {"processor": None, "initiator": ["reconciler"]}},
        "CHARGE_CANCELED": {"writers": {"processor": None, "initiator": ["reconciler", "operator"]}},
        "COMPLETED": {"writers": {"processor": None}},
        "FAILED": {"writers": {"processor": None}},
        "REFUNDED": {"writers": {"processor": None, "initiator": ["reconciler", "operator", "consumer"]}},
        "CAPTURED": {"writers": {"initiator": None}},
        "COMPENSATED": {"writers": {"initiator": None}},
        "NEEDS_ATTENTION": {"writers": {"initiator": None}},
    },
    "next_steps": {
        "": ["RECEIVED", "CHARGED", "CHARGE_DECLINED", "CHARGE_CANCELED", "NEEDS_ATTENTION"],
        "RECEIVED": ["CHARGED", "CHARGE_DECLINED", "CHARGE_CANCELED", "NEEDS_ATTENTION"],
        "CHARGED": ["COMPLETED", "REFUNDED", "CAPTURED", "NEEDS_ATTENTION"],
        "CHARGE_DECLINED": ["FAILED", "COMPENSATED", "NEEDS_ATTENTION"],
        "CHARGE_CANCELED": ["FAILED", "COMPENSATED", "NEEDS_ATTENTION"],
        "COMPLETED": ["CAPTURED", "NEEDS_ATTENTION"],
        "FAILED": ["COMPENSATED", "NEEDS_ATTENTION"],
        "REFUNDED": ["COMPENSATED", "NEEDS_ATTENTION"],
        "NEEDS_ATTENTION": ["CHARGED", "CHARGE_CANCELED", "REFUNDED", "CAPTURED", "COMPENSATED"],
        "CAPTURED": [],
        "COMPENSATED": ["CHARGED", "REFUNDED"],
    },
    "final_status": {
        "completed": {"last_step": ["CAPTURED"], "requires": ["CHARGED"]},
        "rolled_back": {
            "last_step": ["COMPENSATED", "REFUNDED"],
            "last_step_after": {"REFUNDED": "COMPENSATED"},
            "before_one_of": {"COMPENSATED": ["CHARGE_DECLINED", "CHARGE_CANCELED", "REFUNDED"]},
        },
        "needs_attention": {"last_step": ["NEEDS_ATTENTION"]},
    },
}
NO_CHARGES = {"charges_succeeded": 0, "charges_failed": 0, "refunds": 0, "amount_charged": 0, "amount_refunded": 0}


@dataclass(frozen=True)
class SagaPaths:
    """The step table as data: writers per step, legal next steps, and each final status's rules."""

    writers: dict[str, dict[str, frozenset[str] | None]]
    next_steps: dict[str | None, frozenset[str]]
    final_status: dict[str, dict]

    @classmethod
    def from_table(cls, table: Mapping) -> SagaPaths:
        """From steps.json's shape (its prose fields are ignored)."""
        writers = {
            name: {
                service: None if sources is None else frozenset(sources) for service, sources in spec["writers"].items()
            }
            for name, spec in table["steps"].items()
        }
        next_steps = {(name or None): frozenset(following) for name, following in table["next_steps"].items()}
        return cls(writers=writers, next_steps=next_steps, final_status=dict(table["final_status"]))

    def last_steps(self, status: str) -> frozenset[str]:
        """The steps a log may end with once the payment has `status` (empty for an unsettled one)."""
        return frozenset(self.final_status.get(status, {}).get("last_step", ()))

    def check_steps(self, status: str, steps: list[tuple[str | None, str | None, str]]) -> list[str]:
        """Problems with a log of (service, detail.source, step) in order, for a payment in `status`."""
        problems = []
        names = [name for _, _, name in steps]
        for service, source, name in steps:
            allowed = self.writers.get(name)
            if allowed is None:
                problems.append(f"unknown step {name}")
            elif service not in allowed:
                problems.append(f"step {name} written by {service}, not by {' or '.join(sorted(allowed))}")
            elif allowed[service] is not None and source not in allowed[service]:
                problems.append(
                    f"step {name} written by {service} from source {source}, not {sorted(allowed[service])}"
                )
        if len(set(names)) != len(names):
            problems.append(f"a step is logged twice: {names}")
        previous = None
        for name in names:
            if name not in self.next_steps.get(previous, frozenset()):
                problems.append(f"step {name} cannot follow {previous}: {names}")
                break
            previous = name
        rules = self.final_status.get(status)
        if rules is None:
            return problems
        last = names[-1] if names else None
        if last not in rules.get("last_step", ()):
            problems.append(f"status {status} but the saga log ends {last or 'empty'}: {names}")
        for required in rules.get("requires", ()):
            if required not in names:
                problems.append(f"status {status} without {required}: {names}")
        earlier = rules.get("last_step_after", {}).get(last)
        if earlier and earlier not in names[:-1]:
            problems.append(f"status {status} ends {last} without {earlier} before it: {names}")
        for step, one_of in rules.get("before_one_of", {}).items():
            if step in names and not set(one_of) & set(names[: names.index(step)]):
                problems.append(f"{step} without one of {', '.join(one_of)} before it: {names}")
        return problems


PATHS = SagaPaths.from_table(STEP_TABLE)


def step_document_id(seq: int, step: str) -> str:
    return f"{seq:02d}-{step}"


def check_saga_log(payment: Mapping, steps: Sequence[Mapping], paths: SagaPaths = PATHS) -> list[str]:
    """Numbering, step documents and the legal paths of the payment's log.

    `payment` needs "id" and "status"; `steps` are the step documents in seq order: "step", "seq",
    "service", "detail" and, when known, the document's "id".
    """
    pid = payment["id"]
    problems = []
    if [step.get("seq") for step in steps] != list(range(1, len(steps) + 1)):
        problems.append(f"{pid}: saga log seq not 1..n: {[s.get('seq') for s in steps]}")
    for step in steps:
        expected_id = step_document_id(step.get("seq") or 0, step.get("step"))
        if step.get("id") not in (None, expected_id):
            problems.append(f"{pid}: step document {step['id']} should be {expected_id}")
    logged = [(step.get("service"), (step.get("detail") or {}).get("source"), step.get("step")) for step in steps]
    problems += [f"{pid}: {problem}" for problem in paths.check_steps(payment["status"], logged)]
    return problems


def standing(entry: Mapping) -> int:
    """What the gateway still holds for one ledger row: charged minus refunded, in minor units."""
    return entry["amount_charged"] - entry["amount_refunded"]


def ledger_entry(charges: Iterable[Mapping]) -> dict:
    """The gateway's ledger row (GET /v1/ledger) of one reference, from its charges (one full refund at most each)."""
    succeeded = [charge for charge in charges if charge.get("status") == "succeeded"]
    return {
        "charges_succeeded": len(succeeded),
        "charges_failed": sum(1 for charge in charges if charge.get("status") == "failed"),
        "refunds": sum(1 for charge in succeeded if charge.get("amount_refunded")),
        "amount_charged": sum(charge.get("amount") or 0 for charge in succeeded),
        "amount_refunded": sum(charge.get("amount_refunded") or 0 for charge in succeeded),
    }


def check_gateway(payment: Mapping, entry: Mapping | None) -> list[str]:
    """The gateway's money for one payment, by amount (the ledger row for its reference)."""
    pid, status, amount = payment["id"], payment["status"], payment["amount"]
    entry = entry or NO_CHARGES
    held = standing(entry)
    problems = []
    if held > amount:
        problems.append(
            f"{pid}: the gateway holds {held} for a payment of {amount} ({entry['charges_succeeded']} charges)"
        )
    if status == COMPLETED and (held != amount or entry["charges_succeeded"] - entry["refunds"] != 1):
        problems.append(
            f"{pid}: completed but the gateway holds {held} of {amount} "
            f"({entry['charges_succeeded']} charges, {entry['refunds']} refunds)"
        )
    if status == ROLLED_BACK and held:
        problems.append(
            f"{pid}: rolled back but charged {entry['amount_charged']} and refunded {entry['amount_refunded']}"
        )
    return problems


def check_charge_ids(
    payment: Mapping, document: Mapping, steps: Sequence[Mapping], charges: Sequence[Mapping]
) -> list[str]:
    """Every charge id the saga log and the payment name is a charge the gateway made for this payment;
    a completed payment's is the standing one, of its amount and currency."""
    pid = payment["id"]
    by_id = {charge["id"]: charge for charge in charges}
    succeeded = {charge_id for charge_id, charge in by_id.items() if charge.get("status") == "succeeded"}
    named = [(f"step {step.get('step')}", (step.get("detail") or {}).get("charge_id")) for step in steps]
    named = [(where, charge_id) for where, charge_id in named if where in ("step CHARGED", "step REFUNDED")]
    problems = []
    for where, charge_id in named:
        if charge_id and charge_id not in succeeded:
            problems.append(f"{pid}: {where} names charge {charge_id}, not a succeeded charge for this payment")
    # The document and the payment keep the charge id they learnt first: a decline's failed charge too.
    recorded = [("saga document", document.get("charge_id")), ("payment", payment.get("charge_id"))]
    for where, charge_id in recorded:
        if charge_id and charge_id not in by_id:
            problems.append(f"{pid}: {where} names charge {charge_id}, not a charge the gateway made for this payment")
    named += recorded
    for step in steps:
        if step.get("step") == "CHARGED" and not (step.get("detail") or {}).get("charge_id"):
            problems.append(f"{pid}: step CHARGED without a charge_id")
    if payment["status"] == COMPLETED:
        standing_ids = [cid for cid in succeeded if not by_id[cid].get("refunded")]
        charged_ids = {cid for where, cid in named if cid}
        if len(standing_ids) != 1 or charged_ids != set(standing_ids):
            problems.append(f"{pid}: completed with charge ids {sorted(charged_ids)}, gateway stands {standing_ids}")
        for charge_id in standing_ids:
            charge = by_id[charge_id]
            if (charge.get("amount"), charge.get("currency")) != (payment["amount"], payment["currency"]):
                problems.append(
                    f"{pid}: charge {charge_id} is {charge.get('amount')} {charge.get('currency')}, "
                    f"the payment {payment['amount']} {payment['currency']}"
                )
    return problems


def check_account(user: Mapping, deposited: int, payments: Iterable[Mapping]) -> list[str]:
    """balance = deposits - completed payments; held = payments still holding; available = balance - held >= 0.

    `user` is {"id", "account": {"balance", "held", "available"}}; `payments` every payment of the
    user ({"status", "amount"}).
    """
    account = user["account"]
    payments = list(payments)
    completed = sum(p["amount"] for p in payments if p["status"] == COMPLETED)
    # A payment that needs attention keeps its hold until someone settles it.
    holding = sum(p["amount"] for p in payments if p["status"] in HOLDING_STATUSES)
    problems = []
    if account["balance"] != deposited - completed:
        problems.append(
            f"user {user['id']}: balance {account['balance']} != deposits {deposited} - completed {completed}"
        )
    if account["held"] != holding:
        problems.append(f"user {user['id']}: held {account['held']} != pending holds {holding}")
    if account["available"] < 0 or account["available"] != account["balance"] - account["held"]:
        problems.append(f"user {user['id']}: available {account['available']} is wrong or negative")
    return problems
