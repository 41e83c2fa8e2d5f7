"""Configuration from the environment (and gateway/.env, loaded by create_app)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .events import EVENT_TYPES

GATEWAY_DIR = Path(__file__).resolve().parent.parent
DEVELOPMENT_API_KEY = "sk_test_sandbox"


class ConfigurationError(RuntimeError):
    """The environment does not describe a runnable gateway; the message says what to fix."""


# Knob specs: public name (the env var, lower case) -> (default, kind). Kinds: "rate" 0..1,
# "ms" whole milliseconds >= 0, "seconds" >= 0, "positive" > 0.
KNOB_SPECS: dict[str, tuple[float | int, str]] = {
    # Before execution: 503, nothing done, nothing saved under the key.
    "sandbox_fail_rate": (0.0, "rate"),
    # Before execution: hang sandbox_timeout_seconds, then 504; nothing done.
    "sandbox_timeout_rate": (0.0, "rate"),
    # The effect is applied and committed, then the connection is dropped (no response).
    "sandbox_lost_response_rate": (0.0, "rate"),
    # The request holds its idempotency key sandbox_latency_ms before executing.
    "sandbox_latency_rate": (0.0, "rate"),
    "sandbox_latency_ms": (1500, "ms"),
    "sandbox_timeout_seconds": (30.0, "positive"),
    # A 500 saved under the key once execution began: without / with the effect applied.
    "sandbox_saved_error_rate": (0.0, "rate"),
    "sandbox_saved_error_applied_rate": (0.0, "rate"),
    # A confirm leaves the PaymentIntent in `processing` this long (sandbox clock).
    "sandbox_processing_rate": (0.0, "rate"),
    "sandbox_processing_seconds": (5.0, "seconds"),
    # A refund answers `pending` and settles sandbox_refund_settle_seconds later: succeeded / failed.
    "sandbox_refund_pending_rate": (0.0, "rate"),
    "sandbox_refund_failure_rate": (0.0, "rate"),
    "sandbox_refund_settle_seconds": (5.0, "seconds"),
    # Search shows a PaymentIntent this long after its creation (Stripe: under a minute, up to an hour).
    "sandbox_search_lag_seconds": (60.0, "seconds"),
    # Webhook deliveries: sent twice, delayed (so later events overtake them), never sent.
    "sandbox_webhook_duplicate_rate": (0.0, "rate"),
    "sandbox_webhook_delay_rate": (0.0, "rate"),
    "sandbox_webhook_delay_ms": (2000, "ms"),
    "sandbox_webhook_drop_rate": (0.0, "rate"),
    # First retry of a failed delivery after this long, doubling per attempt, for up to 3 days.
    "sandbox_webhook_retry_seconds": (1.0, "positive"),
}


@dataclass(frozen=True)
class Knobs:
    """Fault knobs. Start values come from the environment, POST /_sandbox/config changes them."""

    values: Mapping[str, float | int] = field(default_factory=lambda: {k: d for k, (d, _) in KNOB_SPECS.items()})

    def __getattr__(self, name: str) -> float | int:
        try:
            return self.values[f"sandbox_{name}"]
        except KeyError:
            raise AttributeError(name) from None

    def public(self) -> dict[str, float | int]:
        return dict(self.values)

    @classmethod
    def parse(cls, values: Mapping[str, object], base: Knobs | None = None) -> Knobs:
        """Build knobs from public names (strings from the env or JSON values); ValueError names the bad key."""
        unknown = sorted(set(values) - set(KNOB_SPECS))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        merged = dict((base or cls()).values)
        for public, raw in values.items():
            merged[public] = _parse_knob(public, raw)
        return cls(merged)


def _parse_knob(public: str, raw: object) -> float | int:
    kind = KNOB_SPECS[public][1]
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(f"{public} must be a number")
    try:
        value = int(raw) if kind == "ms" else float(raw)
    except ValueError:
        raise ValueError(f"{public} must be a number, got {raw!r}") from None
    if kind == "ms" and isinstance(raw, float) and not raw.is_integer():
        raise ValueError(f"{public} must be a whole number of milliseconds")
    if kind == "rate" and not 0.0 <= value <= 1.0:
        raise ValueError(f"{public} must be between 0 and 1")
    if kind in ("ms", "seconds") and value < 0:
        raise ValueError(f"{public} must not be negative")
    if kind == "positive" and not value > 0:
        raise ValueError(f"{public} must be greater than 0")
    return value


@dataclass(frozen=True)
class Settings:
    environment: str
    api_key: str
    db_path: Path
    allow_config: bool
    knobs: Knobs
    log_level: str
    # More accepted secret keys; each has its own idempotency-key space, as on Stripe.
    extra_api_keys: tuple[str, ...] = ()
    # One webhook endpoint wired without API calls (the URL needs the secret).
    webhook_url: str | None = None
    webhook_secret: str | None = None
    # The event types that endpoint subscribes to (Stripe: the endpoint's enabled_events).
    webhook_events: tuple[str, ...] = ("*",)

    @property
    def api_keys(self) -> tuple[str, ...]:
        return (self.api_key, *self.extra_api_keys)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        environment = env.get("BINPAY_ENV", "development").strip().lower()
        if environment not in ("development", "production"):
            raise ConfigurationError(f"BINPAY_ENV must be development or production, got {environment!r}")
        api_key = env.get("PAYMENT_GATEWAY_API_KEY", "").strip()
        if not api_key:
            if environment == "production":
                raise ConfigurationError("PAYMENT_GATEWAY_API_KEY must be set when BINPAY_ENV=production")
            api_key = DEVELOPMENT_API_KEY
        db_path = Path(env.get("SANDBOX_DB_PATH") or GATEWAY_DIR / "sandbox_gateway.sqlite3")
        knob_values = {public: env[public.upper()] for public in KNOB_SPECS if env.get(public.upper())}
        try:
            knobs = Knobs.parse(knob_values)
        except ValueError as error:
            raise ConfigurationError(f"invalid SANDBOX_* setting: {error}") from None
        webhook_url = env.get("SANDBOX_WEBHOOK_URL", "").strip() or None
        # The same name as the initiator's: the one secret both ends of the webhook share.
        webhook_secret = env.get("PAYMENT_GATEWAY_WEBHOOK_SECRET", "").strip() or None
        if webhook_url is not None and webhook_secret is None:
            raise ConfigurationError("SANDBOX_WEBHOOK_URL needs PAYMENT_GATEWAY_WEBHOOK_SECRET to sign its events")
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"SANDBOX_WEBHOOK_URL must be an http(s) URL, got {webhook_url!r}")
        webhook_events = tuple(
            name.strip() for name in env.get("SANDBOX_WEBHOOK_EVENTS", "*").split(",") if name.strip()
        ) or ("*",)
        unknown = [name for name in webhook_events if name != "*" and name not in EVENT_TYPES]
        if unknown:
            raise ConfigurationError(f"SANDBOX_WEBHOOK_EVENTS names unknown event types: {', '.join(unknown)}")
        extra_keys = tuple(key.strip() for key in env.get("SANDBOX_EXTRA_API_KEYS", "").split(",") if key.strip())
        return cls(
            environment=environment,
            api_key=api_key,
            db_path=db_path.resolve(),
            allow_config=_parse_bool("SANDBOX_ALLOW_CONFIG", env.get("SANDBOX_ALLOW_CONFIG", "false")),
            knobs=knobs,
            log_level=env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO",
            extra_api_keys=extra_keys,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            webhook_events=webhook_events,
        )


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")
