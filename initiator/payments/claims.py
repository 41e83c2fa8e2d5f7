"""One settler at a time: an initiator actor's claim on a payment, and its conversation with the provider.

Every initiator actor that may move money or settle a hold — the reconciler, the sweeper, the
outcome consumer when it must refund, operators — works inside `claimed(payment, holder)`
(docs/protocol.md §4-§6):

- the claim is the saga-log lease, taken only while nobody else's is live; it fences the payment, so
  no processor delivery acts on it again, and it excludes every other initiator actor;
- the claim is numbered (claim_seq) and registered on the payment row; a settlement commits only
  under the newest registered claim, so a holder that paused past its lease cannot settle;
- under it the actor first delivers the payment's settlement steps still in the step outbox, then
  re-reads the payment (its state may have changed before the claim);
- every call that can move money or end an intent is announced by a saga-log step first
  (CANCEL_REQUESTED, REFUND_REQUESTED) and its answer is logged after (CHARGE_CANCELED, CHARGED,
  REFUNDED): a later holder follows what the log says is in flight.

The claim is given back when the block ends, whatever happened.
"""

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from binpay_common import steps
from binpay_common.gateway import (
    GatewayAmbiguous,
    GatewayRejected,
    Intent,
    IntentInWrongState,
    IntentStatus,
    Refund,
    RefundStatus,
)
from binpay_common.saga_log import CLAIM_SEQ, LeaseLost, Step, has
from binpay_common.steps import identity
from payments import clients, saga_log
from payments.models import Payment
from payments.services import payment_register_claim

logger = logging.getLogger(__name__)


class ClaimBusy(Exception):
    """Another actor holds the payment's claim; try again after it lapses."""

    def __init__(self, holder: str | None) -> None:
        super().__init__(f"the payment is being settled by {holder or 'another actor'}; try again shortly")
        self.holder = holder


