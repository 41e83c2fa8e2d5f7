"""Reads for the operator console: the initiator's rows, the Firestore saga log, the provider's intents."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone
from google.api_core import exceptions as google_exceptions

from accounts.models import Account, Deposit
from binpay_common import invariants, steps
from binpay_common.gateway import GatewayError, Intent, Refund
from core.money import format_minor_units
from payments import clients, saga_log
from payments.models import (
    DeadLetter,
    OperatorAction,
    OutboxEvent,
    Payment,
    PaymentStatus,
    ProcessedEvent,
    ReconcilerPass,
)

SETTLED_STATUSES = (PaymentStatus.COMPLETED, PaymentStatus.ROLLED_BACK)
# How many recent rows the system page's lag figures look at.
RECENT_ROWS = 200
RECENT_PASSES = 10


@dataclass(frozen=True)
class PaymentFilter:
    status: str | None = None
    user_id: int | None = None
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    currency: str | None = None
    amount_min: int | None = None
    amount_max: int | None = None


def payment_search(*, criteria: PaymentFilter, now: datetime | None = None) -> QuerySet[Payment]:
    now = now or timezone.now()
    payments = Payment.objects.select_related("user").order_by("-created_at", "-id")
    if criteria.status:
        payments = payments.filter(status=criteria.status)
    if criteria.user_id is not None:
        payments = payments.filter(user_id=criteria.user_id)
    if criteria.older_than is not None:
        payments = payments.filter(created_at__lte=now - criteria.older_than)
    if criteria.newer_than is not None:
        payments = payments.filter(created_at__gte=now - criteria.newer_than)
    if criteria.currency:
        payments = payments.filter(currency=criteria.currency)
    if criteria.amount_min is not None:
        payments = payments.filter(amount__gte=criteria.amount_min)
    if criteria.amount_max is not None:
        payments = payments.filter(amount__lte=criteria.amount_max)
    return payments


def status_counts() -> dict[str, int]:
    counts = dict.fromkeys(PaymentStatus.values, 0)
    for row in Payment.objects.values("status").annotate(n=Count("pk")).order_by():
        counts[row["status"]] = row["n"]
    return counts


@dataclass(frozen=True)
class HourlyRates:
    initiated: int
    completed: int
    rolled_back: int
    needs_attention: int

    @property
    def settled(self) -> int:
        return self.completed + self.rolled_back

    @property
    def completion_ratio(self) -> float | None:
        return self.completed / self.settled if self.settled else None


def rates_last_hour(*, now: datetime | None = None) -> HourlyRates:
    """Payments created in the last hour, and those that reached each final status in it (by updated_at)."""
    since = (now or timezone.now()) - timedelta(hours=1)
    reached = dict(
        Payment.objects.filter(updated_at__gte=since)
        .exclude(status=PaymentStatus.PENDING)
        .values("status")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("status", "n")
    )
    return HourlyRates(
        initiated=Payment.objects.filter(created_at__gte=since).count(),
        completed=reached.get(PaymentStatus.COMPLETED, 0),
        rolled_back=reached.get(PaymentStatus.ROLLED_BACK, 0),
        needs_attention=reached.get(PaymentStatus.NEEDS_ATTENTION, 0),
    )


# --- one payment ------------------------------------------------------------------------------

INITIATOR = "initiator"
SAGA_LOG = "saga_log"
PROVIDER = "provider"


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    source: str  # INITIATOR, SAGA_LOG or PROVIDER
    title: str
    detail: str = ""
    service: str = ""
    since_previous: timedelta | None = None  # within the same source
    since_start: timedelta | None = None


@dataclass
class PaymentTimeline:
    payment: Payment
    account: Account | None
    outbox: list[OutboxEvent]
    inbox: list[ProcessedEvent]
    dead_letters: list[DeadLetter]
    operator_actions: list[OperatorAction]
    saga_document: dict | None
    saga_steps: list[dict] | None
    saga_error: str | None
    intents: list[Intent] | None
    refunds: dict[str, list[Refund]] | None
    provider_error: str | None
    entries: list[TimelineEntry] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def problem_count(self) -> int:
        return sum(len(found) for found in self.problems.values())


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def _detail_text(detail: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(detail.items()) if value not in (None, ""))


def _read_saga_log(payment: Payment) -> tuple[dict | None, list[dict] | None, str | None]:
    try:
        found = clients.saga_log().read_with_steps(str(payment.pk))
    except (google_exceptions.GoogleAPIError, google_exceptions.RetryError) as error:
        return None, None, f"Firestore could not be read: {type(error).__name__}: {error}"
    document, steps_read = found or ({}, [])
    return document, [saga_log.plain(step) for step in steps_read], None


def named_intents(document: dict, steps_read: list[dict]) -> list[str]:
    """The intents the saga log names: the payment's own, then any a step is about."""
    named = [document["intent_id"]] if document.get("intent_id") else []
    for step in steps_read:
        intent_id = (step.get("detail") or {}).get("intent_id")
        if intent_id and intent_id not in named:
            named.append(intent_id)
    return named


