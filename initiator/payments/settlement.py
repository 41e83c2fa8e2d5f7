"""The one settlement path of the initiator: change the database, then log the saga step.

Every caller that settles a payment — the outcome consumer, the reconciler, the late-charge
sweeper, dead letters and operators — goes through here, so none can apply the database change
and forget the saga-log step (or the other way round). The database change is committed first;
the step follows, and a caller that fails between the two retries: the inbox (ProcessedEvent)
makes the database half a no-op and `ensure_step` writes the missing step once.

- `capture`: the charge stands; the hold becomes a debit (COMPLETED, step CAPTURED).
- `release`: no charge stands; the hold is released (ROLLED_BACK, step COMPENSATED).
- `hold_for_attention`: the outcome cannot be settled automatically (NEEDS_ATTENTION); the hold stays.
- `log_gateway_fact`: a step the initiator learned from the gateway (CHARGED, CHARGE_CANCELED, ...).
"""

from payments import saga_log
from payments.models import Payment
from payments.services import OutcomeResult, hold_capture, hold_release, payment_mark_needs_attention


def capture(*, event: dict, detail: dict) -> OutcomeResult:
    """Apply a payment.completed (event: event_id, payment_id, charge_id, amount, currency)."""
    return _logged(hold_capture(event=event), detail)


def release(*, event: dict, detail: dict) -> OutcomeResult:
    """Apply a payment.rollback (event: event_id, payment_id, reason_code, charge_id)."""
    return _logged(hold_release(event=event), detail)


def hold_for_attention(*, payment_id, reason: str, detail: dict) -> OutcomeResult:
    outcome = payment_mark_needs_attention(payment_id=payment_id, reason=reason)
    return _logged(outcome, {"reason_code": reason, **detail})


def log_gateway_fact(*, payment: Payment, step: str, detail: dict) -> bool:
    """Log what the gateway said about the payment, so the saga log stays complete."""
    return saga_log.ensure_step(payment=payment, step=step, detail=detail)


def _logged(outcome: OutcomeResult, detail: dict) -> OutcomeResult:
    if outcome.step is not None:
        saga_log.ensure_step(payment=outcome.payment, step=outcome.step, detail=detail)
    return outcome
