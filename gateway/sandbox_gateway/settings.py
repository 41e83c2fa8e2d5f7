"""Configuration from the environment (and gateway/.env, loaded by create_app)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

GATEWAY_DIR = Path(__file__).resolve().parent.parent
DEVELOPMENT_API_KEY = "sk_test_sandbox"


class ConfigurationError(RuntimeError):
    """The environment does not describe a runnable gateway; the message says what to fix."""


@dataclass(frozen=True)
class Knobs:
    """Chaos knobs. Start values come from the environment, POST /_sandbox/config changes them."""

    fail_rate: float = 0.0
    timeout_rate: float = 0.0
    lost_response_rate: float = 0.0
    latency_rate: float = 0.0
    latency_ms: int = 1500
    timeout_seconds: float = 30.0

    # Public (lower-case env var) names of the fields, as GET/POST /_sandbox/config use them.
    PUBLIC_NAMES = {
        "sandbox_fail_rate": "fail_rate",
        "sandbox_timeout_rate": "timeout_rate",
        "sandbox_lost_response_rate": "lost_response_rate",
        "sandbox_latency_rate": "latency_rate",
        "sandbox_latency_ms": "latency_ms",
        "sandbox_timeout_seconds": "timeout_seconds",
    }

    def public(self) -> dict[str, float | int]:
        return {public: getattr(self, field) for public, field in self.PUBLIC_NAMES.items()}

    @classmethod
    def parse(cls, values: Mapping[str, object], base: Knobs | None = None) -> Knobs:
        """Build knobs from public names (strings from the env or JSON values); ValueError names the bad key."""
        unknown = sorted(set(values) - set(cls.PUBLIC_NAMES))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        fields = dict((base or cls()).__dict__)
        for public, raw in values.items():
            field = cls.PUBLIC_NAMES[public]
            fields[field] = _parse_knob(public, field, raw)
        return cls(**fields)


def _parse_knob(public: str, field: str, raw: object) -> float | int:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(f"{public} must be a number")
    try:
        value = int(raw) if field == "latency_ms" else float(raw)
    except ValueError:
        raise ValueError(f"{public} must be a number, got {raw!r}") from None
    if field == "latency_ms" and isinstance(raw, float) and not raw.is_integer():
        raise ValueError(f"{public} must be a whole number of milliseconds")
    if field.endswith("_rate") and not 0.0 <= value <= 1.0:
        raise ValueError(f"{public} must be between 0 and 1")
    if field == "latency_ms" and value < 0:
        raise ValueError(f"{public} must not be negative")
    if field == "timeout_seconds" and not value > 0:
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
        knob_values = {public: env[public.upper()] for public in Knobs.PUBLIC_NAMES if env.get(public.upper())}
        try:
            knobs = Knobs.parse(knob_values)
        except ValueError as error:
            raise ConfigurationError(f"invalid SANDBOX_* setting: {error}") from None
        return cls(
            environment=environment,
            api_key=api_key,
            db_path=db_path.resolve(),
            allow_config=_parse_bool("SANDBOX_ALLOW_CONFIG", env.get("SANDBOX_ALLOW_CONFIG", "false")),
            knobs=knobs,
            log_level=env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO",
        )


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")
