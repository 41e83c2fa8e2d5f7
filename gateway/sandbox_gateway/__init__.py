"""BinPay's sandbox payment provider: a model of the Stripe API subset BinPay uses (gateway/README.md)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from dotenv import load_dotenv
from flask import Flask

from . import events
from .dispatcher import Dispatcher
from .faults import KnobBoard
from .logs import configure_logging
from .service import Engine
from .settings import GATEWAY_DIR, Settings
from .store import Store, insert

EXTENSION = "sandbox_gateway"
MAX_BODY_BYTES = 64 * 1024
logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    chance: Callable[[], float] = random.random,
    background: bool = True,
) -> Flask:
    """Build the app. Without ``settings`` they come from the environment and gateway/.env.

    ``background=False`` leaves out the dispatcher thread (unit tests drive timers through requests).
    """
    if settings is None:
        load_dotenv(GATEWAY_DIR / ".env")
        settings = Settings.from_env()
    configure_logging(settings.log_level, secrets=[*settings.api_keys, settings.webhook_secret or ""])

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["SANDBOX_SETTINGS"] = settings
    store = Store(settings.db_path)
    store.initialize()
    _wire_environment_endpoint(store, settings)
    dispatcher: Dispatcher | None = None
    engine = Engine(store, KnobBoard(settings.knobs), sleep=sleep, chance=chance, on_webhooks=lambda: poke())

    def poke() -> None:
        if dispatcher is not None:
            dispatcher.poke()

    app.extensions[EXTENSION] = engine
    if background:
        dispatcher = Dispatcher(engine, store)
        dispatcher.start()

    from .api import api
    from .health import health
    from .sandbox import sandbox
    from .web import register_request_hooks

    register_request_hooks(app)
    app.register_blueprint(health)
    app.register_blueprint(api)
    app.register_blueprint(sandbox)
    logger.info(
        "sandbox gateway ready",
        extra={
            "db_path": str(settings.db_path),
            "environment": settings.environment,
            "webhook_url": settings.webhook_url,
            **settings.knobs.public(),
        },
    )
    return app


def _wire_environment_endpoint(store: Store, settings: Settings) -> None:
    """SANDBOX_WEBHOOK_URL + PAYMENT_GATEWAY_WEBHOOK_SECRET: one endpoint for every event type, no API call needed."""
    with store.transaction() as conn:
        conn.execute("DELETE FROM objects WHERE id = ?", (events.ENV_ENDPOINT_ID,))
        if settings.webhook_url is None:
            return
        now = int(time.time() + conn.execute("SELECT offset_seconds FROM clock WHERE id = 1").fetchone()[0])
        insert(
            conn,
            events.endpoint_object(
                endpoint_id=events.ENV_ENDPOINT_ID,
                url=settings.webhook_url,
                enabled_events=list(settings.webhook_events),
                secret=settings.webhook_secret,
                now=now,
                description="SANDBOX_WEBHOOK_URL",
            ),
        )