def _read_provider(intent_ids: list[str]) -> tuple[list[Intent] | None, dict | None, str | None]:
    """The named intents and their refunds, read by id (strongly consistent; never a search)."""
    gateway = clients.gateway()
    try:
        intents = [gateway.retrieve_intent(intent_id) for intent_id in intent_ids]
        return intents, {intent.id: gateway.refunds_of(intent.id) for intent in intents}, None
    except GatewayError as error:
        return None, None, f"The provider could not be asked: {error}"


def _initiator_entries(timeline: PaymentTimeline) -> list[TimelineEntry]:
    payment = timeline.payment
    entries = [
        TimelineEntry(
            payment.created_at,
            INITIATOR,
            "payment created, amount held",
            f"{format_minor_units(payment.amount, payment.currency)}, user {payment.user_id}",
        )
    ]
    for event in timeline.outbox:
        entries.append(TimelineEntry(event.created_at, INITIATOR, f"outbox row {event.event_type}", str(event.pk)))
        if event.published_at:
            entries.append(
                TimelineEntry(
                    event.published_at,
                    INITIATOR,
                    f"{event.event_type} published",
                    f"after {event.publish_attempts} attempt(s)",
                )
            )
    for event in timeline.inbox:
        entries.append(TimelineEntry(event.processed_at, INITIATOR, f"{event.event_type} applied", str(event.pk)))
    for letter in timeline.dead_letters:
        entries.append(
            TimelineEntry(
                letter.received_at,
                INITIATOR,
                "dead letter received",
                f"{letter.attributes.get('event_type', '?')} from {letter.subscription}, "
                f"attempt {letter.delivery_attempt}",
            )
        )
    for action in timeline.operator_actions:
        entries.append(
            TimelineEntry(
                action.created_at, INITIATOR, f"{action.action} by {action.actor}", f"reason: {action.reason}"
            )
        )
    if payment.status != PaymentStatus.PENDING:
        entries.append(
            TimelineEntry(
                payment.updated_at,
                INITIATOR,
                f"status {payment.status}",
                f"reason {payment.failure_reason}" if payment.failure_reason else "",
            )
        )
    return entries


def _saga_entries(steps: list[dict]) -> list[TimelineEntry]:
    entries = []
    for step in steps:
        at = _parse_time(step.get("at"))
        if at is None:
            continue
        entries.append(
            TimelineEntry(
                at,
                SAGA_LOG,
                f"{step.get('seq')}. {step.get('step')}",
                _detail_text(step.get("detail") or {}),
                service=step.get("service") or "",
            )
        )
    return entries


def _provider_entries(intents: list[Intent], refunds: dict[str, list[Refund]]) -> list[TimelineEntry]:
    entries = []
    for intent in intents:
        outcome = str(intent.status)
        if intent.decline_code:
            outcome += f" (last decline: {intent.decline_code})"
        entries.append(
            TimelineEntry(
                datetime.fromtimestamp(intent.created, UTC),
                PROVIDER,
                f"intent {intent.id}",
                f"{outcome}, {format_minor_units(intent.amount, intent.currency)}, charge {intent.charge_id or '-'}",
            )
        )
        for refund in refunds.get(intent.id, ()):
            failure = f" ({refund.failure_reason})" if refund.failure_reason else ""
            entries.append(
                TimelineEntry(
                    datetime.fromtimestamp(refund.created, UTC),
                    PROVIDER,
                    f"refund {refund.id}",
                    f"{refund.status}{failure}, {refund.amount} of intent {intent.id}",
                )
            )
    return entries


def _with_gaps(entries: list[TimelineEntry], start: datetime) -> list[TimelineEntry]:
    """Sorted by time; each entry knows the time since the previous entry of its source and since the POST."""
    ordered = sorted(entries, key=lambda entry: entry.at)
    previous: dict[str, datetime] = {}
    result = []
    for entry in ordered:
        gap = entry.at - previous[entry.source] if entry.source in previous else None
        previous[entry.source] = entry.at
        result.append(
            TimelineEntry(
                entry.at,
                entry.source,
                entry.title,
                entry.detail,
                entry.service,
                since_previous=gap,
                since_start=entry.at - start,
            )
        )
    return result


def _problems(timeline: PaymentTimeline) -> dict[str, list[str]]:
    payment = timeline.payment
    facts = {
        "id": str(payment.pk),
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "charge_id": payment.charge_id,
        "refund_failed": payment.refund_failed_at is not None,
    }
    problems: dict[str, list[str]] = {}
    document = timeline.saga_document or {}
    if timeline.saga_steps is not None and payment.status in invariants.TERMINAL_STATUSES:
        problems[SAGA_LOG] = steps.check_saga_log(facts, document, timeline.saga_steps)
    if timeline.intents is not None:
        problems[PROVIDER] = invariants.check_provider(
            facts, document.get("intent_id"), timeline.intents, timeline.refunds or {}
        )
        problems[PROVIDER] += invariants.check_charge_ids(facts, timeline.saga_steps or [], timeline.intents)
    if timeline.account is not None:
        account = timeline.account
        problems[INITIATOR] = invariants.check_account(
            {
                "id": payment.user_id,
                "account": {"balance": account.balance, "held": account.held, "available": account.available},
            },
            sum(Deposit.objects.filter(user_id=payment.user_id).values_list("amount", flat=True)),
            Payment.objects.filter(user_id=payment.user_id).values("status", "amount"),
        )
    return {source: found for source, found in problems.items() if found}


