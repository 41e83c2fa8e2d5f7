"""Settings for the BinPay initiator, read from the environment and initiator/.env.

BINPAY_ENV=production refuses to start unless every secret is set explicitly, and forces DEBUG off.
Every variable is listed with its default in .env.example.
"""

import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from binpay_common.env import env_bool, env_float, env_int, env_list, env_str
from core.money import DEFAULT_DEPOSIT_MAX_MAJOR, DEFAULT_PAYMENT_MAX_MAJOR, amount_limits

BASE_DIR = Path(__file__).resolve().parent.parent

# Values already in the environment win over the .env file.
load_dotenv(BASE_DIR / ".env", override=False)


# Cloud Run sets K_SERVICE (services) or CLOUD_RUN_JOB (jobs), Kubernetes KUBERNETES_SERVICE_HOST in
# every container: there, development mode (open push endpoints, test keys) must be asked for by name.
PLATFORM_MARKERS = ("K_SERVICE", "CLOUD_RUN_JOB", "KUBERNETES_SERVICE_HOST")
if not env_str("BINPAY_ENV", None) and any(env_str(marker, None) for marker in PLATFORM_MARKERS):
    raise ImproperlyConfigured(
        "BINPAY_ENV must be set on Cloud Run and Kubernetes (production, or development by name)"
    )
BINPAY_ENV = env_str("BINPAY_ENV", "development")
if BINPAY_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"BINPAY_ENV must be 'development' or 'production', got {BINPAY_ENV!r}")
IS_PRODUCTION = BINPAY_ENV == "production"

PRODUCTION_GATEWAY_URL = "https://api.stripe.com"
_PRODUCTION_REQUIRED = ("DJANGO_SECRET_KEY", "DATABASE_URL", "DJANGO_ALLOWED_HOSTS", "PAYMENT_GATEWAY_API_KEY")
if IS_PRODUCTION:
    missing = [name for name in _PRODUCTION_REQUIRED if env_str(name, None) is None]
    if missing:
        raise ImproperlyConfigured(f"BINPAY_ENV=production requires {', '.join(missing)} to be set explicitly")

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "django-insecure-development-only-key-not-for-production")
DEBUG = False if IS_PRODUCTION else env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "core",
    "accounts",
    "payments",
]

MIDDLEWARE = [
    # First: probes must not go through the ALLOWED_HOSTS check (probes send the pod IP as Host).
    "core.middleware.ProbeMiddleware",
    "core.middleware.CorrelationIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "binpay_initiator.urls"
WSGI_APPLICATION = "binpay_initiator.wsgi.application"
# The seed's `curl ... /initiate-payment` has no trailing slash; never redirect POSTs.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue instead of failing mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Operator console (console/): staff sign in with Django's auth views. Static files (the console's and
# the admin's) are served by WhiteNoise under gunicorn too, straight from the apps' static folders
# (finders), so the image needs no collectstatic step.
INSTALLED_APPS += ["console", "observability"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "whitenoise.middleware.WhiteNoiseMiddleware"
)
WHITENOISE_USE_FINDERS = True
# STATIC_ROOT exists only where collectstatic ran; the finders serve the files without it.
warnings.filterwarnings("ignore", message=f"No directory at: {STATIC_ROOT}")
# A staff session lasts a working day, not Django's two weeks; closing the browser ends it.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Content-Security-Policy on every page (django-csp): the console and the admin load only their own
# scripts, styles and images, are never framed, and post forms only to this site.
MIDDLEWARE.append("csp.middleware.CSPMiddleware")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:payments"
LOGOUT_REDIRECT_URL = "console:login"

if IS_PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # TLS ends at Cloud Run's front end or the GKE load balancer, which say so in X-Forwarded-Proto
    # (and overwrite whatever a client sent): a request that did not arrive over HTTPS is redirected.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Probes reach the pod over plain HTTP (core.middleware.ProbeMiddleware answers them first anyway).
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Preloading is a decision about the whole domain, made by its owner, not by this service.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]

