"""The processor's one wiring point (cosmicpython's bootstrap): settings and clients in, a ready
PaymentProcessor out. `create_app` and the pull worker both call it, so the saga log and the gateway
client are built once per process and handed to the handler, never per message."""

from __future__ import annotations

from .clients import Clients
from .config import Settings
from .gateway import GatewayClient
from .saga import PaymentProcessor
from .saga_log import SagaLog


def build_processor(settings: Settings, clients: Clients) -> PaymentProcessor:
    saga_log = SagaLog(clients.firestore, settings.firestore_collection, settings.lease_seconds)
    gateway = GatewayClient(
        clients.gateway_session,
        settings.payment_gateway_url,
        settings.payment_gateway_api_key,
        settings.gateway_connect_timeout,
        settings.gateway_read_timeout,
    )
    return PaymentProcessor(settings, clients, saga_log, gateway)
