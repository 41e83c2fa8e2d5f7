"""Settle payments stuck in pending: one pass (job / CronJob) or `--loop` until SIGTERM / SIGINT."""

import json
import logging

from django.conf import settings
from django.core.management.base import BaseCommand

from payments.management.loop import run_until_stopped
from payments.reconciler import Result, reconcile

logger = logging.getLogger("payments.reconciler")


class Command(BaseCommand):
    help = (
        "Settle payments pending longer than PAYMENT_TIMEOUT_SECONDS (claim, close the intent, capture or release), "
        "publish stalled ones again, sweep settled ones."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--loop", action="store_true", help="Run a pass every --interval seconds until SIGTERM.")
        parser.add_argument(
            "--interval", type=float, default=None, help="Seconds between passes (default RECONCILE_INTERVAL_SECONDS)."
        )
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            help="Seconds a payment must have been pending (default PAYMENT_TIMEOUT_SECONDS).",
        )

    def handle(self, *args, loop: bool, interval: float | None, older_than: int | None, **options) -> None:
        older_than = settings.PAYMENT_TIMEOUT_SECONDS if older_than is None else older_than
        interval = settings.RECONCILE_INTERVAL_SECONDS if interval is None else interval
        if not loop:
            summary = reconcile(older_than_seconds=older_than)
            self.stdout.write(json.dumps(summary))
            if summary[Result.ERROR]:
                raise SystemExit(1)
            return
        logger.info("reconciler started (every %ss, payments pending over %ss)", interval, older_than)
        run_until_stopped(lambda: reconcile(older_than_seconds=older_than), interval=interval, name="reconciler")