# The largest request body any endpoint takes (binpay_common/body_limit.py, in front of Django): the largest
# valid payment (50 metadata values of 500 characters, escaped) fits several times over.
REQUEST_BODY_MAX_BYTES = env_int("REQUEST_BODY_MAX_BYTES", 256 * 1024)
if REQUEST_BODY_MAX_BYTES < 1024:
    raise ImproperlyConfigured("REQUEST_BODY_MAX_BYTES must be at least 1024")
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES

# Rate limits in the database, shared by every instance (core/ratelimit.py, docs/security.md). Stripe
# allows 100 read and 100 write requests per second per account in live mode.
RATE_LIMIT_ENABLED = env_bool("RATE_LIMIT_ENABLED", True)
try:
    from core.ratelimit import Budget, RateLimitConfigError

    _RATE_LIMIT_BUDGETS = {
        "key_read": env_str("RATE_LIMIT_KEY_READ", "100/1"),
        "key_write": env_str("RATE_LIMIT_KEY_WRITE", "100/1"),
        "address_read": env_str("RATE_LIMIT_ADDRESS_READ", "200/1"),
        "address_write": env_str("RATE_LIMIT_ADDRESS_WRITE", "200/1"),
        "login": env_str("RATE_LIMIT_LOGIN", "10/300"),
    }
    RATE_LIMITS = {name: Budget.parse(f"RATE_LIMIT_{name.upper()}", raw) for name, raw in _RATE_LIMIT_BUDGETS.items()}
except RateLimitConfigError as error:
    raise ImproperlyConfigured(str(error)) from None
# How many proxies of our own append to X-Forwarded-For in front of the app (0: the peer address is the
# client's). docs/security.md says what each platform needs.
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)
MIDDLEWARE.insert(MIDDLEWARE.index("core.middleware.CorrelationIdMiddleware") + 1, "core.ratelimit.RateLimitMiddleware")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.auth.ApiKeyAuthentication"],
    # Every API view declares `required_scopes` (core/permissions.py).
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.HasRequiredScopes"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # No OPTIONS metadata: OPTIONS answers 405 like any method a view does not serve.
    "DEFAULT_METADATA_CLASS": None,
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "BinPay initiator API",
    "DESCRIPTION": (
        "Users, accounts and payments; starts each payment saga. Amounts in requests are decimal strings in "
        "major units; amounts in answers are integer minor units. Every request needs an API key with the "
        "scopes its operation lists. /pubsub/push and /internal/reconcile are called by Google Cloud "
        "(Pub/Sub, Cloud Scheduler) with OIDC tokens: they are not part of this public API. Rate limits: each "
        "API key has a read budget (GET) and a write budget (POST) of 100 requests per second, each client "
        "address 200 of each (defaults; RATE_LIMIT_*); a request over one answers 429 with Retry-After and "
        "error type rate_limit_error. Request bodies are at most 256 KiB (413 body_too_large)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["core.schema.public_endpoints_only"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.refuse_unknown_request_properties",
        "core.schema.add_limit_responses",
        "core.schema.add_links",
    ],
}
TEST_RUNNER = "binpay_initiator.test_runner.EmulatorTestRunner"

