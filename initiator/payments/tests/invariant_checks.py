"""The money invariants (binpay_common.invariants, binpay_common.steps) over one payment, as the tests see it:
the database row, its Firestore saga log and the provider's objects read through the gateway port."""

from accounts.models import Account, Deposit
from binpay_common import invariants, steps
from payments import clients
from payments.models import Payment


def named_intents(document: dict, steps_read: list[dict]) -> list[str]:
    """The payment's own intent and every intent a step names (the checker's index: never a search)."""
    named = [document["intent_id"]] if document.get("intent_id") else []
    for step in steps_read:
        intent_id = (step.get("detail") or {}).get("intent_id")
        if intent_id and intent_id not in named:
            named.append(intent_id)
    return named


def payment_problems(payment: Payment) -> list[str]:
    """What check_saga_log, check_provider and check_charge_ids find wrong with the payment ([] when nothing)."""
    payment.refresh_from_db()
    document, steps_read = clients.saga_log().read_with_steps(str(payment.pk)) or ({}, [])
    record = {
        "id": str(payment.pk),
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "charge_id": payment.charge_id,
        "refund_failed": payment.refund_failed_at is not None,
    }
    gateway = clients.gateway()
    intents = [gateway.retrieve_intent(intent_id) for intent_id in named_intents(document, steps_read)]
    refunds = {intent.id: gateway.refunds_of(intent.id) for intent in intents}
    return (
        steps.check_saga_log(record, document, steps_read)
        + invariants.check_provider(record, document.get("intent_id"), intents, refunds)
        + invariants.check_charge_ids(record, steps_read, intents)
    )


def account_problems(user) -> list[str]:
    account = Account.objects.get(user=user)
    deposited = sum(Deposit.objects.filter(user=user).values_list("amount", flat=True))
    payments = Payment.objects.filter(user=user).values("status", "amount")
    summary = {
        "id": user.pk,
        "account": {"balance": account.balance, "held": account.held, "available": account.available},
    }
    return invariants.check_account(summary, deposited, payments)
