"""The saga's invariants as pure checks over its three sources of truth (docs/contracts.md).

The initiator's rows, the Firestore saga log and the gateway's charges must tell one story. Each
check takes plain values (no database, no network) and returns what is wrong, one sentence per
problem prefixed with the payment id (or user id). The operator console highlights what these
find on one payment; devtools/check_invariants.py is to import the same rules.
"""

from collections.abc import Iterable, Mapping, Sequence

COMPLETED = "completed"
ROLLED_BACK = "rolled_back"
NEEDS_ATTENTION = "needs_attention"
PENDING = "pending"
TERMINAL_STATUSES = frozenset({COMPLETED, ROLLED_BACK, NEEDS_ATTENTION})
# A payment in these states still holds its amount on the account.
HOLDING_STATUSES = frozenset({PENDING, NEEDS_ATTENTION})

# Which saga-log step may follow which; None is the empty log. The initiator's image cannot read
# contracts/saga-log/steps.json: this mirrors its next_steps, and the contract test
# (payments/tests/test_saga_log_contract.py) fails when the two differ. Besides the processor's own path,
# the initiator may log a charge or cancellation it found at the gateway (reconciler, operator),
# settle a payment whose processor stopped part-way, and refund a charge found after a rollback.
NEXT_STEPS: dict[str | None, frozenset[str]] = {
    None: frozenset({"RECEIVED", "CHARGED", "CHARGE_DECLINED", "CHARGE_CANCELED", "NEEDS_ATTENTION"}),
    "RECEIVED": frozenset({"CHARGED", "CHARGE_DECLINED", "CHARGE_CANCELED", "NEEDS_ATTENTION"}),
    "CHARGED": frozenset({"COMPLETED", "REFUNDED", "CAPTURED", "NEEDS_ATTENTION"}),
    "CHARGE_DECLINED": frozenset({"FAILED", "COMPENSATED", "NEEDS_ATTENTION"}),
    "CHARGE_CANCELED": frozenset({"FAILED", "COMPENSATED", "NEEDS_ATTENTION"}),
    "COMPLETED": frozenset({"CAPTURED", "NEEDS_ATTENTION"}),
    "FAILED": frozenset({"COMPENSATED", "NEEDS_ATTENTION"}),
    "REFUNDED": frozenset({"COMPENSATED", "NEEDS_ATTENTION"}),
    "NEEDS_ATTENTION": frozenset({"CHARGED", "CHARGE_CANCELED", "REFUNDED", "CAPTURED", "COMPENSATED"}),
    "CAPTURED": frozenset(),
    "COMPENSATED": frozenset({"CHARGED", "REFUNDED"}),
}
# What ends the log of a payment in each final status (a late refund may follow COMPENSATED).
LAST_STEP_FOR_STATUS = {COMPLETED: "CAPTURED", ROLLED_BACK: "COMPENSATED", NEEDS_ATTENTION: "NEEDS_ATTENTION"}
# One of these must come before COMPENSATED: a rollback needs a reason no charge stands.
ROLLBACK_CAUSES = frozenset({"CHARGE_DECLINED", "CHARGE_CANCELED", "REFUNDED"})


def step_document_id(seq: int, step: str) -> str:
    return f"{seq:02d}-{step}"


def check_saga_log(*, payment_id: str, status: str, steps: Sequence[Mapping]) -> list[str]:
    """The log's shape (seq 1..n, ids, no repeats), its transitions, and that it ends as the status says.

    `steps` are the step documents in seq order: {"step", "seq"} and, when known, "id".
    """
    problems = []
    names = [step.get("step") for step in steps]
    seqs = [step.get("seq") for step in steps]
    if seqs != list(range(1, len(steps) + 1)):
        problems.append(f"{payment_id}: saga log seq not 1..n: {seqs}")
    for step in steps:
        expected_id = step_document_id(step.get("seq") or 0, step.get("step"))
        if step.get("id") not in (None, expected_id):
            problems.append(f"{payment_id}: step document {step['id']} should be {expected_id}")
    if len(set(names)) != len(names):
        problems.append(f"{payment_id}: a step is logged twice: {names}")
    previous = None
    for name in names:
        if name not in NEXT_STEPS.get(previous, frozenset()):
            problems.append(f"{payment_id}: step {name} cannot follow {previous}: {names}")
            break
        previous = name
    if status == COMPLETED:
        if names[-1:] != ["CAPTURED"] or "CHARGED" not in names:
            problems.append(f"{payment_id}: completed but the saga log is {names or 'empty'}")
    elif status == ROLLED_BACK:
        ends_settled = names[-1:] == ["COMPENSATED"] or names[-2:] == ["COMPENSATED", "REFUNDED"]
        before = names[: names.index("COMPENSATED")] if "COMPENSATED" in names else []
        if not ends_settled or not ROLLBACK_CAUSES.intersection(before):
            problems.append(f"{payment_id}: rolled back but the saga log is {names or 'empty'}")
    elif status == NEEDS_ATTENTION and names[-1:] != ["NEEDS_ATTENTION"]:
        problems.append(f"{payment_id}: needs attention but the saga log ends {names[-1:] or 'empty'}")
    return problems


def _standing(charge: Mapping) -> bool:
    return charge.get("status") == "succeeded" and (charge.get("amount_refunded") or 0) < (charge.get("amount") or 0)


def check_gateway(
    *, payment_id: str, status: str, amount: int, currency: str, charge_id: str | None, charges: Sequence[Mapping]
) -> list[str]:
    """The gateway's charges for the payment's reference against its status, amount and charge id."""
    problems = []
    succeeded = [charge for charge in charges if charge.get("status") == "succeeded"]
    standing = [charge for charge in succeeded if _standing(charge)]
    if len(succeeded) > 1:
        problems.append(f"{payment_id}: {len(succeeded)} successful charges at the gateway")
    if status == COMPLETED:
        if len(standing) != 1:
            problems.append(
                f"{payment_id}: completed with {len(succeeded)} charges, {len(standing)} of them unrefunded"
            )
        for charge in standing:
            if charge.get("amount") != amount or str(charge.get("currency", "")).upper() != currency:
                problems.append(
                    f"{payment_id}: charged {charge.get('amount')} {charge.get('currency')} "
                    f"for a payment of {amount} {currency}"
                )
    if status == ROLLED_BACK and standing:
        problems.append(f"{payment_id}: rolled back but {len(standing)} charge(s) stand unrefunded")
    if charge_id and charge_id not in {charge.get("id") for charge in charges}:
        problems.append(f"{payment_id}: the payment names charge {charge_id}, which the gateway does not list")
    return problems


def check_account(
    *,
    user_id: int,
    balance: int,
    held: int,
    deposits: Iterable[int],
    payments: Iterable[tuple[str, int]],
) -> list[str]:
    """balance = deposits - completed payments; held = payments still holding; available >= 0.

    `payments` are (status, amount) pairs of every payment of the user.
    """
    payments = list(payments)
    deposited = sum(deposits)
    completed = sum(amount for status, amount in payments if status == COMPLETED)
    holding = sum(amount for status, amount in payments if status in HOLDING_STATUSES)
    problems = []
    if balance != deposited - completed:
        problems.append(f"user {user_id}: balance {balance} != deposits {deposited} - completed {completed}")
    if held != holding:
        problems.append(f"user {user_id}: held {held} != pending holds {holding}")
    if balance - held < 0:
        problems.append(f"user {user_id}: available {balance - held} is negative")
    return problems
