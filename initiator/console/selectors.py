"""Reads for the operator console: the initiator's rows, the Firestore saga log, the gateway's charges."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone
from google.api_core import exceptions as google_exceptions

from accounts.models import Account, Deposit
from core.money import format_minor_units
from payments import clients, invariants, saga_log
from payments.gateway import GatewayUnavailable
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
GATEWAY = "gateway"


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    source: str  # INITIATOR, SAGA_LOG or GATEWAY
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
    saga_steps: list[dict] | None
    saga_error: str | None
    charges: list[dict] | None
    gateway_error: str | None
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


def _read_saga_log(payment: Payment) -> tuple[list[dict] | None, str | None]:
    try:
        log = saga_log.read_saga_log(payment.pk)
    except (google_exceptions.GoogleAPIError, google_exceptions.RetryError) as error:
        return None, f"Firestore could not be read: {type(error).__name__}: {error}"
    return (log or {}).get("steps") or [], None


def _read_charges(payment: Payment) -> tuple[list[dict] | None, str | None]:
    try:
        return clients.gateway().charges_for_reference(str(payment.pk)), None
    except GatewayUnavailable as error:
        return None, f"The gateway could not be asked: {error}"


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


def _gateway_entries(charges: list[dict]) -> list[TimelineEntry]:
    entries = []
    for charge in charges:
        created = charge.get("created")
        if not isinstance(created, int | float):
            continue
        outcome = charge.get("status", "?")
        if charge.get("failure_code"):
            outcome += f" ({charge['failure_code']})"
        refunded = f", refunded {charge.get('amount_refunded')}" if charge.get("amount_refunded") else ""
        entries.append(
            TimelineEntry(
                datetime.fromtimestamp(created, UTC),
                GATEWAY,
                f"charge {charge.get('id')}",
                f"{outcome}, {charge.get('amount')} {str(charge.get('currency', '')).upper()}{refunded}",
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
    }
    problems: dict[str, list[str]] = {}
    if timeline.saga_steps is not None and payment.status in invariants.TERMINAL_STATUSES:
        problems[SAGA_LOG] = invariants.check_saga_log(facts, timeline.saga_steps)
    if timeline.charges is not None:
        problems[GATEWAY] = invariants.check_gateway(facts, invariants.ledger_entry(timeline.charges))
        if timeline.saga_steps is not None:
            problems[GATEWAY] += invariants.check_charge_ids(facts, {}, timeline.saga_steps, timeline.charges)
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
    steps, saga_error = _read_saga_log(payment)
    charges, gateway_error = _read_charges(payment)
    timeline = PaymentTimeline(
        payment=payment,
        account=Account.objects.filter(user_id=payment.user_id).first(),
        outbox=list(payment.outbox_events.order_by("created_at")),
        inbox=list(payment.processed_events.order_by("processed_at")),
        dead_letters=list(DeadLetter.objects.filter(payment_id=payment.pk).order_by("received_at")),
        operator_actions=list(payment.operator_actions.order_by("created_at")),
        saga_steps=steps,
        saga_error=saga_error,
        charges=charges,
        gateway_error=gateway_error,
    )
    entries = _initiator_entries(timeline) + _saga_entries(steps or []) + _gateway_entries(charges or [])
    timeline.entries = _with_gaps(entries, payment.created_at)
    timeline.problems = _problems(timeline)
    return timeline


# --- queues and system ------------------------------------------------------------------------


def needs_attention_queue() -> QuerySet[Payment]:
    """Oldest first: the payments whose holds have waited longest for a person."""
    return Payment.objects.filter(status=PaymentStatus.NEEDS_ATTENTION).select_related("user").order_by("created_at")


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