# --- BinPay (names from docs/contracts.md) ---
PROJECT_ID = env_str("PROJECT_ID", "binpay-local")
PUBSUB_TOPIC = env_str("PUBSUB_TOPIC", "binpay-initiation")
PUBSUB_ROLLBACK_TOPIC = env_str("PUBSUB_ROLLBACK_TOPIC", "rollback")
PUBSUB_COMPLETION_TOPIC = env_str("PUBSUB_COMPLETION_TOPIC", "binpay-completion")
PUBSUB_ROLLBACK_SUBSCRIPTION = env_str("PUBSUB_ROLLBACK_SUBSCRIPTION", "processor-sub")
PUBSUB_COMPLETION_SUBSCRIPTION = env_str("PUBSUB_COMPLETION_SUBSCRIPTION", "completion-sub")
PUBSUB_DEAD_LETTER_SUBSCRIPTION = env_str("PUBSUB_DEAD_LETTER_SUBSCRIPTION", "dead-letter-sub")
PUBSUB_FLOW_CONTROL_MAX_MESSAGES = env_int("PUBSUB_FLOW_CONTROL_MAX_MESSAGES", 100)
# Longest ack-deadline extension the consumer's streaming pull asks for: what a consumer held comes back
# this soon after it dies (the client's own default is 60 s, then up to 600 s). Pub/Sub allows 10..600.
PUBSUB_MAX_LEASE_EXTENSION_SECONDS = env_int("PUBSUB_MAX_LEASE_EXTENSION_SECONDS", 60)
if not 10 <= PUBSUB_MAX_LEASE_EXTENSION_SECONDS <= 600:
    raise ImproperlyConfigured("PUBSUB_MAX_LEASE_EXTENSION_SECONDS must be between 10 and 600")
PUBSUB_PUBLISH_TIMEOUT_SECONDS = env_int("PUBSUB_PUBLISH_TIMEOUT_SECONDS", 10)
# Google-signed OIDC tokens, one caller per endpoint (payments/authentication.py, docs/deploy.md).
# POST /pubsub/push: verified when PUBSUB_PUSH_AUDIENCE is set; issued to PUBSUB_PUSH_SERVICE_ACCOUNT.
PUBSUB_PUSH_AUDIENCE = env_str("PUBSUB_PUSH_AUDIENCE", "")
PUBSUB_PUSH_SERVICE_ACCOUNT = env_str("PUBSUB_PUSH_SERVICE_ACCOUNT", "")
# POST /internal/reconcile: Cloud Scheduler's token when RECONCILE_AUDIENCE is set, else an API key.
RECONCILE_AUDIENCE = env_str("RECONCILE_AUDIENCE", "")
RECONCILE_SERVICE_ACCOUNT = env_str("RECONCILE_SERVICE_ACCOUNT", "")
# Signing certificates of every token above; empty = Google's (tests serve their own).
PUBSUB_PUSH_CERTS_URL = env_str("PUBSUB_PUSH_CERTS_URL", "")
# true only on a private Cloud Run service (no allUsers invoker): Cloud Run checked the signature.
BEHIND_CLOUD_RUN_IAM = env_bool("BEHIND_CLOUD_RUN_IAM", False)
if PUBSUB_PUSH_AUDIENCE and not PUBSUB_PUSH_SERVICE_ACCOUNT:
    raise ImproperlyConfigured("PUBSUB_PUSH_AUDIENCE is set but PUBSUB_PUSH_SERVICE_ACCOUNT is not")
if RECONCILE_AUDIENCE and not RECONCILE_SERVICE_ACCOUNT:
    raise ImproperlyConfigured("RECONCILE_AUDIENCE is set but RECONCILE_SERVICE_ACCOUNT is not")
if PUBSUB_PUSH_AUDIENCE and PUBSUB_PUSH_AUDIENCE == RECONCILE_AUDIENCE:
    raise ImproperlyConfigured("PUBSUB_PUSH_AUDIENCE and RECONCILE_AUDIENCE must differ: one token per endpoint")

FIRESTORE_COLLECTION = env_str("FIRESTORE_COLLECTION", "transactions")
FIRESTORE_TIMEOUT_SECONDS = env_int("FIRESTORE_TIMEOUT_SECONDS", 10)

