from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class User(models.Model):
    """A BinPay customer (not a Django admin login)."""

    email = models.EmailField()
    name = models.CharField(max_length=200)
    # The payment provider's objects the user pays with (Stripe: pm_..., cus_...): the default payment
    # method of their payments, and the customer it belongs to, if any. BinPay's own account below
    # stays the limit on what the user may spend (docs/architecture.md).
    default_payment_method = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    provider_customer = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


class Account(models.Model):
    """The user's money in one currency, in integer minor units. held = sum of PENDING payments."""

    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="account")
    currency = models.CharField(max_length=3)
    balance = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(held__gte=0), name="account_held_not_negative"),
            # available = balance - held never goes negative, even if application code is wrong.
            models.CheckConstraint(condition=Q(balance__gte=F("held")), name="account_available_not_negative"),
        ]

    def __str__(self) -> str:
        return f"account of user {self.user_id} ({self.currency})"

    @property
    def available(self) -> int:
        return self.balance - self.held


class Deposit(models.Model):
    """A top-up of an account, with the API key that made it (none: an operator command such as seed_demo)."""

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="deposits")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    created_by = models.ForeignKey(
        "core.ApiKey", null=True, blank=True, on_delete=models.PROTECT, related_name="deposits", editable=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="deposit_amount_positive")]

    def __str__(self) -> str:
        return f"deposit {self.pk} of {self.amount} {self.currency} to user {self.user_id}"
