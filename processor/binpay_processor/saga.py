"""The processor's half of the payment saga: one handler for push and pull deliveries (docs/protocol.md §6).

For a payment.initiated message it walks the saga log forward from wherever the document stands:

    RECEIVED, INTENT_CREATED -> confirm -> CHARGED, COMPLETED             -> publish payment.completed
                                        -> CHARGE_DECLINED -> cancel -> CHARGE_CANCELED, FAILED -> payment.rollback
                             -> CANCEL_REQUESTED -> cancel -> CHARGE_CANCELED, FAILED (fault before the charge,
                                                              or the provider unusable past SAGA_TIMEOUT_SECONDS)
                                        -> CHARGED -> REFUND_REQUESTED -> refund -> REFUNDED (failure after the
                                                                                     charge) -> payment.rollback

No money moves before the intent's id is logged (INTENT_CREATED is written before the confirm is
sent), and every call that can move money or end the intent is announced by a step first. A payment
is rolled back only when its intent is canceled (or none was ever created). A timeout, a 5xx, a 409,
a 429 or `processing` says nothing: the intent is retrieved by id, and if that is not definitive the
delivery keeps its lease (so no initiator actor can claim the payment while a call may be in flight)
and Pub/Sub redelivers.

Each step is committed to Firestore before the next call, so a redelivery after a crash resumes
instead of repeating: the provider sees the same idempotency keys, a written outcome is only
(re-)published, and a published one is only acknowledged.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from binpay_common import events, steps, tracing
from binpay_common.gateway import (
    GatewayAmbiguous,
    GatewayRejected,
    Intent,
    IntentInWrongState,
    IntentStatus,
    PaymentGateway,
    PaymentRef,
    Refund,
)
from binpay_common.logs import log_context
from binpay_common.saga_log import UPDATE_TIME, ClaimStatus, LeaseLost, SagaLog, Step, has
from google.api_core import exceptions as google_exceptions

from .clients import Clients
from .config import PUBLISH_TIMEOUT_SECONDS, Settings

logger = logging.getLogger(__name__)

FAULT_POINTS = ("before_charge", "after_charge", "before_publish")
# A create the provider refuses because of these parameters names a payment method (or customer) it
# can never charge: the payment is rolled back with reason payment_method_invalid, never retried.
# Any other refusal is BinPay's bug: retried, dead-lettered, settled by the reconciler, never silent.
PAYMENT_METHOD_PARAMS = frozenset({"payment_method", "customer"})
# Waits before asking the provider again within one delivery (bounded by the settings' retry room).
AMBIGUITY_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0)


class Disposition(enum.Enum):
    DONE = "done"  # handled (or a duplicate of a handled message): ack
    POISON = "poison"  # can never be handled: logged at ERROR, ack
    BUSY = "busy"  # another delivery holds this payment's lease: retry later
    RETRY = "retry"  # transient failure: nack, Pub/Sub redelivers
    CRASH = "crash"  # injected crash (fault injection): nack

    @property
    def ack(self) -> bool:
        return self in (Disposition.DONE, Disposition.POISON)


@dataclass(frozen=True)
class HandlingResult:
    disposition: Disposition
    detail: str
    # BUSY: seconds until the other delivery's lease lapses (see handle_waiting_out_leases).
    retry_after: float | None = None


class SimulatedCrash(Exception):
    """Fault injection: the processor 'dies' at a named point."""


class RetryLater(Exception):
    """A problem that may clear up on a later delivery (it is logged where it is raised)."""


class ChargeMismatch(Exception):
    """The intent did something the saga never asked of it: the reconciler surfaces it as needs_attention."""


_TRANSIENT = (LeaseLost, RetryLater, google_exceptions.GoogleAPIError, TimeoutError)


class PaymentProcessor:
    """The handler both delivery modes call; built by bootstrap.build_processor."""

    def __init__(self, settings: Settings, clients: Clients, saga_log: SagaLog, gateway: PaymentGateway) -> None:
        self.settings = settings
        self.clients = clients
        self.saga_log = saga_log
        self.gateway = gateway

    def handle_waiting_out_leases(
        self,
        message_data: bytes,
        attributes: Mapping[str, str],
        delivery_attempt: int | None,
        message_id: str | None,
        max_wait_seconds: float,
        stop: threading.Event | None = None,
    ) -> HandlingResult:
        """Handle a delivery; while another delivery holds the payment's lease, wait for it to lapse
        (up to `max_wait_seconds`) and try again.

        A delivery that answers BUSY burns one of the subscription's delivery attempts, and Pub/Sub
        retries within seconds: a delivery that died holding its lease (a killed pod or Cloud Run
        instance) would send the message to the dead-letter topic long before the lease lapsed.
        """
        stop = stop or threading.Event()
        deadline = time.monotonic() + max_wait_seconds
        while True:
            result = self.handle_payment_initiated(message_data, attributes, delivery_attempt, message_id)
            if result.disposition is not Disposition.BUSY or result.retry_after is None:
                return result
            wait = min(result.retry_after + 1.0, deadline - time.monotonic())
            if wait <= 0 or stop.wait(wait):
                return result

    @tracing.consumes_message
    def handle_payment_initiated(
        self,
        message_data: bytes,
        attributes: Mapping[str, str],
        delivery_attempt: int | None = None,
        message_id: str | None = None,
    ) -> HandlingResult:
        """Process one delivery of a payment.initiated message; the result says whether to ack."""
        attributes = dict(attributes or {})
        with log_context(correlation_id=attributes.get("correlation_id"), payment_id=attributes.get("payment_id")):
            try:
                payment = events.parse_payment_initiated(message_data, attributes)
            except events.PoisonMessage as error:
                logger.error(
                    "poison message acknowledged without processing: %s",
                    error,
                    extra={
                        "message_id": message_id,
                        "delivery_attempt": delivery_attempt,
                        "data": _preview(message_data),
                    },
                )
                return HandlingResult(Disposition.POISON, str(error))
        with log_context(correlation_id=payment.correlation_id, payment_id=payment.payment_id):
            return self._handle(payment, delivery_attempt, message_id)

    def _handle(self, payment: events.PaymentInitiated, delivery_attempt: int | None, message_id: str | None):
        saga_log = self.saga_log
        owner = uuid.uuid4().hex
        extra = {"message_id": message_id, "delivery_attempt": delivery_attempt}
        logger.info("payment.initiated received (amount %s %s)", payment.amount, payment.currency, extra=extra)
        try:
            claim = saga_log.claim_delivery(payment.fields(), owner, self._first_steps(payment))
        except google_exceptions.GoogleAPIError as error:
            logger.warning("saga log unavailable, will retry: %s", error, extra=extra)
            return HandlingResult(Disposition.RETRY, f"firestore: {error}")
        if claim.status is ClaimStatus.CONFLICT:
            logger.error(
                "poison message: payment.initiated contradicts the saga log's payment (%s %s, user %s)",
                claim.doc.get("amount"),
                claim.doc.get("currency"),
                claim.doc.get("user_id"),
                extra=extra,
            )
            return HandlingResult(Disposition.POISON, "payment differs from the saga log")
        if claim.status is ClaimStatus.ALREADY_DONE:
            logger.info("duplicate delivery: outcome already published (state %s)", claim.doc.get("state"), extra=extra)
            return HandlingResult(Disposition.DONE, "duplicate")
        if claim.status is ClaimStatus.SETTLED_ELSEWHERE:
            logger.warning("payment taken over by the initiator (state %s); ignored", claim.doc.get("state"))
            return HandlingResult(Disposition.DONE, "settled by initiator")
        if claim.status is ClaimStatus.BUSY:
            logger.info("another delivery holds the lease until %s; retry later", claim.doc.get("lease_expires_at"))
            return HandlingResult(Disposition.BUSY, "lease held by another delivery", claim.busy_for_seconds)
        try:
            state = self._walk(SagaDelivery(self, payment, owner), claim.doc)
            return HandlingResult(Disposition.DONE, state)
        except GatewayAmbiguous as error:
            # Keep the lease: a call may still land at the provider, and no initiator actor may claim
            # the payment and decide under it until the lease has lapsed.
            logger.warning("provider answer not definitive, will retry (lease kept): %s", error, extra=extra)
            return HandlingResult(Disposition.RETRY, f"GatewayAmbiguous: {error}")
        except ChargeMismatch as error:
            logger.error("%s; left pending for the reconciler, which surfaces it as needs_attention", error)
            self._release(payment.payment_id, owner)
            return HandlingResult(Disposition.DONE, "charge_mismatch")
        except SimulatedCrash as crash:
            logger.warning("injected crash: %s", crash, extra=extra)
            self._release(payment.payment_id, owner)
            return HandlingResult(Disposition.CRASH, str(crash))
        except _TRANSIENT as error:
            logger.warning("transient failure, will retry: %s: %s", type(error).__name__, error, extra=extra)
            self._release(payment.payment_id, owner)
            return HandlingResult(Disposition.RETRY, f"{type(error).__name__}: {error}")
        except Exception as error:
            # A bug or an unforeseen answer: retrying is safe (every step is idempotent) and the
            # dead-letter policy ends the loop; acknowledging could lose a payment.
            logger.exception("unexpected error, will retry", extra=extra)
            self._release(payment.payment_id, owner)
            return HandlingResult(Disposition.RETRY, f"{type(error).__name__}: {error}")

    def _walk(self, delivery: SagaDelivery, doc: dict) -> str:
        """Walk the saga; an ambiguous answer that came back fast is asked again in this delivery.

        Most are a 5xx that did nothing or a saved error the next key gets past: handing each back to
        Pub/Sub would hold the payment for a whole lease (the redelivery finds it leased) and, on
        push, slow the subscription down (Pub/Sub backs off an endpoint that fails). Each retry walks
        the log forward again, so nothing is sent twice under different keys.
        """
        claimed_at = time.monotonic()
        room = self.settings.ambiguity_retry_room_seconds()
        for backoff in AMBIGUITY_BACKOFF_SECONDS:
            try:
                return delivery.run(doc)
            except GatewayAmbiguous as error:
                if time.monotonic() - claimed_at + backoff > room:
                    raise
                logger.info("provider answer not definitive; asking again in %.2f s: %s", backoff, error)
                time.sleep(backoff)
                doc = delivery.doc
        return delivery.run(doc)

    def _first_steps(self, payment: events.PaymentInitiated) -> list[Step]:
        """What a first delivery writes when it creates the document: RECEIVED, and INTENT_CREATED when
        the intent could be created first (it moves no money; one write logs both). A later delivery
        ignores these and walks on from the document's steps, creating the intent itself if needed."""
        received = Step(steps.RECEIVED)
        if _age_seconds(payment) >= self.settings.saga_timeout_seconds:
            return [received]
        try:
            intent = self.gateway.create_intent(_payment_ref(payment))
        except (GatewayAmbiguous, GatewayRejected) as error:
            logger.info("the intent could not be created before the claim (%s); the saga retries it", error)
            return [received]
        return [received, _intent_created(intent)]

    def _release(self, payment_id: str, owner: str) -> None:
        try:
            self.saga_log.release(payment_id, owner)
        except google_exceptions.GoogleAPIError as error:
            logger.warning("could not release the lease (it expires on its own): %s", error)