DEFAULT_CURRENCY = env_str("DEFAULT_CURRENCY", "USD").upper()
# Largest payment and deposit per currency, in minor units: core/money.py's defaults (about USD 10,000
# and 100,000) with "USD=5000,JPY=700000" (major units) from the environment on top.
try:
    PAYMENT_MAX_AMOUNTS = amount_limits(env_str("PAYMENT_MAX_AMOUNTS", ""), DEFAULT_PAYMENT_MAX_MAJOR)
    DEPOSIT_MAX_AMOUNTS = amount_limits(env_str("DEPOSIT_MAX_AMOUNTS", ""), DEFAULT_DEPOSIT_MAX_MAJOR)
except ValueError as error:
    raise ImproperlyConfigured(f"PAYMENT_MAX_AMOUNTS / DEPOSIT_MAX_AMOUNTS: {error}") from None
# A new API key expires after this many days unless created with --expires-in-days (CIS Google Cloud
# benchmark 1.15: rotate API keys every 90 days). The key's owner rotates it before then.
API_KEY_DEFAULT_EXPIRY_DAYS = env_int("API_KEY_DEFAULT_EXPIRY_DAYS", 90)
if API_KEY_DEFAULT_EXPIRY_DAYS < 1:
    raise ImproperlyConfigured("API_KEY_DEFAULT_EXPIRY_DAYS must be at least 1")
# `manage.py purge_expired` (core/management/commands/purge_expired.py): what it deletes, and how much per statement.
IDEMPOTENCY_KEY_TTL_HOURS = env_int("IDEMPOTENCY_KEY_TTL_HOURS", 24)
RECONCILER_PASS_RETENTION_DAYS = env_int("RECONCILER_PASS_RETENTION_DAYS", 30)
PURGE_BATCH_SIZE = env_int("PURGE_BATCH_SIZE", 1000)
if min(IDEMPOTENCY_KEY_TTL_HOURS, RECONCILER_PASS_RETENTION_DAYS, PURGE_BATCH_SIZE) < 1:
    raise ImproperlyConfigured(
        "IDEMPOTENCY_KEY_TTL_HOURS, RECONCILER_PASS_RETENTION_DAYS, PURGE_BATCH_SIZE must be >= 1"
    )
# `create_api_key --secret-id` talks to Secret Manager here; empty = Google's. Tests point it at a
# stand-in; production refuses it (it would send new keys elsewhere).
SECRET_MANAGER_API_ENDPOINT = env_str("SECRET_MANAGER_API_ENDPOINT", "")
if IS_PRODUCTION and SECRET_MANAGER_API_ENDPOINT:
    raise ImproperlyConfigured("SECRET_MANAGER_API_ENDPOINT is refused when BINPAY_ENV=production")
# An API key's last_used_at is written at most once per this many seconds (not on every request).
API_KEY_LAST_USED_INTERVAL_SECONDS = env_int("API_KEY_LAST_USED_INTERVAL_SECONDS", 300)
OUTBOX_RELAY_INTERVAL_SECONDS = env_int("OUTBOX_RELAY_INTERVAL_SECONDS", 1)
# false leaves all publishing to `manage.py relay_outbox` (chaos runs: every event goes through the relay).
OUTBOX_PUBLISH_ON_COMMIT = env_bool("OUTBOX_PUBLISH_ON_COMMIT", True)
# true (set on Cloud Run): publish in the committing thread instead, so the request waits for Pub/Sub
# (payments/outbox.py; the trade-off is in docs/deploy.md).
OUTBOX_PUBLISH_IN_REQUEST = env_bool("OUTBOX_PUBLISH_IN_REQUEST", False)

# Reconciler: payments still pending after this many seconds are settled by `manage.py reconcile`.
PAYMENT_TIMEOUT_SECONDS = env_int("PAYMENT_TIMEOUT_SECONDS", 600)
_PROCESSOR_SAGA_TIMEOUT_SECONDS = env_float("SAGA_TIMEOUT_SECONDS", None)
if _PROCESSOR_SAGA_TIMEOUT_SECONDS is not None and _PROCESSOR_SAGA_TIMEOUT_SECONDS >= PAYMENT_TIMEOUT_SECONDS:
    # The processor must give up (cancel the charge) before the reconciler takes the payment over.
    raise ImproperlyConfigured("PAYMENT_TIMEOUT_SECONDS must exceed the processor's SAGA_TIMEOUT_SECONDS")
