"""The processor's one wiring point (cosmicpython's bootstrap): settings and clients in, a ready
PaymentProcessor out. `create_app` and the pull worker both call it, so the saga log and the gateway
are built once per process and handed to the handler, never per message."""

from __future__ import annotations

from binpay_common.saga_log import PROCESSOR, SagaLog

from .clients import Clients
from .config import Settings
from .saga import PaymentProcessor


def build_saga_log(settings: Settings, clients: Clients) -> SagaLog:
    return SagaLog(clients.firestore, settings.firestore_collection, settings.lease_seconds, PROCESSOR)


def build_processor(settings: Settings, clients: Clients) -> PaymentProcessor:
    return PaymentProcessor(settings, clients, build_saga_log(settings, clients), clients.gateway)
