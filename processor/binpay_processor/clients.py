"""The process-wide clients: one Pub/Sub publisher and subscriber, one Firestore client, one provider gateway.

Built lazily on first use (never at import, so gunicorn can fork first) and then shared by every
request, message and thread of the process. Tests replace them with `install()`.
"""

from __future__ import annotations

import threading

from binpay_common.gateway.stripe_api import StripeGateway
from google.cloud import firestore, pubsub_v1

from . import observability
from .config import Settings


class Clients:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._publisher: pubsub_v1.PublisherClient | None = None
        self._subscriber: pubsub_v1.SubscriberClient | None = None
        self._firestore: firestore.Client | None = None
        self._gateway: StripeGateway | None = None

    @property
    def publisher(self) -> pubsub_v1.PublisherClient:
        with self._lock:
            if self._publisher is None:
                self._publisher = pubsub_v1.PublisherClient()
            return self._publisher

    @property
    def subscriber(self) -> pubsub_v1.SubscriberClient:
        with self._lock:
            if self._subscriber is None:
                self._subscriber = pubsub_v1.SubscriberClient()
            return self._subscriber

    @property
    def firestore(self) -> firestore.Client:
        with self._lock:
            if self._firestore is None:
                self._firestore = firestore.Client(project=self.settings.project_id)
            return self._firestore

    @property
    def gateway(self) -> StripeGateway:
        with self._lock:
            if self._gateway is None:
                settings = self.settings
                self._gateway = StripeGateway(
                    api_base=settings.payment_gateway_url,
                    api_key=settings.payment_gateway_api_key,
                    connect_timeout=settings.payment_gateway_connect_timeout_seconds,
                    read_timeout=settings.payment_gateway_read_timeout_seconds,
                    # A connection per message in flight: a full pool drops connections and each call pays a new one.
                    pool_size=max(32, settings.pubsub_flow_control_max_messages),
                    observe=observability.gateway_call,
                )
            return self._gateway

    def close(self) -> None:
        with self._lock:
            if self._subscriber is not None:
                self._subscriber.close()
            if self._gateway is not None:
                self._gateway.close()
            if self._firestore is not None:
                self._firestore.close()
            if self._publisher is not None:
                self._publisher.stop()
            self._publisher = self._subscriber = self._firestore = self._gateway = None


_process_clients: Clients | None = None
_process_lock = threading.Lock()


def process_clients(settings: Settings) -> Clients:
    """The process's clients, created on first call with the first caller's settings."""
    global _process_clients
    with _process_lock:
        if _process_clients is None:
            _process_clients = Clients(settings)
        return _process_clients


def install(clients: Clients | None) -> Clients | None:
    """Replace the process's clients (tests); returns the previous ones."""
    global _process_clients
    with _process_lock:
        previous, _process_clients = _process_clients, clients
        return previous