# A pending payment whose payment.initiated went out this long ago while no processor delivery holds
# it is published again (payments.reconciler): Pub/Sub may not redeliver a message whose subscriber
# died, and never redelivers a dead-lettered one. Shorter than PAYMENT_TIMEOUT_SECONDS, and than the
# processor's SAGA_TIMEOUT_SECONDS so that the message is still charged rather than canceled.
PAYMENT_REDRIVE_AFTER_SECONDS = env_int("PAYMENT_REDRIVE_AFTER_SECONDS", min(120, PAYMENT_TIMEOUT_SECONDS // 2))
if not 0 < PAYMENT_REDRIVE_AFTER_SECONDS < PAYMENT_TIMEOUT_SECONDS:
    raise ImproperlyConfigured("PAYMENT_REDRIVE_AFTER_SECONDS must be positive and under PAYMENT_TIMEOUT_SECONDS")
RECONCILE_INTERVAL_SECONDS = env_int("RECONCILE_INTERVAL_SECONDS", 60)
# One pass examines at most this many open payments and as many rolled-back ones, and stops
# starting new ones after the time budget (keep it under the scheduler's attempt deadline).
RECONCILE_BATCH_SIZE = env_int("RECONCILE_BATCH_SIZE", 200)
RECONCILE_TIME_BUDGET_SECONDS = env_float("RECONCILE_TIME_BUDGET_SECONDS", 45.0)
# A payment the reconciler could not settle (the provider not definitive) is tried again after
# RECONCILE_BACKOFF_SECONDS, doubling per attempt up to RECONCILE_BACKOFF_MAX_SECONDS.
RECONCILE_BACKOFF_SECONDS = env_int("RECONCILE_BACKOFF_SECONDS", 60)
RECONCILE_BACKOFF_MAX_SECONDS = env_int("RECONCILE_BACKOFF_MAX_SECONDS", 3600)
# Sweeper: a settled payment's provider objects are looked at for this long after it settled, at
# most once per interval (a webhook about the payment makes it due at once); the provider's search,
# eventually consistent, is trusted only this long after the payment was created.
LATE_CHARGE_WINDOW_SECONDS = env_int("LATE_CHARGE_WINDOW_SECONDS", 7 * 24 * 3600)
LATE_CHARGE_CHECK_INTERVAL_SECONDS = env_int("LATE_CHARGE_CHECK_INTERVAL_SECONDS", 3600)
PROVIDER_SEARCH_LAG_SECONDS = env_int("PROVIDER_SEARCH_LAG_SECONDS", 3600)
# The sandbox gateway of `make run` in development; the provider's API (Stripe's) in production.
PAYMENT_GATEWAY_URL = env_str(
    "PAYMENT_GATEWAY_URL", PRODUCTION_GATEWAY_URL if IS_PRODUCTION else "http://127.0.0.1:8090"
).rstrip("/")
PAYMENT_GATEWAY_API_KEY = env_str("PAYMENT_GATEWAY_API_KEY", "sk_test_sandbox")
# A sandbox deployment (the sandbox gateway, a provider's test mode) says so; otherwise production talks to
# the provider over HTTPS with a live key only.
PAYMENT_GATEWAY_ALLOW_SANDBOX = env_bool("PAYMENT_GATEWAY_ALLOW_SANDBOX", False)
if IS_PRODUCTION and not PAYMENT_GATEWAY_ALLOW_SANDBOX:
    if not PAYMENT_GATEWAY_URL.startswith("https://"):
        raise ImproperlyConfigured(
            "PAYMENT_GATEWAY_URL must be https:// in production (PAYMENT_GATEWAY_ALLOW_SANDBOX=true for a sandbox)"
        )
    if PAYMENT_GATEWAY_API_KEY.startswith(("sk_test_", "rk_test_")):
        raise ImproperlyConfigured(
            "PAYMENT_GATEWAY_API_KEY is a test-mode key: refused in production "
            "(PAYMENT_GATEWAY_ALLOW_SANDBOX=true for a sandbox)"
        )
PAYMENT_GATEWAY_CONNECT_TIMEOUT_SECONDS = env_float("PAYMENT_GATEWAY_CONNECT_TIMEOUT_SECONDS", 3.0)
PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS = env_float("PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS", 10.0)
# The provider's webhook signing secret (Stripe: whsec_...); without it POST /webhooks/stripe refuses
# every event (they only speed work up: the reconciler and the sweeper find everything without them).
PAYMENT_GATEWAY_WEBHOOK_SECRET = env_str("PAYMENT_GATEWAY_WEBHOOK_SECRET", None)
# How long an initiator actor (reconciler, sweeper, consumer, operator) holds a payment's claim: more
# than its longest conversation with the provider (a cancel, a retrieve, a refund and a list).
SETTLEMENT_LEASE_SECONDS = env_int("SETTLEMENT_LEASE_SECONDS", 120)
_SETTLEMENT_CALLS = 4
_SETTLEMENT_WORST_CASE = (
    _SETTLEMENT_CALLS * (3 * PAYMENT_GATEWAY_CONNECT_TIMEOUT_SECONDS + PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS)
    + 4 * FIRESTORE_TIMEOUT_SECONDS
)
if SETTLEMENT_LEASE_SECONDS <= _SETTLEMENT_WORST_CASE:
    raise ImproperlyConfigured(
        f"SETTLEMENT_LEASE_SECONDS={SETTLEMENT_LEASE_SECONDS} must exceed one settlement's worst case, "
        f"{_SETTLEMENT_WORST_CASE:.0f} s ({_SETTLEMENT_CALLS} provider calls and the saga-log writes): a claim "
        "must not lapse while its holder's call may be in flight"
    )

# Chaos hooks, honoured only when FAULT_INJECTION_ENABLED=true (refused in production).
FAULT_INJECTION_ENABLED = env_bool("FAULT_INJECTION_ENABLED", False)
if IS_PRODUCTION and FAULT_INJECTION_ENABLED:
    raise ImproperlyConfigured("FAULT_INJECTION_ENABLED=true is refused when BINPAY_ENV=production")
# Probability that the relay process dies (exit 70) after publishing a row and before marking it published.
OUTBOX_RELAY_CRASH_RATE = env_float("OUTBOX_RELAY_CRASH_RATE", 0.0)
if not 0.0 <= OUTBOX_RELAY_CRASH_RATE <= 1.0:
    raise ImproperlyConfigured("OUTBOX_RELAY_CRASH_RATE must be between 0 and 1")

# Prometheus metrics on their own port (binpay_common.metrics_server; read by gunicorn.conf.py and the
# long-running commands); the state gauges are refreshed this often (observability/metrics.py).
METRICS_REFRESH_SECONDS = env_float("METRICS_REFRESH_SECONDS", 15.0)
if METRICS_REFRESH_SECONDS <= 0:
    raise ImproperlyConfigured("METRICS_REFRESH_SECONDS must be positive")

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
# JSON lines with the request's ids, every secret setting redacted (binpay_common/logs.py); the values
# below are redacted even where they are defaults rather than the environment's.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "binpay_common.logs.JsonFormatter",
            "secrets": [SECRET_KEY, PAYMENT_GATEWAY_API_KEY, DATABASES["default"].get("PASSWORD")],
        }
    },
    "filters": {"context": {"()": "binpay_common.logs.ContextFilter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        # Request lines of 4xx answers are expected traffic, not warnings.
        "django.request": {"handlers": ["stdout"], "level": "ERROR", "propagate": False},
    },
}
