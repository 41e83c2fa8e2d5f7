"""Issue 22 (L8): `manage.py purge_expired` deletes what has outlived its purpose, in bounded batches,
and is idempotent; what it keeps is kept on purpose (docs/security.md, "Retention")."""

import io
import json
import time
from datetime import timedelta

from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import TestCase, override_settings
from django.utils import timezone

from core.models import IdempotencyRecord, RateLimitBucket
from core.services import api_key_create
from payments.models import ReconcilerPass


def purge(*args: str) -> dict:
    output = io.StringIO()
    call_command("purge_expired", *args, stdout=output)
    return json.loads(output.getvalue().strip().splitlines()[-1])


class PurgeExpiredTests(TestCase):
    def test_deletes_expired_rows_in_batches_and_keeps_the_rest(self) -> None:
        api_key, _ = api_key_create(name="purge")
        now = timezone.now()
        for index in range(5):
            IdempotencyRecord.objects.create(
                api_key=api_key,
                key=f"old-{index}",
                request_fingerprint="f",
                response_status=201,
                response_body={},
                created_at=now - timedelta(hours=25),
            )
        IdempotencyRecord.objects.create(
            api_key=api_key, key="fresh", request_fingerprint="f", response_status=201, response_body={}
        )
        ReconcilerPass.objects.create(started_at=now - timedelta(days=31), finished_at=now - timedelta(days=31))
        ReconcilerPass.objects.create(started_at=now, finished_at=now)
        hour_ago = int(time.time() - 3600)
        RateLimitBucket.objects.create(
            bucket="ip:read:idle", window_index=hour_ago, hits=3, prev_hits=0, period_seconds=1
        )
        RateLimitBucket.objects.create(
            bucket="ip:read:busy", window_index=int(time.time()), hits=3, prev_hits=0, period_seconds=1
        )
        Session.objects.create(session_key="old", session_data="x", expire_date=now - timedelta(minutes=1))

        with override_settings(PURGE_BATCH_SIZE=2):
            counts = purge()

        self.assertEqual(
            counts, {"idempotency_records": 5, "reconciler_passes": 1, "rate_limit_buckets": 1, "sessions": 1}
        )
        self.assertEqual(list(IdempotencyRecord.objects.values_list("key", flat=True)), ["fresh"])
        self.assertEqual(ReconcilerPass.objects.count(), 1)
        self.assertEqual(list(RateLimitBucket.objects.values_list("bucket", flat=True)), ["ip:read:busy"])
        self.assertEqual(
            purge(), {"idempotency_records": 0, "reconciler_passes": 0, "rate_limit_buckets": 0, "sessions": 0}
        )
