"""BinPay's sandbox payment gateway: the gateway protocol of docs/contracts.md, for local runs and tests."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from dotenv import load_dotenv
from flask import Flask

from .chaos import KnobBoard
from .logs import configure_logging
from .service import Gateway
from .settings import GATEWAY_DIR, Settings
from .store import Store

EXTENSION = "sandbox_gateway"
MAX_BODY_BYTES = 64 * 1024
logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    chance: Callable[[], float] = random.random,
) -> Flask:
    """Build the app. Without ``settings`` they come from the environment and gateway/.env."""
    if settings is None:
        load_dotenv(GATEWAY_DIR / ".env")
        settings = Settings.from_env()
    configure_logging(settings.log_level, secrets=[settings.api_key])

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["SANDBOX_SETTINGS"] = settings
    store = Store(settings.db_path)
    store.initialize()
    app.extensions[EXTENSION] = Gateway(store, KnobBoard(settings.knobs), sleep=sleep, chance=chance)

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
        extra={"db_path": str(settings.db_path), "environment": settings.environment, **settings.knobs.public()},
    )
    return app
