import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import User


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    COMPLETED = "completed", "Completed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    # The outcome could not be settled automatically (set by the reconciler / dead-letter handling).
    NEEDS_ATTENTION = "needs_attention", "Needs attention"


# A payment in these states still holds its amount on the account.
HOLDING_STATUSES = (PaymentStatus.PENDING, PaymentStatus.NEEDS_ATTENTION)


class Payment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="payments")
    amount = models.BigIntegerField(help_text="Integer minor units.")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    # NULL = "not known (yet)"; the API shows it as null, as the event contract does.
    failure_reason = models.CharField(max_length=40, null=True, blank=True)  # noqa: DJ001
    charge_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    # The provider's payment method and customer this payment is charged to (the event carries them).
    payment_method = models.CharField(max_length=255)
    provider_customer = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    metadata = models.JSONField(default=dict, blank=True)
    correlation_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # The reconciler's retries of a payment it could not settle (docs/protocol.md §4 rule 8): how many
    # so far, and when the next one is due (NULL: due as soon as the payment qualifies).
    reconcile_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The sweeper's next look at this settled payment's provider objects (NULL: not due; a webhook or a
    # rollback makes it due now).
    sweep_due_at = models.DateTimeField(null=True, blank=True)
    # A refund of this payment's charge failed at the provider: surfaced to operators until cleared.
    refund_failed_at = models.DateTimeField(null=True, blank=True)
    # The newest initiator claim registered on the payment (its saga-log claim_seq): a settlement
    # commits only under this claim, so one whose lease lapsed meanwhile cannot (docs/protocol.md §5).
    settling_claim = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="payment_user_newest_first"),
            models.Index(fields=["sweep_due_at"], name="payment_sweep_due", condition=Q(sweep_due_at__isnull=False)),
        ]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive")]

    def __str__(self) -> str:
        return f"payment {self.pk} ({self.status})"


class OutboxEvent(models.Model):
    """An event written in the same transaction as the state it announces; published after commit."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, help_text="The event_id.")
    event_type = models.CharField(max_length=40)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="outbox_events")
    topic = models.CharField(max_length=255)
    body = models.JSONField()
    attributes = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    published_at = models.DateTimeField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["created_at"], name="outbox_unpublished", condition=Q(published_at__isnull=True))
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.pk}"


class OutboxStep(models.Model):
    """A saga-log step describing a database change, written in the same transaction as the change and
    delivered to Firestore until it has it (docs/protocol.md §4 rule 7)."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="outbox_steps")
    step = models.CharField(max_length=40)
    detail = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivery_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["created_at"], name="outbox_step_pending", condition=Q(delivered_at__isnull=True))
        ]

    def __str__(self) -> str:
        return f"{self.step} of {self.payment_id}"


class ProviderEvent(models.Model):
    """Inbox of the payment provider's webhooks: each event id acted on once (a poke, never proof)."""

    event_id = models.CharField(max_length=255, primary_key=True)
    event_type = models.CharField(max_length=100)
    payment = models.ForeignKey(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="provider_events"
    )
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class ProcessedEvent(models.Model):
    """Inbox: an outcome event whose effects are committed (written in the same transaction)."""

    event_id = models.UUIDField(primary_key=True)
    event_type = models.CharField(max_length=40)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="processed_events")
    processed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class DeadLetter(models.Model):
    """A message that kept failing on some subscription and was forwarded to the dead-letter topic."""

    subscription = models.CharField(max_length=255, help_text="The subscription it was received on.")
    message_id = models.CharField(max_length=100, unique=True)
    attributes = models.JSONField(default=dict)
    data = models.BinaryField()
    delivery_attempt = models.PositiveIntegerField(null=True, blank=True)
    # Not a foreign key: a dead letter may name a payment this database does not know.
    payment_id = models.UUIDField(null=True, blank=True, db_index=True)
    received_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"dead letter {self.message_id}"

    @property
    def data_text(self) -> str:
        return bytes(self.data).decode("utf-8", errors="replace")


class OperatorActionState(models.TextChoices):
    # Recorded (who and why) before any money moves; finished in the settlement's own transaction.
    STARTED = "started", "Started"
    DONE = "done", "Done"
    REFUSED = "refused", "Refused"


class OperatorAction(models.Model):
    """A person settles a payment by hand (`manage.py settle_payment`, the admin, the console): who, what and why."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="operator_actions")
    action = models.CharField(max_length=40)
    actor = models.CharField(max_length=150)
    reason = models.TextField()
    state = models.CharField(max_length=10, choices=OperatorActionState.choices, default=OperatorActionState.STARTED)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} of {self.payment_id} by {self.actor}"


class ReconcilerPass(models.Model):
    """One pass of the reconciler and what it did (operators read the last ones)."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    counts = models.JSONField(default=dict)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"reconcile pass at {self.started_at:%Y-%m-%d %H:%M:%S}"
