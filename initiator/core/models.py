import hashlib
import secrets

from django.db import models
from django.utils import timezone

API_KEY_PREFIX = "bpk_"
# The largest value of a bigint column (ids, balances): input beyond it is refused, never sent to the database.
BIGINT_MAX = 2**63 - 1

SCOPE_PAYMENTS_WRITE = "payments:write"
SCOPE_PAYMENTS_READ = "payments:read"
SCOPE_USERS_WRITE = "users:write"
SCOPE_USERS_READ = "users:read"
SCOPE_DEPOSITS_WRITE = "deposits:write"
# POST /internal/reconcile where no scheduler token is configured: an operator's or a CronJob's key.
SCOPE_OPS_RECONCILE = "ops:reconcile"
SCOPES = (
    SCOPE_PAYMENTS_WRITE,
    SCOPE_PAYMENTS_READ,
    SCOPE_USERS_WRITE,
    SCOPE_USERS_READ,
    SCOPE_DEPOSITS_WRITE,
    SCOPE_OPS_RECONCILE,
)
# What a key bound to one user (a client app's key for its signed-in user) may ever hold: it never
# creates users and never mints money.
USER_BOUND_SCOPES = (SCOPE_PAYMENTS_WRITE, SCOPE_PAYMENTS_READ, SCOPE_USERS_READ)


def hash_api_key(raw_key: str) -> str:
    # The keys are 256-bit random tokens, so a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKey(models.Model):
    """A client credential. Only the hash is stored; the key itself is shown once, at creation.

    A secret key (no user) acts for the platform within its scopes; a user-bound key acts for its
    user only: other users' objects do not exist for it.
    """

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list, help_text=f"Any of: {', '.join(SCOPES)}.")
    user = models.ForeignKey(
        "accounts.User",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="api_keys",
        help_text="Set for a user-bound key: it may act on this user only.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Updated at most once per API_KEY_LAST_USED_INTERVAL_SECONDS."
    )

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    # DRF's IsAuthenticated asks the authenticated principal this.
    @property
    def is_authenticated(self) -> bool:
        return True

    def is_expired(self, now) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class IdempotencyRecord(models.Model):
    """The stored response of a POST made with an Idempotency-Key, scoped to the API key that sent it."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="unique_idempotency_key_per_api_key")]

    def __str__(self) -> str:
        return f"{self.key} → {self.response_status}"


class RateLimitBucket(models.Model):
    """One budget's count (core/ratelimit.py): hits in the current window and in the one before it.

    One row per API key, client address or login name and budget, written by one UPSERT per request;
    `purge_expired` deletes the rows of idle budgets.
    """

    bucket = models.CharField(max_length=120, primary_key=True)
    window_index = models.BigIntegerField(help_text="floor(time / period) of the current window.")
    hits = models.PositiveIntegerField()
    prev_hits = models.PositiveIntegerField()
    period_seconds = models.PositiveIntegerField()

    def __str__(self) -> str:
        return self.bucket
