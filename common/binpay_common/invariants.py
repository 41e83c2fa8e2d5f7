"""The saga's money invariants (docs/architecture.md §3) as pure checks over the three sources of truth.

The initiator's rows, the Firestore saga log and the provider's objects must tell one story. Each
check takes plain values (no database, no network: the operator console runs them on one payment,
devtools/check_invariants.py on every payment) and returns what is wrong, one sentence per problem
prefixed with the payment id (or user id). The provider's side is read through the gateway port,
indexed by the intents the saga log names (never by search).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .gateway import Intent, IntentStatus, Refund

COMPLETED = "completed"
ROLLED_BACK = "rolled_back"
NEEDS_ATTENTION = "needs_attention"
PENDING = "pending"
TERMINAL_STATUSES = frozenset({COMPLETED, ROLLED_BACK, NEEDS_ATTENTION})
# A payment in these states still holds its amount on the account.
HOLDING_STATUSES = frozenset({PENDING, NEEDS_ATTENTION})


def standing(intent: Intent, refunds: Sequence[Refund]) -> int:
    """What the intent holds of the customer's money now: captured minus what refunds give back."""
    given_back = sum(refund.amount for refund in refunds if refund.gives_money_back)
    return intent.captured - given_back


def check_provider(
    payment: Mapping, own_intent_id: str | None, intents: Sequence[Intent], refunds: Mapping[str, Sequence[Refund]]
) -> list[str]:
    """The provider's money for one payment, intent by intent.

    `payment`: id, status, amount, currency (and refund_failed when a refund failure was surfaced);
    `intents`: every intent the saga log names for it; `refunds`: each intent's refunds.
    """
    pid, status, amount = payment["id"], payment["status"], payment["amount"]
    held = {intent.id: standing(intent, refunds.get(intent.id, ())) for intent in intents}
    problems = []
    for intent in intents:
        if intent.payment_id not in (None, pid):
            problems.append(f"{pid}: intent {intent.id} belongs to payment {intent.payment_id}")
        if intent.captured and (intent.amount, intent.currency) != (amount, payment["currency"]):
            problems.append(f"{pid}: intent {intent.id} took {intent.amount} {intent.currency}")
        if held[intent.id] < 0:
            problems.append(f"{pid}: intent {intent.id} refunded more than it took")
    total = sum(held.values())
    if total > amount:
        problems.append(f"{pid}: the provider holds {total} for a payment of {amount}: {held}")
    if status == COMPLETED:
        standing_ids = [intent_id for intent_id, money in held.items() if money]
        if standing_ids != [own_intent_id] or held.get(own_intent_id) != amount:
            problems.append(f"{pid}: completed but the money stands in {held} (its intent: {own_intent_id})")
    if status == ROLLED_BACK and total and not payment.get("refund_failed"):
        problems.append(f"{pid}: rolled back but the provider holds {total}: {held}")
    for intent in intents:
        if status == ROLLED_BACK and intent.status in (IntentStatus.REQUIRES_CONFIRMATION, IntentStatus.PROCESSING):
            problems.append(f"{pid}: rolled back but intent {intent.id} is still {intent.status}")
    return problems


def check_charge_ids(payment: Mapping, steps: Sequence[Mapping], intents: Sequence[Intent]) -> list[str]:
    """Every charge and intent id the saga log and the payment name is the provider's, for this payment."""
    pid = payment["id"]
    by_id = {intent.id: intent for intent in intents}
    charges = {intent.charge_id for intent in intents if intent.charge_id}
    problems = []
    for step in steps:
        detail = step.get("detail") or {}
        intent_id = detail.get("intent_id")
        if intent_id and intent_id not in by_id:
            problems.append(f"{pid}: step {step.get('step')} names intent {intent_id}, unknown to the provider")
        if step.get("step") == "CHARGED":
            if not detail.get("charge_id"):
                problems.append(f"{pid}: step CHARGED without a charge_id")
            elif detail["charge_id"] not in charges:
                problems.append(f"{pid}: step CHARGED names charge {detail['charge_id']}, not the intent's")
    if payment.get("charge_id") and payment["charge_id"] not in charges:
        problems.append(f"{pid}: the payment names charge {payment['charge_id']}, not one of its intents'")
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