class PaymentClaim:
    """An actor's hold on one payment: the saga-log document as it last wrote it, and its provider calls."""

    def __init__(self, payment: Payment, owner: str, doc: dict, who: dict) -> None:
        self.payment = payment
        self.owner = owner
        # The claim's number, registered on the payment row: every settlement under it passes it.
        self.seq: int = doc[CLAIM_SEQ]
        self.doc = doc
        # What every step this actor writes says about it: detail.source (and actor, reason for operators).
        self.who = who

    @property
    def intent_id(self) -> str | None:
        return self.doc.get("intent_id")

    def has(self, step: str, intent_id: str | None = None) -> bool:
        return has(self.doc, identity(step, intent_id, self.intent_id))

    def log(self, *new_steps: Step) -> None:
        """Append steps under the claim (LeaseLost if it was taken from us)."""
        self.doc = clients.saga_log().append(str(self.payment.pk), self.owner, new_steps, known=self.doc)

    def step(self, name: str, intent_id: str | None = None, **detail) -> Step:
        intent_detail = {"intent_id": intent_id} if intent_id else {}
        return Step(name, {**intent_detail, **{k: v for k, v in detail.items() if v is not None}, **self.who})

    # -- the provider, write-ahead --------------------------------------------------------------

    def close(self, intent_id: str, *, reason_code: str) -> Intent:
        """Make sure no money can land through the intent: cancel it (announced first).

        Returns the intent as the provider decided it: canceled (logged CHARGE_CANCELED), or succeeded
        before the cancel (logged CHARGED). Raises GatewayAmbiguous while it is undecided (processing,
        no answer).
        """
        gateway = clients.gateway()
        if not (self.has(steps.CANCEL_REQUESTED, intent_id) or self.has(steps.CHARGE_DECLINED, intent_id)):
            self.log(self.step(steps.CANCEL_REQUESTED, intent_id, reason_code=reason_code))
        try:
            intent = gateway.cancel_intent(intent_id, attempt=self._attempt("cancel"))
        except IntentInWrongState as refused:
            intent = refused.intent
        except GatewayAmbiguous as error:
            intent = self._retrieve_after(intent_id, error)
        if intent.status is IntentStatus.CANCELED:
            if not self.has(steps.CHARGE_CANCELED, intent_id):
                self.log(self.step(steps.CHARGE_CANCELED, intent_id))
        elif intent.status is IntentStatus.SUCCEEDED:
            if not self.has(steps.CHARGED, intent_id):
                self.log(self.step(steps.CHARGED, intent_id, charge_id=intent.charge_id))
        else:
            raise GatewayAmbiguous(f"intent {intent_id} is {intent.status} after a cancel")
        return intent

    def refund(self, intent_id: str, *, reason_code: str) -> Refund:
        """Give the intent's money back (announced first). Returns the refund the provider holds for it.

        A refund already given (pending or succeeded) is returned as is; a failed one is logged
        REFUND_FAILED and returned, for the caller to surface. Raises GatewayAmbiguous when the
        provider cannot say.
        """
        gateway = clients.gateway()
        if not self.has(steps.REFUND_REQUESTED, intent_id):
            self.log(self.step(steps.REFUND_REQUESTED, intent_id, reason_code=reason_code))
        held = gateway.refunds_of(intent_id)
        # A refund that failed is surfaced, not sent again: the provider gave the money back to the
        # merchant's balance and a person decides how the customer gets it.
        refund = _standing(held) or _latest(held)
        if refund is None:
            try:
                refund = gateway.refund_intent(
                    intent_id, payment_id=str(self.payment.pk), attempt=self._attempt("refund")
                )
            except (GatewayAmbiguous, GatewayRejected) as error:
                # Refused as already refunded, or no answer: what the provider holds now decides.
                held = gateway.refunds_of(intent_id)
                refund = _standing(held) or _latest(held)
                if refund is None:
                    raise GatewayAmbiguous(f"refund of {intent_id}: {error}") from error
        if refund.gives_money_back:
            if not self.has(steps.REFUNDED, intent_id):
                self.log(
                    self.step(
                        steps.REFUNDED,
                        intent_id,
                        refund_id=refund.id,
                        refund_status=str(refund.status),
                        reason_code=reason_code,
                    )
                )
        elif refund.status is RefundStatus.FAILED and not self.has(steps.REFUND_FAILED, intent_id):
            self.log(
                self.step(steps.REFUND_FAILED, intent_id, refund_id=refund.id, failure_reason=refund.failure_reason)
            )
        return refund

    def _attempt(self, operation: str) -> int:
        return int((self.doc.get("key_attempts") or {}).get(operation, 1))

    @staticmethod
    def _retrieve_after(intent_id: str, error: GatewayAmbiguous) -> Intent:
        try:
            return clients.gateway().retrieve_intent(intent_id)
        except (GatewayAmbiguous, GatewayRejected):
            raise error from None


def _standing(refunds: list[Refund]) -> Refund | None:
    """The refund that gives (or gave) the money back, if any."""
    given = [refund for refund in refunds if refund.gives_money_back]
    return given[-1] if given else None


def _latest(refunds: list[Refund]) -> Refund | None:
    return refunds[-1] if refunds else None


@contextmanager
def claimed(payment: Payment, holder: str, **who) -> Iterator[PaymentClaim]:
    """Hold the payment's claim for the block (ClaimBusy when another actor holds it).

    `holder`: reconciler, sweeper, consumer or operator:<name>; `who` adds to every step's detail
    (operators: actor, reason). The payment is re-read under the claim.
    """
    log = clients.saga_log()
    owner = uuid.uuid4().hex
    claim = log.claim_settlement(saga_log.payment_fields(payment), owner, holder)
    if not claim.claimed:
        raise ClaimBusy(claim.doc.get("lease_holder"))
    source = holder.split(":", 1)[0]
    try:
        payment_register_claim(payment_id=payment.pk, claim_seq=claim.doc[CLAIM_SEQ])
        # Follow the log: settlement steps committed before the claim come first.
        doc = log.read(str(payment.pk)) if saga_log.deliver(payment) else claim.doc
        payment.refresh_from_db()
        yield PaymentClaim(payment, owner, doc, {"source": source, **who})
    finally:
        try:
            log.release(str(payment.pk), owner)
        except Exception as error:
            # The lease lapses on its own; nobody acts meanwhile.
            logger.warning("could not give the claim back (it lapses on its own): %s: %s", type(error).__name__, error)


__all__ = ["ClaimBusy", "LeaseLost", "PaymentClaim", "claimed"]
