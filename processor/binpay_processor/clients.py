"""The process-wide clients: one Pub/Sub publisher and subscriber, one Firestore client, one gateway session.

Built lazily on first use (never at import, so gunicorn can fork first) and then shared by every
request, message and thread of the process. Tests replace them with `install()`.
"""

from __future__ import annotations

import threading

import requests
from google.cloud import firestore, pubsub_v1
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .config import GATEWAY_BACKOFF_MAX_SECONDS, Settings

RETRIED_STATUSES = (500, 502, 503, 504)


def build_gateway_session(max_retries: int, pool_size: int) -> requests.Session:
    """A pooled session retrying connection errors, read errors and 5xx with exponential backoff.

    POST is retried too: every gateway POST carries an Idempotency-Key, so a retry replays the
    first result instead of charging twice.
    """
    retry = Retry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"GET", "POST"}),
        status_forcelist=RETRIED_STATUSES,
        backoff_factor=0.5,
        backoff_max=GATEWAY_BACKOFF_MAX_SECONDS,
        raise_on_status=False,
        # A gateway's Retry-After could stretch one call past the lease (config.validate bounds it).
        respect_retry_after_header=False,
    )
    session = requests.Session()
    # A connection per message in flight: a full pool drops connections and each call pays a new one.
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Clients:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._publisher: pubsub_v1.PublisherClient | None = None
        self._subscriber: pubsub_v1.SubscriberClient | None = None
        self._firestore: firestore.Client | None = None
        self._gateway_session: requests.Session | None = None

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
    def gateway_session(self) -> requests.Session:
        with self._lock:
            if self._gateway_session is None:
                self._gateway_session = build_gateway_session(
                    self.settings.gateway_max_retries, max(32, self.settings.pubsub_flow_control_max_messages)
                )
            return self._gateway_session

    def close(self) -> None:
        with self._lock:
            if self._subscriber is not None:
                self._subscriber.close()
            if self._gateway_session is not None:
                self._gateway_session.close()
            if self._firestore is not None:
                self._firestore.close()
            if self._publisher is not None:
                self._publisher.stop()
            self._publisher = self._subscriber = self._firestore = self._gateway_session = None


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
