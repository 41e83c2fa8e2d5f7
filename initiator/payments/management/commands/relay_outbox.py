import logging

from django.conf import settings
from django.core.management.base import BaseCommand

from payments import saga_log
from payments.management.loop import run_until_stopped
from payments.outbox import log_oldest_pending, relay_batch

logger = logging.getLogger("payments.relay")


class Command(BaseCommand):
    help = (
        "Publish outbox rows not yet marked published (after a crash between commit and publish), and deliver "
        "saga-log steps of the step outbox that their actor could not."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="Drain the outbox once and exit (job / CronJob).")
        parser.add_argument("--batch-size", type=int, default=100)
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds between polls (default OUTBOX_RELAY_INTERVAL_SECONDS).",
        )

    def handle(self, *args, once: bool, batch_size: int, interval: float | None, **options) -> None:
        interval = settings.OUTBOX_RELAY_INTERVAL_SECONDS if interval is None else interval
        if once:
            published, failed = self.drain(batch_size)
            self.stdout.write(f"relay: published {published}, failed {failed}")
            if failed:
                raise SystemExit(1)
            return
        logger.info("outbox relay started (every %ss, batches of %s)", interval, batch_size)
        run_until_stopped(lambda: self.drain(batch_size), interval=interval, name="outbox relay")

    def drain(self, batch_size: int) -> tuple[int, int]:
        """Publish batches until none is left or a batch fails entirely (Pub/Sub down: retry next round),
        then deliver the steps left in the step outbox."""
        saga_log.deliver_pending(limit=batch_size)
        published_total = failed_total = 0
        while True:
            taken, published = relay_batch(batch_size=batch_size)
            published_total += published
            failed_total += taken - published
            if taken < batch_size or published == 0:
                log_oldest_pending()
                return published_total, failed_total
