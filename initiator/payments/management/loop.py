"""The stop-on-SIGTERM loop of the long-running commands (relay_outbox, reconcile, consume_outcomes).

SIGTERM (Kubernetes, Cloud Run jobs, honcho) and SIGINT (Ctrl-C) set an event; the loop finishes the
pass in hand, closes the database connections and returns, so the process exits 0 with nothing half
done. A database outage skips a pass instead of killing the process.
"""

import logging
import signal
import threading
from collections.abc import Callable

from django.db import DatabaseError, close_old_connections, connections

from binpay_common import metrics_server

logger = logging.getLogger(__name__)


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set (long-running commands also serve their metrics on METRICS_PORT)."""
    metrics_server.serve_from_env()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def run_until_stopped(work: Callable[[], object], *, interval: float, name: str) -> None:
    """Run `work` every `interval` seconds until SIGTERM / SIGINT."""
    stop = stop_on_signals()
    while not stop.is_set():
        try:
            work()
        except DatabaseError as error:
            logger.warning("%s: database unavailable: %s", name, error)
            close_old_connections()
        stop.wait(interval)
    connections.close_all()
    logger.info("%s stopped", name)
