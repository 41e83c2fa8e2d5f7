"""The processor's half of the payment saga: one handler for push and pull deliveries.

For a payment.initiated message it walks the saga log forward from wherever the document stands:

    RECEIVED -> CHARGED         -> COMPLETED                      -> publish payment.completed
             -> CHARGED         -> REFUNDED (failure after charge) -> publish payment.rollback
             -> CHARGE_DECLINED -> FAILED                         -> publish payment.rollback
             -> CHARGE_CANCELED -> FAILED (the gateway canceled the charge key: fault before the
                                           charge, gateway unusable past the saga timeout)

A payment is rolled back only on a definitive answer: a decline, or a successful cancel of its
charge key at the gateway. A timeout, a 5xx or a key still in use says nothing about whether
money moved: the delivery keeps its lease (so the reconciler cannot fence the payment while the
first request may still be running at the gateway) and Pub/Sub redelivers.

Each step is committed to Firestore before the next side effect, so a redelivery after a crash
resumes instead of repeating: the gateway sees the same idempotency key, a written outcome is only
(re-)published, and a published one is only acknowledged.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from binpay_common.logs import log_context
from google.api_core import exceptions as google_exceptions

from . import events, observability
from .clients import Clients
from .config import PUBLISH_TIMEOUT_SECONDS, Settings
from .gateway import ChargeCanceled, ChargeDeclined, GatewayAmbiguous, GatewayClient, GatewayRejected
from .saga_log import (
    CHARGE_CANCELED,
    CHARGE_DECLINED,
    CHARGED,
    COMPLETED,
    FAILED,
    PROCESSOR_OUTCOMES,
    REFUNDED,
    ClaimStatus,
    LeaseLost,
    SagaLog,
)

logger = logging.getLogger(__name__)

FAULT_POINTS = ("before_charge", "after_charge", "before_publish")


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
    """The gateway holds a charge for this payment that does not match it: the reconciler surfaces it."""


_TRANSIENT = (LeaseLost, RetryLater, google_exceptions.GoogleAPIError, TimeoutError)


class PaymentProcessor:
    """The handler both delivery modes call; built by bootstrap.build_processor."""

    def __init__(self, settings: Settings, clients: Clients, saga_log: SagaLog, gateway: GatewayClient) -> None:
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

    @observability.consumes_message
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
            claim = saga_log.claim(payment, owner)
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
            logger.warning("payment already settled by the initiator (state %s); ignored", claim.doc.get("state"))
            return HandlingResult(Disposition.DONE, "settled by initiator")
        if claim.status is ClaimStatus.BUSY:
            expires = claim.doc.get("lease_expires_at")
            logger.info("another delivery holds the lease until %s; retry later", expires)
            retry_after = max(0.0, (expires - datetime.now(UTC)).total_seconds()) if expires else None
            return HandlingResult(Disposition.BUSY, "lease held by another delivery", retry_after)
        try:
            state = SagaDelivery(self, payment, saga_log, owner).run(claim.doc)
            return HandlingResult(Disposition.DONE, state)
        except GatewayAmbiguous as error:
            # Keep the lease: the first request may still be running at the gateway, and the
            # reconciler must not fence and cancel under it until the lease has lapsed.
            logger.warning("gateway answer ambiguous, will retry (lease kept): %s", error, extra=extra)
            return HandlingResult(Disposition.RETRY, f"GatewayAmbiguous: {error}")
        except ChargeMismatch as error:
            logger.error("%s; left pending for the reconciler, which surfaces it as needs_attention", error)
            self._release(saga_log, payment.payment_id, owner)
            return HandlingResult(Disposition.DONE, "charge_mismatch")
        except SimulatedCrash as crash:
            logger.warning("injected crash: %s", crash, extra=extra)
            self._release(saga_log, payment.payment_id, owner)
            return HandlingResult(Disposition.CRASH, str(crash))
        except _TRANSIENT as error:
            logger.warning("transient failure, will retry: %s: %s", type(error).__name__, error, extra=extra)
            self._release(saga_log, payment.payment_id, owner)
            return HandlingResult(Disposition.RETRY, f"{type(error).__name__}: {error}")
        except Exception as error:
            # A bug or an unforeseen answer: retrying is safe (every step is idempotent) and the
            # dead-letter policy ends the loop; acknowledging could lose a payment.
            logger.exception("unexpected error, will retry", extra=extra)
            self._release(saga_log, payment.payment_id, owner)
            return HandlingResult(Disposition.RETRY, f"{type(error).__name__}: {error}")

    @staticmethod
    def _release(saga_log: SagaLog, payment_id: str, owner: str) -> None:
        try:
            saga_log.release(payment_id, owner)
        except google_exceptions.GoogleAPIError as error:
            logger.warning("could not release the lease (it expires on its own): %s", error)


class SagaDelivery:
    """One delivery's walk through the saga, holding the payment's lease."""

    def __init__(self, processor: PaymentProcessor, payment: events.PaymentInitiated, log: SagaLog, owner: str):
        settings = processor.settings
        self.settings = settings
        self.clients = processor.clients
        self.payment = payment
        self.log = log
        self.owner = owner
        self.gateway = processor.gateway
        self.fault = self._fault_point()
        # The saga-log document as this delivery last got it (its next write's precondition).
        self.doc: dict = {}

    def run(self, doc: dict) -> str:
        while True:
            self.doc = doc
            steps = set(doc.get("steps_done") or [])
            if steps & PROCESSOR_OUTCOMES:
                self._publish_outcome(doc)
                return doc["state"]
            if CHARGED in steps:
                doc = self._refund(doc) if self.fault == "after_charge" else self._complete(doc)
            elif CHARGE_DECLINED in steps:
                doc = self._fail(reason_code=doc["decline_code"], failed_step="charge")
            elif CHARGE_CANCELED in steps:
                doc = self._fail(reason_code=doc["cancel_reason"], failed_step="charge")
            elif self.fault == "before_charge":
                logger.warning("fault injection: failing before the charge")
                doc = self._cancel(reason_code="processor_failure")
            else:
                doc = self._charge()

    # -- steps ---------------------------------------------------------------------------------

    def _charge(self) -> dict:
        payment = self.payment
        try:
            result = self.gateway.charge(
                payment_id=payment.payment_id, amount=payment.amount, currency=payment.currency
            )
        except GatewayAmbiguous as error:
            age = (datetime.now(UTC) - payment.created_at).total_seconds()
            if age < self.settings.saga_timeout_seconds:
                raise
            logger.warning("gateway still unusable %.0f s after initiation (%s); canceling the charge", age, error)
            return self._cancel(reason_code="gateway_unavailable")
        except GatewayRejected as error:
            logger.error("gateway rejected the charge request: %s", error)
            return self._cancel(reason_code="processor_failure")
        if isinstance(result, ChargeDeclined):
            return self._declined(result)
        if isinstance(result, ChargeCanceled):
            # An earlier delivery canceled the key and died before logging it.
            return self._canceled(reason_code="gateway_unavailable")
        return self._charged(result.charge_id)

    def _charged(self, charge_id: str) -> dict:
        logger.info("charge %s succeeded", charge_id)
        steps = [(CHARGED, {"charge_id": charge_id}, {"charge_id": charge_id})]
        if self.fault != "after_charge":
            # Nothing happens between CHARGED and COMPLETED: one write logs both, in order.
            steps.append(self._completion_step(charge_id))
        return self._append(steps)

    def _declined(self, result: ChargeDeclined) -> dict:
        logger.info("charge declined: %s", result.reason_code)
        return self._append(
            [
                (
                    CHARGE_DECLINED,
                    {"reason_code": result.reason_code, "charge_id": result.charge_id},
                    {"decline_code": result.reason_code},
                )
            ]
        )

    def _cancel(self, *, reason_code: str) -> dict:
        """Roll back only if the gateway cancels the charge key; a charge it already made goes on."""
        cancellation = self.gateway.cancel(payment_id=self.payment.payment_id)
        if cancellation.canceled:
            return self._canceled(reason_code=reason_code)
        charge = cancellation.charge
        if charge.get("status") == "failed":
            # The decline was lost on the way back; the gateway still knows it.
            return self._declined(ChargeDeclined(charge.get("failure_code") or "card_declined", charge.get("id")))
        payment = self.payment
        if (charge.get("amount"), charge.get("currency"), charge.get("refunded")) != (
            payment.amount,
            payment.currency,
            False,
        ):
            raise ChargeMismatch(
                f"charge {charge.get('id')} is {charge.get('amount')} {charge.get('currency')} "
                f"(refunded: {charge.get('refunded')}), the payment {payment.amount} {payment.currency}"
            )
        logger.warning("the gateway has charge %s: continuing as charged", charge["id"])
        return self._charged(charge["id"])

    def _canceled(self, *, reason_code: str) -> dict:
        logger.info("charge canceled at the gateway: no charge can land (%s)", reason_code)
        return self._append([(CHARGE_CANCELED, {"reason_code": reason_code}, {"cancel_reason": reason_code})])

    def _fail(self, *, reason_code: str, failed_step: str) -> dict:
        event = events.rollback_event(
            self.payment.payment_id,
            reason_code=reason_code,
            failed_step=failed_step,
            refunded=False,
            charge_id=None,
            occurred_at=datetime.now(UTC),
        )
        logger.info("saga failed: %s", reason_code)
        return self._append(
            [self._outcome_step(FAILED, event, {"reason_code": reason_code, "failed_step": failed_step})]
        )

    def _complete(self, doc: dict) -> dict:
        return self._append([self._completion_step(doc["charge_id"])])

    def _completion_step(self, charge_id: str) -> tuple[str, dict, dict]:
        payment = self.payment
        event = events.completed_event(
            payment.payment_id, charge_id, payment.amount, payment.currency, datetime.now(UTC)
        )
        return self._outcome_step(COMPLETED, event, {"charge_id": charge_id})

    def _refund(self, doc: dict) -> dict:
        charge_id = doc["charge_id"]
        logger.warning("fault injection: failing after charge %s; refunding it", charge_id)
        try:
            refund_id = self.gateway.refund(payment_id=self.payment.payment_id, charge_id=charge_id)
        except GatewayRejected as error:
            logger.error("gateway refused the refund of %s: %s", charge_id, error)
            raise RetryLater(f"refund of {charge_id} refused: {error}") from error
        event = events.rollback_event(
            self.payment.payment_id,
            reason_code="processor_failure",
            failed_step="post_charge",
            refunded=True,
            charge_id=charge_id,
            occurred_at=datetime.now(UTC),
        )
        detail = {"refund_id": refund_id, "charge_id": charge_id, "reason_code": "processor_failure"}
        return self._append([self._outcome_step(REFUNDED, event, detail, {"refund_id": refund_id})])

    @staticmethod
    def _outcome_step(step: str, event: dict, detail: dict, fields: dict | None = None) -> tuple[str, dict, dict]:
        topic = "completion" if event["event_type"] == events.PAYMENT_COMPLETED else "rollback"
        return (
            step,
            {**detail, "event_id": event["event_id"]},
            {**(fields or {}), "outcome": {"topic": topic, "event": event}},
        )

    def _append(self, steps: list[tuple[str, dict, dict]]) -> dict:
        self.doc = self.log.append_steps(self.payment.payment_id, self.owner, steps, known=self.doc)
        return self.doc

    def _publish_outcome(self, doc: dict) -> None:
        if doc.get("outcome_published"):
            return
        if self.fault == "before_publish" and not doc.get("fault_before_publish_done"):
            self.log.update(self.payment.payment_id, self.owner, {"fault_before_publish_done": True})
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
        data = json.dumps(event, separators=(",", ":")).encode("utf-8")
        attributes = events.event_attributes(event, doc.get("correlation_id") or self.payment.correlation_id)
        message_id = publisher.publish(topic, data, **attributes).result(timeout=PUBLISH_TIMEOUT_SECONDS)
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


def _preview(data: bytes, limit: int = 500) -> str:
    return data[:limit].decode("utf-8", errors="replace")