def payment_timeline(*, payment: Payment) -> PaymentTimeline:
    document, steps_read, saga_error = _read_saga_log(payment)
    intents, refunds, provider_error = (
        _read_provider(named_intents(document, steps_read)) if document is not None else (None, None, None)
    )
    timeline = PaymentTimeline(
        payment=payment,
        account=Account.objects.filter(user_id=payment.user_id).first(),
        outbox=list(payment.outbox_events.order_by("created_at")),
        inbox=list(payment.processed_events.order_by("processed_at")),
        dead_letters=list(DeadLetter.objects.filter(payment_id=payment.pk).order_by("received_at")),
        operator_actions=list(payment.operator_actions.order_by("created_at")),
        saga_document=document,
        saga_steps=steps_read,
        saga_error=saga_error,
        intents=intents,
        refunds=refunds,
        provider_error=provider_error,
    )
    entries = (
        _initiator_entries(timeline) + _saga_entries(steps_read or []) + _provider_entries(intents or [], refunds or {})
    )
    timeline.entries = _with_gaps(entries, payment.created_at)
    timeline.problems = _problems(timeline)
    return timeline


def needs_attention_queue() -> QuerySet[Payment]:
    """Oldest first: the payments whose holds have waited longest for a person."""
    return Payment.objects.filter(status=PaymentStatus.NEEDS_ATTENTION).select_related("user").order_by("created_at")


def refund_failed_list() -> QuerySet[Payment]:
    """Settled payments whose refund failed at the provider: the customer's money is not back."""
    return Payment.objects.filter(refund_failed_at__isnull=False).select_related("user").order_by("refund_failed_at")


def dead_letter_list() -> QuerySet[DeadLetter]:
    return DeadLetter.objects.order_by("-received_at", "-id")


def payments_by_id(payment_ids) -> dict:
    return {payment.pk: payment for payment in Payment.objects.filter(pk__in=[p for p in payment_ids if p])}


@dataclass(frozen=True)
class Lag:
    """Figures over recent rows: count, median and maximum in seconds (None when nothing to measure)."""

    count: int
    median_seconds: float | None
    max_seconds: float | None


def _lag(durations: list[timedelta]) -> Lag:
    seconds = [duration.total_seconds() for duration in durations]
    if not seconds:
        return Lag(0, None, None)
    return Lag(len(seconds), statistics.median(seconds), max(seconds))


@dataclass(frozen=True)
class PassSummary:
    started_at: datetime
    duration: timedelta
    counts: dict[str, int]


@dataclass(frozen=True)
class SystemStatus:
    unpublished: int
    oldest_unpublished_age: timedelta | None
    publish_lag: Lag  # outbox row written → published, recent rows
    outcome_lag: Lag  # payment.initiated published → outcome applied, recent outcomes
    oldest_pending_age: timedelta | None
    dead_letters_last_hour: int
    reconciler_passes: list[PassSummary]  # newest first


def system_status(*, now: datetime | None = None) -> SystemStatus:
    now = now or timezone.now()
    unpublished = OutboxEvent.objects.filter(published_at__isnull=True)
    oldest_unpublished = unpublished.order_by("created_at").values_list("created_at", flat=True).first()
    published = OutboxEvent.objects.filter(published_at__isnull=False).order_by("-published_at")[:RECENT_ROWS]
    outcomes = ProcessedEvent.objects.order_by("-processed_at")[:RECENT_ROWS]
    initiated_at = dict(
        OutboxEvent.objects.filter(
            payment_id__in=[event.payment_id for event in outcomes], published_at__isnull=False
        ).values_list("payment_id", "published_at")
    )
    oldest_pending = (
        Payment.objects.filter(status=PaymentStatus.PENDING)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return SystemStatus(
        unpublished=unpublished.count(),
        oldest_unpublished_age=now - oldest_unpublished if oldest_unpublished else None,
        publish_lag=_lag([event.published_at - event.created_at for event in published]),
        outcome_lag=_lag(
            [
                event.processed_at - initiated_at[event.payment_id]
                for event in outcomes
                if event.payment_id in initiated_at
            ]
        ),
        oldest_pending_age=now - oldest_pending if oldest_pending else None,
        dead_letters_last_hour=DeadLetter.objects.filter(received_at__gte=now - timedelta(hours=1)).count(),
        reconciler_passes=[
            PassSummary(row.started_at, row.finished_at - row.started_at, row.counts)
            for row in ReconcilerPass.objects.order_by("-started_at", "-id")[:RECENT_PASSES]
        ],
    )
