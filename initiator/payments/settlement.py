"""The one settlement path of the initiator: change the database and record the saga step, in one transaction.

Every caller that settles a payment — the outcome consumer, the reconciler, operators — goes through
here. The step (CAPTURED, COMPENSATED, NEEDS_ATTENTION) is a step-outbox row committed with the
change and delivered to Firestore right after; what cannot be delivered now is delivered by the relay
(docs/protocol.md §4 rule 7), so no settlement can be left without its step.

- `capture`: the payment's intent succeeded; the hold becomes a debit (COMPLETED, step CAPTURED).
- `release`: no money stands; the hold is released (ROLLED_BACK, step COMPENSATED).
- `hold_for_attention`: the outcome cannot be settled automatically (NEEDS_ATTENTION); the hold stays.

A settler under a claim passes its `claim_seq`: the change commits only while that claim is the newest
registered on the payment (services.ClaimSuperseded otherwise; docs/protocol.md §5).
"""

from payments import saga_log
from payments.models import OperatorAction
from payments.services import OutcomeResult, hold_capture, hold_release, payment_mark_needs_attention


def capture(
    *, event: dict, detail: dict, operator_action: OperatorAction | None = None, claim_seq: int | None = None
) -> OutcomeResult:
    """Apply a payment.completed (event: event_id, payment_id, charge_id, amount, currency)."""
    return _delivered(
        hold_capture(event=event, step_detail=detail, operator_action=operator_action, claim_seq=claim_seq)
    )


def release(
    *, event: dict, detail: dict, operator_action: OperatorAction | None = None, claim_seq: int | None = None
) -> OutcomeResult:
    """Apply a payment.rollback (event: event_id, payment_id, reason_code, charge_id)."""
    return _delivered(
        hold_release(event=event, step_detail=detail, operator_action=operator_action, claim_seq=claim_seq)
    )


def hold_for_attention(
    *, payment_id, reason: str, detail: dict, retry_at=None, claim_seq: int | None = None
) -> OutcomeResult:
    return _delivered(
        payment_mark_needs_attention(
            payment_id=payment_id, reason=reason, step_detail=detail, retry_at=retry_at, claim_seq=claim_seq
        )
    )


def _delivered(outcome: OutcomeResult) -> OutcomeResult:
    saga_log.deliver(outcome.payment)
    return outcome
