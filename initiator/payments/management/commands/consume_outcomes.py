"""Streaming-pull consumer of payment.completed and payment.rollback, and of the dead-letter
subscription (GKE / local).

Acks only after the effects are durable, nacks transient failures, acks poison. On SIGTERM or
SIGINT it cancels the streaming pulls, lets in-flight callbacks finish, closes the database
connections and exits 0.
"""

import logging

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections
from google.cloud import pubsub_v1

from payments import clients
from payments.dead_letters import handle_dead_letter
from payments.handlers import TransientError, handle_outcome_message
from payments.management.loop import stop_on_signals

logger = logging.getLogger("payments.consumer")


def handle_outcome(message: pubsub_v1.subscriber.message.Message) -> str:
    return handle_outcome_message(data=message.data, attributes=dict(message.attributes))


def handle_dead_lettered(message: pubsub_v1.subscriber.message.Message) -> str:
    return handle_dead_letter(
        subscription=settings.PUBSUB_DEAD_LETTER_SUBSCRIPTION,
        message_id=message.message_id,
        data=message.data,
        attributes=dict(message.attributes),
        delivery_attempt=message.delivery_attempt,
    )


def callback_for(handle):
    def process_message(message: pubsub_v1.subscriber.message.Message) -> None:
        settle(message, handle)

    return process_message


def settle(message: pubsub_v1.subscriber.message.Message, handle) -> None:
    # Callbacks run on the client's thread pool: give each one a usable database connection.
    close_old_connections()
    try:
        result = handle(message)
    except TransientError as error:
        logger.warning("message %s nacked: %s", message.message_id, error)
        message.nack()
    except Exception:
        logger.exception("message %s nacked after an unexpected error", message.message_id)
        message.nack()
    else:
        logger.info("message %s acked (%s)", message.message_id, result)
        message.ack()
    finally:
        close_old_connections()


class Command(BaseCommand):
    help = "Consume payment outcomes (completion + rollback subscriptions) and dead letters by streaming pull."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--max-messages", type=int, default=None, help="Flow control (outstanding messages).")

    def handle(self, *args, max_messages: int | None, **options) -> None:
        stop = stop_on_signals()
        flow_control = pubsub_v1.types.FlowControl(
            max_messages=max_messages or settings.PUBSUB_FLOW_CONTROL_MAX_MESSAGES,
            max_duration_per_lease_extension=settings.PUBSUB_MAX_LEASE_EXTENSION_SECONDS,
        )
        subscriber = clients.subscriber()
        futures = []
        streams = (
            (settings.PUBSUB_COMPLETION_SUBSCRIPTION, handle_outcome),
            (settings.PUBSUB_ROLLBACK_SUBSCRIPTION, handle_outcome),
            (settings.PUBSUB_DEAD_LETTER_SUBSCRIPTION, handle_dead_lettered),
        )
        for name, handle in streams:
            futures.append(
                subscriber.subscribe(
                    clients.subscription_path(name),
                    callback=callback_for(handle),
                    flow_control=flow_control,
                    await_callbacks_on_shutdown=True,
                )
            )
            logger.info("consuming %s", name)
        # A stream that dies on its own (e.g. the subscription is deleted) stops the whole consumer.
        for future in futures:
            future.add_done_callback(lambda _: stop.set())
        while not stop.wait(timeout=1):
            pass
        died = [future for future in futures if future.done()]
        logger.info("draining: cancelling the streaming pulls and waiting for in-flight messages")
        for future in futures:
            future.cancel()
        for future in futures:
            try:
                future.result(timeout=60)
            except Exception as error:
                logger.error("streaming pull ended with an error: %s", error)
        for future in died:
            logger.error("a streaming pull stopped on its own: %s", future.exception(timeout=0))
        connections.close_all()
        logger.info("consumer stopped")
        if died:
            raise SystemExit(1)
