"""Standing charges on rolled-back payments: found and refunded (docs/contracts.md, "Late charges").

Cancel-before-rollback means no charge made under the payment's key can land after a rollback;
this is the net under it, for whatever the gateway committed anyway (a charge made under another
key, an operator at the gateway's dashboard, a gateway bug). The reconciler sweeps rolled-back
payments for LATE_CHARGE_WINDOW_SECONDS, and a payment.completed that arrives for a rolled-back
payment triggers the same refund at once. Each refund has a deterministic idempotency key
(`refund-<charge_id>`), is logged as REFUNDED (preceded by CHARGED when the log never saw the
charge) and logged at ERROR, where operators look.
"""

import logging

from payments import clients, saga_log
from payments.models import Payment
from payments.settlement import log_gateway_fact

logger = logging.getLogger(__name__)


def standing(charges: list[dict]) -> list[dict]:
    """Succeeded charges that are not refunded."""
    return [charge for charge in charges if charge.get("status") == "succeeded" and not charge.get("refunded")]


def refund_standing_charges(payment: Payment, *, detail: dict) -> list[dict]:
    """Refund every standing charge the gateway holds for this payment; returns the refunds made.

    `detail` (at least `source`) goes into the CHARGED and REFUNDED steps.
    """
    gateway = clients.gateway()
    refunds = []
    for charge in standing(gateway.charges_for_reference(str(payment.pk))):
        log_gateway_fact(payment=payment, step=saga_log.STEP_CHARGED, detail={"charge_id": charge["id"], **detail})
        refund = gateway.refund(charge["id"])
        logger.error(
            "late charge %s (%s %s) on a rolled-back payment refunded as %s",
            charge["id"],
            charge.get("amount"),
            charge.get("currency"),
            refund["id"],
            extra={"late_charge": True, "charge_id": charge["id"], "refund_id": refund["id"]},
        )
        log_gateway_fact(
            payment=payment,
            step=saga_log.STEP_REFUNDED,
            detail={"charge_id": charge["id"], "refund_id": refund["id"], **detail},
        )
        refunds.append(refund)
    return refunds
