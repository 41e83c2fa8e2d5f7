"""Settings from the environment (and processor/.env), validated once at start-up.

Names are the ones in docs/contracts.md plus the processor's own; `.env.example` lists them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from binpay_common.env import SettingError, env_bool, env_float, env_int, env_str
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


class ConfigurationError(RuntimeError):
    """The environment is unusable; the process must not start."""


@dataclass(frozen=True)
class Settings:
    """The processor's settings; from_env reads each one (defaults and meanings: .env.example)."""

    binpay_env: str
    host: str
    port: int
    log_level: str
    project_id: str
    pubsub_topic: str
    pubsub_subscription: str
    pubsub_completion_topic: str
    pubsub_rollback_topic: str
    # Messages in flight per pull worker, each on its own thread: enough that payments waiting on a
    # slow gateway (10% at 2.5 s is 25 slots at 100/s) leave slots for the others.
    pubsub_flow_control_max_messages: int
    # Longest ack-deadline extension the streaming-pull client asks for: what a worker held comes back
    # this soon after the worker dies (the client's own default is 60 s, then up to 600 s).
    pubsub_max_lease_extension_seconds: int
    pubsub_push_audience: str | None
    pubsub_push_service_account: str | None
    pubsub_push_certs_url: str | None
    # true only on a private Cloud Run service: Cloud Run checked the push token's signature (binpay_common/oidc.py).
    behind_cloud_run_iam: bool
    firestore_collection: str
    payment_gateway_url: str
    payment_gateway_api_key: str | None
    payment_gateway_connect_timeout_seconds: float
    payment_gateway_read_timeout_seconds: float
    # Same-key retries only within this age of the payment: Stripe prunes keys after 24 h and then
    # takes a reused key as a new request (docs/protocol.md §4 rule 6).
    payment_gateway_idempotency_window_seconds: float
    saga_timeout_seconds: float
    lease_seconds: float
    # The initiator's PAYMENT_TIMEOUT_SECONDS, when known here: its reconciler must not start first.
    payment_timeout_seconds: float | None
    # The platform's request timeout for a push delivery (Cloud Run's service timeout), when pushed.
    push_request_timeout_seconds: float | None
    fault_injection_enabled: bool
    # GET /transactions/<id> needs `Authorization: Bearer <this>` when set; production without it serves no
    # saga log over HTTP (transactions_api.py).
    transactions_api_token: str | None
    # A sandbox deployment (the sandbox gateway, a provider's test mode) says so: otherwise production
    # refuses a plain-HTTP gateway URL and a test-mode key.
    payment_gateway_allow_sandbox: bool
    # A payment.initiated push envelope is about 1 kB; Pub/Sub allows 10 MB messages, this app none so big.
    request_body_max_bytes: int

    @property
    def is_production(self) -> bool:
        return self.binpay_env == "production"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
    ) -> Settings:
        """Read settings from `environ` (default: os.environ after loading processor/.env).

        `overrides` uses the env var names (e.g. {"SAGA_TIMEOUT_SECONDS": 0}; None unsets one) and wins
        over the environment.
        """
        if environ is None:
            load_dotenv(ENV_FILE, override=False)
            environ = os.environ
        env = dict(environ)
        for name, value in (overrides or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = str(value)
        if not env_str("BINPAY_ENV", None, env) and any(env_str(marker, None, env) for marker in PLATFORM_MARKERS):
            raise ConfigurationError(
                "BINPAY_ENV must be set on Cloud Run and Kubernetes (production, or development by name)"
            )
        try:
            settings = cls._read(env)
        except SettingError as error:
            raise ConfigurationError(str(error)) from None
        settings.validate()
        return settings

    @classmethod
    def _read(cls, env: Mapping[str, str]) -> Settings:
        binpay_env = env_str("BINPAY_ENV", "development", env)
        # Production has no default key: validate() refuses to start without one.
        default_api_key = None if binpay_env == "production" else DEVELOPMENT_GATEWAY_API_KEY
        return cls(
            binpay_env=binpay_env,
            host=env_str("HOST", "127.0.0.1", env),
            port=env_int("PORT", 5000, env),
            log_level=env_str("LOG_LEVEL", "INFO", env).upper(),
            project_id=env_str("PROJECT_ID", "binpay-local", env),
            pubsub_topic=env_str("PUBSUB_TOPIC", "binpay-initiation", env),
            pubsub_subscription=env_str("PUBSUB_SUBSCRIPTION", "initiator-sub", env),
            pubsub_completion_topic=env_str("PUBSUB_COMPLETION_TOPIC", "binpay-completion", env),
            pubsub_rollback_topic=env_str("PUBSUB_ROLLBACK_TOPIC", "rollback", env),
            pubsub_flow_control_max_messages=env_int("PUBSUB_FLOW_CONTROL_MAX_MESSAGES", 64, env),
            pubsub_max_lease_extension_seconds=env_int("PUBSUB_MAX_LEASE_EXTENSION_SECONDS", 60, env),
            pubsub_push_audience=env_str("PUBSUB_PUSH_AUDIENCE", None, env),
            pubsub_push_service_account=env_str("PUBSUB_PUSH_SERVICE_ACCOUNT", None, env),
            pubsub_push_certs_url=env_str("PUBSUB_PUSH_CERTS_URL", None, env),
            behind_cloud_run_iam=env_bool("BEHIND_CLOUD_RUN_IAM", False, env),
            firestore_collection=env_str("FIRESTORE_COLLECTION", "transactions", env),
            # The provider's API (Stripe's) in production, not the development default's sandbox on localhost.
            payment_gateway_url=env_str(
                "PAYMENT_GATEWAY_URL",
                PRODUCTION_GATEWAY_URL if binpay_env == "production" else "http://127.0.0.1:8090",
                env,
            ),
            payment_gateway_api_key=env_str("PAYMENT_GATEWAY_API_KEY", default_api_key, env),
            payment_gateway_connect_timeout_seconds=env_float("PAYMENT_GATEWAY_CONNECT_TIMEOUT_SECONDS", 3.0, env),
            payment_gateway_read_timeout_seconds=env_float("PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS", 10.0, env),
            payment_gateway_idempotency_window_seconds=env_float(
                "PAYMENT_GATEWAY_IDEMPOTENCY_WINDOW_SECONDS", 43200.0, env
            ),
            saga_timeout_seconds=env_float("SAGA_TIMEOUT_SECONDS", 300.0, env),
            lease_seconds=env_float("LEASE_SECONDS", 120.0, env),
            payment_timeout_seconds=env_float("PAYMENT_TIMEOUT_SECONDS", None, env),
            push_request_timeout_seconds=env_float("PUSH_REQUEST_TIMEOUT_SECONDS", None, env),
            fault_injection_enabled=env_bool("FAULT_INJECTION_ENABLED", False, env),
            transactions_api_token=env_str("TRANSACTIONS_API_TOKEN", None, env),
            payment_gateway_allow_sandbox=env_bool("PAYMENT_GATEWAY_ALLOW_SANDBOX", False, env),
            request_body_max_bytes=env_int("REQUEST_BODY_MAX_BYTES", 256 * 1024, env),
        )

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
