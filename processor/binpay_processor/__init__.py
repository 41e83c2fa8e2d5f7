"""BinPay processor: the Flask app factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from binpay_common.body_limit import BodyLimit
from binpay_common.logs import configure_logging
from flask import Flask

from . import health, observability, push, transactions_api
from .bootstrap import build_processor
from .clients import Clients, process_clients
from .config import Settings
from .saga import PaymentProcessor
from .web import error_response

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Binpay:
    """What the blueprints need, stored in app.extensions["binpay"]."""

    settings: Settings
    clients: Clients
    processor: PaymentProcessor


def create_app(test_config: Mapping[str, object] | None = None, clients: Clients | None = None) -> Flask:
    """Build the app. `test_config` overrides settings by env var name; `clients` replaces the process's."""
    settings = Settings.from_env(overrides=test_config)
    configure_logging(settings.log_level, secrets=[settings.payment_gateway_api_key])
    # The app logs one access line per request itself; werkzeug's would be a second, non-JSON one.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if settings.is_production and not settings.pubsub_push_audience:
        logger.warning("PUBSUB_PUSH_AUDIENCE is not set: /pubsub/push accepts unauthenticated deliveries")
    clients = clients or process_clients(settings)
    app = Flask(__name__)
    app.config.update(DEBUG=False, JSON_SORT_KEYS=False, MAX_CONTENT_LENGTH=settings.request_body_max_bytes)
    # A longer body, Content-Length or chunked, is refused (413) before Flask reads it.
    app.wsgi_app = BodyLimit(
        app.wsgi_app,
        settings.request_body_max_bytes,
        lambda code, message: {"error": {"code": code, "message": message}},
    )
    app.extensions["binpay"] = Binpay(settings, clients, build_processor(settings, clients))

    app.register_blueprint(health.bp)
    app.register_blueprint(push.bp)
    app.register_blueprint(transactions_api.bp)
    observability.configure_tracing(observability.exporter_from_env(), app)

    @app.errorhandler(404)
    def not_found(_error):
        return error_response(404, "not_found", "no such resource")

    @app.errorhandler(405)
    def method_not_allowed(_error):
        return error_response(405, "method_not_allowed", "method not allowed")

    @app.errorhandler(500)
    def internal_error(_error):
        return error_response(500, "internal_error", "internal error")

    return app
