"""Streaming-pull worker: `python -m binpay_processor.worker` (GKE and local runs).

Pulls payment.initiated from PUBSUB_SUBSCRIPTION with flow control and hands every message to the
same handler as the push endpoint. A message is acked only after the handler returned (its steps
are committed, its outcome published); transient failures are nacked. SIGTERM/SIGINT stop the
pull, let in-flight messages finish, and exit 0 (unfinished buffered messages are redelivered).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from binpay_common.logs import configure_logging
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

from . import observability
from .bootstrap import build_processor
from .clients import process_clients
from .config import ConfigurationError, Settings
from .saga import PaymentProcessor

logger = logging.getLogger("binpay_processor.worker")


# A message waits at most this long in the worker for another delivery's lease to lapse.
MAX_LEASE_WAIT_SECONDS = 300


def make_callback(processor: PaymentProcessor, stop: threading.Event | None = None):
    stop = stop or threading.Event()

    def callback(message: pubsub_v1.subscriber.message.Message) -> None:
        try:
            # A payment another delivery holds is waited for here, not nacked (the client keeps
            # extending the message's ack deadline meanwhile).
            result = processor.handle_waiting_out_leases(
                message.data,
                dict(message.attributes),
                message.delivery_attempt,
                message.message_id,
                MAX_LEASE_WAIT_SECONDS,
                stop,
            )
        except BaseException:
            logger.exception("handler crashed; message %s nacked", message.message_id)
            message.nack()
            raise
        if result.disposition.ack:
            message.ack()
        else:
            # Back off before the nack: without a retry policy on the subscription a nack is
            # redelivered at once, and a transient failure needs time, not five instant retries
            # into the dead-letter topic.
            time.sleep(nack_delay(message.delivery_attempt))
            message.nack()
        observability.message_handled(message.publish_time, result.disposition.value)

    return callback


def nack_delay(delivery_attempt: int | None) -> float:
    """Seconds to wait before nacking: 1, 2, 4, 8, then 10 per further attempt."""
    return float(min(2 ** ((delivery_attempt or 1) - 1), 10))


def subscribe(
    subscriber: pubsub_v1.SubscriberClient,
    subscription: str,
    callback,
    max_messages: int,
    max_lease_extension_seconds: int,
) -> pubsub_v1.subscriber.futures.StreamingPullFuture:
    """Streaming pull with one callback thread for every message flow control lets in.

    The client's default scheduler has 10 threads whatever the flow control: with more messages in
    flight than threads, a message the client took waits for a thread that a slow gateway call holds.
    """
    return subscriber.subscribe(
        subscription,
        callback=callback,
        # The bound also sets the stream's ack deadline: messages a killed worker held come back after
        # at most this long, not the client's 60 s default (or the p99 of its ack latency, up to 600 s).
        flow_control=pubsub_v1.types.FlowControl(
            max_messages=max_messages, max_duration_per_lease_extension=max_lease_extension_seconds
        ),
        scheduler=ThreadScheduler(ThreadPoolExecutor(max_workers=max_messages, thread_name_prefix="saga")),
        await_callbacks_on_shutdown=True,
    )


def run(settings: Settings, stop: threading.Event) -> int:
    clients = process_clients(settings)
    processor = build_processor(settings, clients)
    subscriber = clients.subscriber
    subscription = subscriber.subscription_path(settings.project_id, settings.pubsub_subscription)
    streaming_pull = subscribe(
        subscriber,
        subscription,
        make_callback(processor, stop),
        settings.pubsub_flow_control_max_messages,
        settings.pubsub_max_lease_extension_seconds,
    )
    logger.info("pulling %s (at most %d messages in flight)", subscription, settings.pubsub_flow_control_max_messages)
    streaming_pull.add_done_callback(lambda _future: stop.set())
    stop.wait()
    if streaming_pull.done() and streaming_pull.exception() is not None:
        logger.critical("streaming pull failed: %s", streaming_pull.exception())
        clients.close()
        return 1
    logger.info("stopping: no new messages; waiting for in-flight messages to finish")
    streaming_pull.cancel()
    streaming_pull.result()
    clients.close()
    logger.info("stopped cleanly")
    return 0


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigurationError as error:
        print(f"processor worker: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, secrets=[settings.payment_gateway_api_key])
    stop = threading.Event()

    def request_stop(signum, _frame):
        logger.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    observability.start_worker()
    return run(settings, stop)


if __name__ == "__main__":
    sys.exit(main())
