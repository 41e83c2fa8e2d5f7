"""Settings from the environment (and processor/.env), validated once at start-up.

Names are the ones in docs/contracts.md plus the processor's own; `.env.example` lists them all.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from binpay_common.gateway.stripe_api import CONNECT_RETRIES
from dotenv import load_dotenv

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"
DEVELOPMENT_GATEWAY_API_KEY = "sk_test_sandbox"
# The most provider calls one delivery makes holding its lease: create, confirm, a retrieve after an
# ambiguous answer, then (past the saga timeout) a cancel and the retrieve after a refusal.
PROVIDER_CALLS_PER_DELIVERY = 5
PRODUCTION_GATEWAY_URL = "https://api.stripe.com"
# How long publishing an outcome event may take.
PUBLISH_TIMEOUT_SECONDS = 10
# What one delivery may spend on Firestore besides the gateway (claim and the step writes).
FIRESTORE_BUDGET_SECONDS = 5
# An ambiguous answer that came back within this many seconds of the claim (a 5xx, a 409 on a
# concurrent duplicate, a saved error replayed) is asked again in the same delivery, if the lease
# still fits a whole walk after it; a slower one goes back to Pub/Sub.
AMBIGUITY_RETRY_ROOM_SECONDS = 5.0

# Cloud Run sets K_SERVICE (services) or CLOUD_RUN_JOB (jobs), Kubernetes KUBERNETES_SERVICE_HOST in every
# container: there, development mode must be asked for by name.
PLATFORM_MARKERS = ("K_SERVICE", "CLOUD_RUN_JOB", "KUBERNETES_SERVICE_HOST")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigurationError(RuntimeError):
    """The environment is unusable; the process must not start."""


@dataclass(frozen=True)
class Settings:
    binpay_env: str = "development"
    host: str = "127.0.0.1"
    port: int = 5000
    log_level: str = "INFO"
    project_id: str = "binpay-local"
    pubsub_topic: str = "binpay-initiation"
    pubsub_subscription: str = "initiator-sub"
    pubsub_completion_topic: str = "binpay-completion"
    pubsub_rollback_topic: str = "rollback"
    # Messages in flight per pull worker, each on its own thread: enough that payments waiting on a
    # slow gateway (10% at 2.5 s is 25 slots at 100/s) leave slots for the others.
    pubsub_flow_control_max_messages: int = 64
    # Longest ack-deadline extension the streaming-pull client asks for: what a worker held comes back
    # this soon after the worker dies (the client's own default is 60 s, then up to 600 s).
    pubsub_max_lease_extension_seconds: int = 60
    pubsub_push_audience: str | None = None
    pubsub_push_service_account: str | None = None
    pubsub_push_certs_url: str | None = None
    # true only on a private Cloud Run service: Cloud Run checked the push token's signature (binpay_common/oidc.py).
    behind_cloud_run_iam: bool = False
    firestore_collection: str = "transactions"
    payment_gateway_url: str = "http://127.0.0.1:8090"
    payment_gateway_api_key: str | None = DEVELOPMENT_GATEWAY_API_KEY
    payment_gateway_connect_timeout_seconds: float = 3.0
    payment_gateway_read_timeout_seconds: float = 10.0
    # Same-key retries only within this age of the payment: Stripe prunes keys after 24 h and then
    # takes a reused key as a new request (docs/protocol.md §4 rule 6).
    payment_gateway_idempotency_window_seconds: float = 43200.0
    saga_timeout_seconds: float = 300.0
    lease_seconds: float = 120.0
    # The initiator's PAYMENT_TIMEOUT_SECONDS, when known here: its reconciler must not start first.
    payment_timeout_seconds: float | None = None
    # The platform's request timeout for a push delivery (Cloud Run's service timeout), when pushed.
    push_request_timeout_seconds: float | None = None
    fault_injection_enabled: bool = False
    # GET /transactions/<id> needs `Authorization: Bearer <this>` when set; production without it serves no
    # saga log over HTTP (transactions_api.py).
    transactions_api_token: str | None = None
    # A sandbox deployment (the sandbox gateway, a provider's test mode) says so: otherwise production
    # refuses a plain-HTTP gateway URL and a test-mode key.
    payment_gateway_allow_sandbox: bool = False
    # A payment.initiated push envelope is about 1 kB; Pub/Sub allows 10 MB messages, this app none so big.
    request_body_max_bytes: int = 256 * 1024

    @property
    def is_production(self) -> bool:
        return self.binpay_env == "production"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
    ) -> Settings:
        """Read settings from `environ` (default: os.environ after loading processor/.env).

        `overrides` uses the env var names (e.g. {"SAGA_TIMEOUT_SECONDS": 0}) and wins over the environment.
        """
        if environ is None:
            load_dotenv(ENV_FILE, override=False)
            environ = os.environ
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            name = field.name.upper()
            if overrides and name in overrides:
                values[field.name] = overrides[name]
            elif name in environ:
                values[field.name] = _parse(name, environ[name], field.type)
        if not environ.get("BINPAY_ENV") and any(environ.get(marker) for marker in PLATFORM_MARKERS):
            raise ConfigurationError(
                "BINPAY_ENV must be set on Cloud Run and Kubernetes (production, or development by name)"
            )
        if values.get("binpay_env", "development") == "production":
            values.setdefault("payment_gateway_api_key", None)
            # The provider's API (Stripe's), not the development default's sandbox on localhost.
            values.setdefault("payment_gateway_url", PRODUCTION_GATEWAY_URL)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.binpay_env not in ("development", "production"):
            raise ConfigurationError(f"BINPAY_ENV must be development or production, not {self.binpay_env!r}")
        if not self.payment_gateway_api_key:
            raise ConfigurationError("PAYMENT_GATEWAY_API_KEY must be set")
        if self.is_production and self.fault_injection_enabled:
            raise ConfigurationError("FAULT_INJECTION_ENABLED=true is refused when BINPAY_ENV=production")
        if self.is_production and not self.payment_gateway_allow_sandbox:
            if not self.payment_gateway_url.startswith("https://"):
                raise ConfigurationError(
                    "PAYMENT_GATEWAY_URL must be https:// in production (PAYMENT_GATEWAY_ALLOW_SANDBOX=true for a sandbox)"
                )
            if self.payment_gateway_api_key.startswith(("sk_test_", "rk_test_")):
                raise ConfigurationError(
                    "PAYMENT_GATEWAY_API_KEY is a test-mode key: refused in production "
                    "(PAYMENT_GATEWAY_ALLOW_SANDBOX=true for a sandbox)"
                )
        if self.pubsub_push_audience and not self.pubsub_push_service_account:
            raise ConfigurationError("PUBSUB_PUSH_AUDIENCE needs PUBSUB_PUSH_SERVICE_ACCOUNT (the pushing identity)")
        for name in (
            "payment_gateway_connect_timeout_seconds",
            "payment_gateway_read_timeout_seconds",
            "lease_seconds",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name.upper()} must be positive")
        if self.saga_timeout_seconds < 0:
            raise ConfigurationError("SAGA_TIMEOUT_SECONDS must not be negative")
        if not self.saga_timeout_seconds < self.payment_gateway_idempotency_window_seconds <= 86400:
            raise ConfigurationError(
                "PAYMENT_GATEWAY_IDEMPOTENCY_WINDOW_SECONDS must exceed SAGA_TIMEOUT_SECONDS and stay under "
                "24 h: past 24 h Stripe may have pruned a key, and a reused key is then a new request"
            )
        if self.pubsub_flow_control_max_messages < 1:
            raise ConfigurationError("PUBSUB_FLOW_CONTROL_MAX_MESSAGES must be at least 1")
        if not 10 <= self.pubsub_max_lease_extension_seconds <= 600:
            raise ConfigurationError("PUBSUB_MAX_LEASE_EXTENSION_SECONDS must be between 10 and 600 (Pub/Sub's range)")
        self._validate_timeouts()

    def _validate_timeouts(self) -> None:
        """The timeouts of one delivery, the lease, the saga and the platform must fit inside each other."""
        handling = self.handling_worst_case_seconds()
        if handling >= self.lease_seconds:
            raise ConfigurationError(
                f"one delivery may take {handling:.0f} s ({PROVIDER_CALLS_PER_DELIVERY} provider calls, each "
                f"{self.gateway_call_worst_case_seconds():.0f} s at worst, plus Firestore), not under "
                f"LEASE_SECONDS={self.lease_seconds:g}: a lease must never lapse while a call is in flight"
            )
        if self.payment_timeout_seconds is not None and self.saga_timeout_seconds >= self.payment_timeout_seconds:
            raise ConfigurationError(
                f"SAGA_TIMEOUT_SECONDS={self.saga_timeout_seconds:g} must be under the initiator's "
                f"PAYMENT_TIMEOUT_SECONDS={self.payment_timeout_seconds:g}: the processor gives up before the "
                "reconciler takes over"
            )
        if self.push_request_timeout_seconds is not None:
            answered = self.lease_seconds + self.delivery_worst_case_seconds() + PUBLISH_TIMEOUT_SECONDS
            if answered >= self.push_request_timeout_seconds:
                raise ConfigurationError(
                    f"a push delivery may take {answered:.0f} s (waiting out a crashed delivery's "
                    f"LEASE_SECONDS={self.lease_seconds:g}, then {handling:.0f} s handling and "
                    f"{PUBLISH_TIMEOUT_SECONDS} s publishing), not under PUSH_REQUEST_TIMEOUT_SECONDS="
                    f"{self.push_request_timeout_seconds:g}: the platform would cut it off, and Pub/Sub's "
                    "retries, each answered BUSY, would dead-letter a payment whose lease a dead delivery holds"
                )

    def push_lease_wait_seconds(self) -> float:
        """How long a push delivery waits for another delivery's lease before answering BUSY: what the
        platform's request timeout leaves after handling and publishing (at least one lease, see
        _validate_timeouts), or one lease where no platform cuts the request off."""
        if self.push_request_timeout_seconds is None:
            return self.lease_seconds
        answered = self.delivery_worst_case_seconds() + PUBLISH_TIMEOUT_SECONDS
        return self.push_request_timeout_seconds - answered

    def gateway_call_worst_case_seconds(self) -> float:
        """A connection opened at the last of its attempts (binpay_common.gateway.stripe_api), then the read."""
        connects = 1 + CONNECT_RETRIES
        return connects * self.payment_gateway_connect_timeout_seconds + self.payment_gateway_read_timeout_seconds

    def handling_worst_case_seconds(self) -> float:
        """One walk through the saga holding the lease: its provider calls, then the steps."""
        return PROVIDER_CALLS_PER_DELIVERY * self.gateway_call_worst_case_seconds() + FIRESTORE_BUDGET_SECONDS

    def delivery_worst_case_seconds(self) -> float:
        """A delivery: asking again within the room, then one whole walk."""
        return self.ambiguity_retry_room_seconds() + self.handling_worst_case_seconds()

    def ambiguity_retry_room_seconds(self) -> float:
        """How long after its claim a delivery may still ask again after an ambiguous answer: then a
        whole walk more still ends inside the lease (at most AMBIGUITY_RETRY_ROOM_SECONDS)."""
        return max(0.0, min(AMBIGUITY_RETRY_ROOM_SECONDS, self.lease_seconds - self.handling_worst_case_seconds() - 1))


def _parse(name: str, raw: str, annotation: object) -> object:
    kind = str(annotation)
    raw = raw.strip()
    try:
        if kind == "bool":
            lowered = raw.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "float | None":
            return float(raw) if raw else None
    except ValueError as error:
        raise ConfigurationError(f"{name}={raw!r} is not a valid {kind}") from error
    if kind == "str | None":
        return raw or None
    return raw
