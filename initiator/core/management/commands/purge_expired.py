"""Delete what has outlived its purpose, in bounded batches; run it on a schedule (hourly is plenty).

- Idempotency records older than IDEMPOTENCY_KEY_TTL_HOURS (24, Stripe's window): a retry after that is
  a new request.
- Reconciler passes older than RECONCILER_PASS_RETENTION_DAYS (30): the console and the metrics read the
  last few.
- Rate-limit buckets idle for an hour (their windows are seconds to minutes long).
- Expired console sessions.

Payments, holds, deposits, outbox and inbox rows, dead letters, operator actions and the admin log are
kept: they are the money's record (docs/security.md, "Retention"). Prints one JSON line of counts.
"""

import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.management.base import BaseCommand
from django.db.models import F
from django.utils import timezone

from core.models import IdempotencyRecord, RateLimitBucket
from payments.models import ReconcilerPass

logger = logging.getLogger(__name__)
IDLE_BUCKET_SECONDS = 3600


def delete_in_batches(queryset, batch_size: int) -> int:
    """Delete the rows of `queryset` batch_size at a time (each batch its own short statement)."""
    deleted = 0
    while True:
        batch = list(queryset.values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted
        deleted += queryset.model.objects.filter(pk__in=batch).delete()[0]


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def handle(self, *args, **options) -> None:
        now, size = timezone.now(), settings.PURGE_BATCH_SIZE
        idle_since = time.time() - IDLE_BUCKET_SECONDS
        counts = {
            "idempotency_records": delete_in_batches(
                IdempotencyRecord.objects.filter(
                    created_at__lt=now - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
                ),
                size,
            ),
            "reconciler_passes": delete_in_batches(
                ReconcilerPass.objects.filter(
                    finished_at__lt=now - timedelta(days=settings.RECONCILER_PASS_RETENTION_DAYS)
                ),
                size,
            ),
            "rate_limit_buckets": delete_in_batches(
                RateLimitBucket.objects.alias(window_start=F("window_index") * F("period_seconds")).filter(
                    window_start__lt=idle_since
                ),
                size,
            ),
            "sessions": delete_in_batches(Session.objects.filter(expire_date__lt=now), size),
        }
        logger.info("purge_expired: %s", counts, extra={"purged": counts})
        self.stdout.write(json.dumps(counts))