class SagaDelivery:
    """One delivery's walk through the saga, holding the payment's lease."""

    def __init__(self, processor: PaymentProcessor, payment: events.PaymentInitiated, owner: str):
        self.settings = processor.settings
        self.clients = processor.clients
        self.log = processor.saga_log
        self.gateway = processor.gateway
        self.payment = payment
        self.ref = _payment_ref(payment)
        self.owner = owner
        self.fault = self._fault_point()
        # The saga-log document as this delivery last got it (its next write's precondition).
        self.doc: dict = {}

    def run(self, doc: dict) -> str:
        self.doc = doc
        while True:
            doc = self.doc
            if has(doc, steps.COMPLETED) or has(doc, steps.FAILED) or doc.get("outcome"):
                self._publish_outcome()
                return doc["state"]
            if has(doc, steps.REFUND_REQUESTED):
                self._refund()
            elif has(doc, steps.CHARGED):
                self._after_charge()
            elif has(doc, steps.CHARGE_CANCELED):
                self._fail(reason_code=doc.get("decline_code") or doc.get("cancel_reason") or "processor_failure")
            elif has(doc, steps.CHARGE_DECLINED) or has(doc, steps.CANCEL_REQUESTED):
                self._cancel()
            elif has(doc, steps.INTENT_CREATED):
                self._before_confirm()
            else:
                self._create()

    # -- steps ---------------------------------------------------------------------------------

    def _create(self) -> None:
        """No intent is logged yet: create it (no money moves), then log its id before anything else."""
        if self._past_saga_timeout():
            # No intent is named, so no confirm was ever sent: nothing can land.
            logger.warning("no intent created within the saga timeout; rolling back (nothing to cancel)")
            self._fail(reason_code="gateway_unavailable")
            return
        attempt = self._attempt("create")
        try:
            intent = self.gateway.create_intent(self.ref, attempt=attempt)
        except GatewayAmbiguous as error:
            self._next_key_if_spent("create", attempt, error)
            return
        except GatewayRejected as error:
            if error.param not in PAYMENT_METHOD_PARAMS:
                logger.error("the provider refuses the intent BinPay asks for (%s): a bug to fix; retried", error)
                raise RetryLater(f"the provider refused to create the intent: {error}") from error
            logger.error("the provider refuses the payment method %s: %s", self.payment.payment_method, error)
            self._fail(reason_code="payment_method_invalid")
            return
        self._append(_intent_created(intent))

    def _before_confirm(self) -> None:
        if self.fault == "before_charge":
            logger.warning("fault injection: failing before the charge")
            self._append(
                Step(
                    steps.CANCEL_REQUESTED,
                    self._intent_detail(reason_code="processor_failure"),
                    {"cancel_reason": "processor_failure"},
                )
            )
        elif self._past_saga_timeout():
            logger.warning("provider still not definitive past the saga timeout; canceling the intent")
            self._append(
                Step(
                    steps.CANCEL_REQUESTED,
                    self._intent_detail(reason_code="gateway_unavailable"),
                    {"cancel_reason": "gateway_unavailable"},
                )
            )
        else:
            self._confirm()

    def _confirm(self) -> None:
        attempt = self._attempt("confirm")
        try:
            intent = self.gateway.confirm_intent(self.doc["intent_id"], self.ref, attempt=attempt)
        except GatewayAmbiguous as error:
            intent = self._retrieve_after(error)
            if intent.status is IntentStatus.REQUIRES_CONFIRMATION:
                self._next_key_if_spent("confirm", attempt, error)
                return
        except IntentInWrongState as error:
            intent = error.intent
        if intent.status is IntentStatus.PROCESSING:
            # A replayed answer is the intent as it was then: read it as it is now.
            intent = self._retrieve_after(GatewayAmbiguous(f"intent {intent.id} is processing"))
        self._settle_confirmed(intent)

    def _settle_confirmed(self, intent: Intent) -> None:
        """Log what the confirm did; raise GatewayAmbiguous while the intent has not decided."""
        if intent.status is IntentStatus.SUCCEEDED:
            self._charged(intent)
        elif intent.declined:
            logger.info("confirm declined: %s", intent.decline_code)
            self._declined(intent.decline_code)
        elif intent.status is IntentStatus.REQUIRES_ACTION:
            # Off-session: nobody can authenticate; Stripe declines these with authentication_required.
            self._declined("authentication_required")
        elif intent.status is IntentStatus.CANCELED:
            # An earlier delivery canceled it and died before logging it.
            self._append(Step(steps.CHARGE_CANCELED, self._intent_detail(), {"cancel_reason": "gateway_unavailable"}))
        elif intent.status in (IntentStatus.PROCESSING, IntentStatus.REQUIRES_CONFIRMATION):
            raise GatewayAmbiguous(f"intent {intent.id} is {intent.status}")
        else:
            raise ChargeMismatch(f"intent {intent.id} is {intent.status}: BinPay captures automatically")

    def _charged(self, intent: Intent) -> None:
        if not intent.matches(self.ref):
            raise ChargeMismatch(
                f"intent {intent.id} took {intent.amount} {intent.currency}, the payment is "
                f"{self.ref.amount} {self.ref.currency}"
            )
        logger.info("intent %s succeeded (charge %s)", intent.id, intent.charge_id)
        charged = Step(steps.CHARGED, self._intent_detail(charge_id=intent.charge_id), {"charge_id": intent.charge_id})
        if self.fault == "after_charge":
            self._append(charged)
        else:
            # Nothing happens between CHARGED and COMPLETED: one write logs both, in order.
            self._append(charged, self._completion_step(intent.charge_id))

    def _declined(self, reason_code: str) -> None:
        # The decline is the cancel's write-ahead: the intent waits in requires_payment_method and is canceled next.
        self._append(
            Step(steps.CHARGE_DECLINED, self._intent_detail(reason_code=reason_code), {"decline_code": reason_code})
        )

    def _cancel(self) -> None:
        """End the intent. Canceled: nothing can land, roll back. Refused because it succeeded: charged."""
        attempt = self._attempt("cancel")
        try:
            intent = self.gateway.cancel_intent(self.doc["intent_id"], attempt=attempt)
        except IntentInWrongState as error:
            intent = error.intent
        except GatewayAmbiguous as error:
            intent = self._retrieve_after(error)
            if intent.status is not IntentStatus.CANCELED and intent.status is not IntentStatus.SUCCEEDED:
                self._next_key_if_spent("cancel", attempt, error)
                return
        if intent.status is IntentStatus.CANCELED:
            logger.info("intent %s canceled: no charge can land", intent.id)
            reason_code = self.doc.get("decline_code") or self.doc.get("cancel_reason") or "processor_failure"
            self._append(Step(steps.CHARGE_CANCELED, self._intent_detail()), self._failure_step(reason_code))
        elif intent.status is IntentStatus.SUCCEEDED:
            logger.warning("intent %s succeeded before the cancel: continuing as charged", intent.id)
            self._charged(intent)
        else:
            raise GatewayAmbiguous(f"cancel of {intent.id} left it {intent.status}")

    def _after_charge(self) -> None:
        if self.fault == "after_charge" and not has(self.doc, steps.REFUND_REQUESTED):
            logger.warning("fault injection: failing after charge %s; refunding it", self.doc.get("charge_id"))
            self._append(
                Step(
                    steps.REFUND_REQUESTED,
                    self._intent_detail(reason_code="processor_failure"),
                    {"refund_reason": "processor_failure"},
                )
            )
        else:
            self._append(self._completion_step(self.doc["charge_id"]))

    def _refund(self) -> None:
        """The refund was announced: send it (same key), and log it once the provider accepted it."""
        intent_id = self.doc["intent_id"]
        attempt = self._attempt("refund")
        try:
            refund = self.gateway.refund_intent(intent_id, payment_id=self.payment.payment_id, attempt=attempt)
        except (GatewayAmbiguous, GatewayRejected) as error:
            refund = self._existing_refund(intent_id)
            if refund is None:
                if isinstance(error, GatewayAmbiguous):
                    self._next_key_if_spent("refund", attempt, error)
                    return
                raise RetryLater(f"the provider refused the refund of {intent_id}: {error}") from error
        if not refund.gives_money_back:
            # Left to the reconciler, which finds REFUND_REQUESTED open and surfaces a failed refund.
            raise RetryLater(f"refund {refund.id} of {intent_id} is {refund.status}")
        reason_code = self.doc.get("refund_reason") or "processor_failure"
        event = events.rollback_event(
            payment_id=self.payment.payment_id,
            reason_code=reason_code,
            failed_step="post_charge",
            refunded=True,
            intent_id=intent_id,
            charge_id=self.doc.get("charge_id"),
            occurred_at=datetime.now(UTC),
        )
        detail = self._intent_detail(refund_id=refund.id, refund_status=str(refund.status), reason_code=reason_code)
        self._append(self._outcome_step(steps.REFUNDED, event, detail, {"refund_id": refund.id}))

    def _existing_refund(self, intent_id: str) -> Refund | None:
        """After an ambiguous or refused refund: the refund the provider holds for the intent, if any."""
        try:
            refunds = [refund for refund in self.gateway.refunds_of(intent_id) if refund.gives_money_back]
        except GatewayAmbiguous:
            return None
        return refunds[-1] if refunds else None

    def _fail(self, *, reason_code: str) -> None:
        self._append(self._failure_step(reason_code))

    def _failure_step(self, reason_code: str) -> Step:
        event = events.rollback_event(
            payment_id=self.payment.payment_id,
            reason_code=reason_code,
            failed_step="charge",
            refunded=False,
            intent_id=self.doc.get("intent_id"),
            charge_id=None,
            occurred_at=datetime.now(UTC),
        )
        logger.info("saga failed: %s", reason_code)
        return self._outcome_step(steps.FAILED, event, {"reason_code": reason_code, "failed_step": "charge"})

    def _completion_step(self, charge_id: str | None) -> Step:
        payment = self.payment
        event = events.completed_event(
            payment_id=payment.payment_id,
            intent_id=self.doc["intent_id"],
            charge_id=charge_id or self.doc["intent_id"],
            amount=payment.amount,
            currency=payment.currency,
            completed_at=datetime.now(UTC),
        )
        return self._outcome_step(steps.COMPLETED, event, {"charge_id": charge_id})

    @staticmethod
    def _outcome_step(name: str, event: dict, detail: dict, fields: dict | None = None) -> Step:
        topic = "completion" if event["event_type"] == events.PAYMENT_COMPLETED else "rollback"
        return Step(
            name,
            {**detail, "event_id": event["event_id"]},
            {**(fields or {}), "outcome": {"topic": topic, "event": event}},
        )

    # -- helpers -------------------------------------------------------------------------------

    def _append(self, *new_steps: Step) -> None:
        self.doc = self.log.append(self.payment.payment_id, self.owner, new_steps, known=self.doc)

    def _intent_detail(self, **detail) -> dict:
        return {
            "intent_id": self.doc.get("intent_id"),
            **{name: value for name, value in detail.items() if value is not None},
        }

    def _attempt(self, operation: str) -> int:
        return int((self.doc.get("key_attempts") or {}).get(operation, 1))

    def _next_key_if_spent(self, operation: str, attempt: int, error: GatewayAmbiguous) -> None:
        """After an ambiguous answer that had no effect: a replayed 5xx means the key is spent (Stripe
        saved the answer), so the next attempt takes the next key; anything else is retried as is."""
        if not error.replayed:
            raise error
        if self._past_idempotency_window():
            raise RetryLater(f"{operation}: key spent and the payment is past the idempotency window")
        logger.warning(
            "%s: the provider replays a saved error under key attempt %s; next attempt %s",
            operation,
            attempt,
            attempt + 1,
        )
        key_attempts = {**(self.doc.get("key_attempts") or {}), operation: attempt + 1}
        self.doc = self.log.update(self.payment.payment_id, self.owner, {"key_attempts": key_attempts}, known=self.doc)

    def _retrieve_after(self, error: GatewayAmbiguous) -> Intent:
        """The intent's state after an ambiguous answer; the original error if it cannot be read either."""
        try:
            return self.gateway.retrieve_intent(self.doc["intent_id"])
        except (GatewayAmbiguous, GatewayRejected):
            raise error from None

    def _past_saga_timeout(self) -> bool:
        return _age_seconds(self.payment) >= self.settings.saga_timeout_seconds

    def _past_idempotency_window(self) -> bool:
        return _age_seconds(self.payment) >= self.settings.payment_gateway_idempotency_window_seconds

    def _publish_outcome(self) -> None:
        doc = self.doc
        if doc.get("outcome_published"):
            return
        if self.fault == "before_publish" and not doc.get("fault_before_publish_done"):
            self.doc = self.log.update(
                self.payment.payment_id, self.owner, {"fault_before_publish_done": True}, known=doc
            )
            raise SimulatedCrash(f"crash after {doc['state']} and before publishing the outcome")
        outcome = doc["outcome"]
        event = outcome["event"]
        topic_name = (
            self.settings.pubsub_completion_topic
            if outcome["topic"] == "completion"
            else self.settings.pubsub_rollback_topic
        )
        publisher = self.clients.publisher
        topic = publisher.topic_path(self.settings.project_id, topic_name)
        correlation_id = doc.get("correlation_id") or self.payment.correlation_id
        attributes = {**events.attributes(event, correlation_id), **tracing.trace_attributes()}
        message_id = publisher.publish(topic, events.encode(event), **attributes).result(
            timeout=PUBLISH_TIMEOUT_SECONDS
        )
        self.log.mark_published(self.payment.payment_id, self.owner, message_id, known=doc)
        logger.info("published %s %s to %s", event["event_type"], event["event_id"], topic_name)

    def _fault_point(self) -> str | None:
        requested = self.payment.simulate_failure
        if requested is None:
            return None
        if not self.settings.fault_injection_enabled:
            logger.warning("metadata.simulate_failure=%s ignored: fault injection is disabled", requested)
            return None
        if requested not in FAULT_POINTS:
            logger.warning("metadata.simulate_failure=%s is not one of %s; ignored", requested, FAULT_POINTS)
            return None
        return requested


def _payment_ref(payment: events.PaymentInitiated) -> PaymentRef:
    return PaymentRef(
        payment_id=payment.payment_id,
        amount=payment.amount,
        currency=payment.currency,
        payment_method=payment.payment_method,
        customer=payment.customer,
    )


def _intent_created(intent: Intent) -> Step:
    logger.info("intent %s created", intent.id)
    return Step(steps.INTENT_CREATED, {"intent_id": intent.id}, {"intent_id": intent.id})


def _age_seconds(payment: events.PaymentInitiated) -> float:
    return (datetime.now(UTC) - payment.created_at).total_seconds()


def _preview(data: bytes, limit: int = 500) -> str:
    return data[:limit].decode("utf-8", errors="replace")


__all__ = ["UPDATE_TIME", "Disposition", "HandlingResult", "PaymentProcessor", "SagaDelivery"]
