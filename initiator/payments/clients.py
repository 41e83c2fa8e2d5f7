"""The process-wide Google Cloud clients, built lazily on first use.

One Pub/Sub publisher, one subscriber, one Firestore client and one gateway client per process, never per request or
event. Tests swap them with `set_clients(...)` / `reset_clients()`. The clients read
PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST from the environment when set.
"""

import threading

from django.conf import settings
from google.cloud import firestore, pubsub_v1

from payments.gateway import GatewayClient

_lock = threading.Lock()
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


def gateway() -> GatewayClient:
    return _get("gateway", GatewayClient.from_settings)


def topic_path(topic: str) -> str:
    return pubsub_v1.PublisherClient.topic_path(settings.PROJECT_ID, topic)


def subscription_path(subscription: str) -> str:
    return pubsub_v1.SubscriberClient.subscription_path(settings.PROJECT_ID, subscription)


def set_clients(**clients: object) -> None:
    """Replace clients (keys: publisher, subscriber, firestore, gateway)."""
    with _lock:
        _clients.update(clients)


def reset_clients() -> None:
    with _lock:
        _clients.clear()
