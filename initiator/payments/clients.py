"""The process-wide clients, built lazily on first use.

One Pub/Sub publisher, one subscriber, one Firestore client, the saga log and the provider gateway per process,
never per request or event. Tests swap them with `set_clients(...)` / `reset_clients()`. The clients read
PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST from the environment when set.
"""

import threading

from django.conf import settings
from google.cloud import firestore, pubsub_v1

from binpay_common.gateway.stripe_api import StripeGateway
from binpay_common.saga_log import INITIATOR, SagaLog
from observability import metrics

# Reentrant: a client factory may ask for another client (the saga log needs Firestore).
_lock = threading.RLock()
_clients: dict[str, object] = {}


def _get(name: str, factory):
    client = _clients.get(name)
    if client is None:
        with _lock:
            client = _clients.get(name)
            if client is None:
                client = factory()
                _clients[name] = client
    return client


def publisher() -> pubsub_v1.PublisherClient:
    return _get("publisher", pubsub_v1.PublisherClient)


def subscriber() -> pubsub_v1.SubscriberClient:
    return _get("subscriber", pubsub_v1.SubscriberClient)


def firestore_client() -> firestore.Client:
    return _get("firestore", lambda: firestore.Client(project=settings.PROJECT_ID))


def gateway() -> StripeGateway:
    return _get(
        "gateway",
        lambda: StripeGateway(
            api_base=settings.PAYMENT_GATEWAY_URL,
            api_key=settings.PAYMENT_GATEWAY_API_KEY,
            connect_timeout=settings.PAYMENT_GATEWAY_CONNECT_TIMEOUT_SECONDS,
            read_timeout=settings.PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS,
            webhook_secret=settings.PAYMENT_GATEWAY_WEBHOOK_SECRET,
            observe=metrics.gateway_call,
        ),
    )


def saga_log() -> SagaLog:
    return _get(
        "saga_log",
        lambda: SagaLog(
            firestore_client(), settings.FIRESTORE_COLLECTION, settings.SETTLEMENT_LEASE_SECONDS, INITIATOR
        ),
    )


def topic_path(topic: str) -> str:
    return pubsub_v1.PublisherClient.topic_path(settings.PROJECT_ID, topic)


def subscription_path(subscription: str) -> str:
    return pubsub_v1.SubscriberClient.subscription_path(settings.PROJECT_ID, subscription)


def set_clients(**clients: object) -> None:
    """Replace clients (keys: publisher, subscriber, firestore, gateway, saga_log)."""
    with _lock:
        _clients.update(clients)


def reset_clients() -> None:
    with _lock:
        _clients.clear()
