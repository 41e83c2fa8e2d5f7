"""JSON log lines for Cloud Logging, the same in every service, with every secret redacted.

One line per record on stdout: `message`, `severity`, `time`, `logger`, the `correlation_id` and
`payment_id` of the request or message being handled (ContextFilter takes them from the context
variables below unless given as `extra`), any other `extra` fields, and, while a span is current, Cloud Logging's trace fields
(`logging.googleapis.com/trace`, `…/spanId`, `…/trace_sampled`:
https://cloud.google.com/logging/docs/structured-logging#structured_logging_special_fields), so
Cloud Trace shows a span's log lines.

Redaction runs on every string of the line (message, traceback, extra fields) just before it is
written, so nothing reaches stdout unredacted whichever logger wrote it. It removes:
- the value of every secret setting in the environment: a name ending in _KEY, _SECRET, _PASSWORD
  or _TOKEN (DJANGO_SECRET_KEY, PAYMENT_GATEWAY_API_KEY, ...), and the password of any URL-valued
  setting (DATABASE_URL), plus the values a service passes in (`secrets`: e.g. a key set by a test);
- secrets by their shape, wherever they come from: bearer tokens and Authorization header values,
  JWTs (Google OIDC tokens, signed or with Cloud Run's SIGNATURE_REMOVED_BY_GOOGLE), BinPay API keys
  (bpk_…, bp_test_…), Stripe-style secret and restricted keys (sk_live_…, rk_test_…) and webhook
  secrets (whsec_…), URL passwords (scheme://user:password@host) and password=… pairs.
Idempotency keys, correlation and payment ids, charge ids and publishable keys (pk_…) are not
secrets and stay readable.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from urllib.parse import unquote, urlsplit

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter as _PythonJsonFormatter

from .env import env_str

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
payment_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("payment_id", default=None)

REDACTED = "[REDACTED]"
SECRET_NAME_SUFFIXES = ("_KEY", "_SECRET", "_PASSWORD", "_TOKEN")
# Shorter values would redact ordinary words; every real secret is longer.
MIN_SECRET_LENGTH = 8
_SEVERITY = {"WARN": "WARNING", "FATAL": "CRITICAL"}
_TRACE_FIELD = "logging.googleapis.com/trace"
_SPAN_FIELD = "logging.googleapis.com/spanId"
_SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"

_SHAPES = [
    # A header or key=value holding credentials: the whole value, whatever its scheme.
    (re.compile(r"(?i)((?:authorization|password|passwd)[\"']?\s*[:=]\s*[\"']?)[^\"',;}\]\r\n]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',;}\]]+"), rf"\1{REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\b(bpk_|bp_test_|bp_live_)[A-Za-z0-9_-]+"), rf"\1{REDACTED}"),
    (re.compile(r"\b((?:sk|rk)_(?:test|live)_)[A-Za-z0-9_]+"), rf"\1{REDACTED}"),
    (re.compile(r"\b(whsec_)[A-Za-z0-9_]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@\"']*:)[^\s/@\"']+@"), rf"\1{REDACTED}@"),
]
# Every text a shape above can match contains one of these (lower-cased): the rest skip the scans.
_SHAPE_TRIGGERS = (
    "authorization",
    "passw",
    "bearer",
    "eyj",
    "bpk_",
    "bp_test_",
    "bp_live_",
    "k_test_",
    "k_live_",
    "whsec_",
    "://",
)


def is_secret_setting(name: str) -> bool:
    """Whether the environment variable `name` holds a secret (URL passwords are found by value)."""
    return name.upper().endswith(SECRET_NAME_SUFFIXES)


def secret_values(environ: Mapping[str, str]) -> set[str]:
    """The secret values of `environ`: every secret setting's value and every URL's password."""
    values = set()
    for name, value in environ.items():
        if is_secret_setting(name):
            values.add(value)
        elif "://" in value:
            values.update(_url_password(value))
    return {value for value in values if len(value) >= MIN_SECRET_LENGTH}


def _url_password(value: str) -> set[str]:
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        return set()
    return {password, unquote(password)} if password else set()


class Redactor:
    """Replaces known secret values, then anything shaped like a secret, with [REDACTED]."""

    def __init__(self, secrets: Iterable[str | None] = (), environ: Mapping[str, str] | None = None) -> None:
        values = secret_values(os.environ if environ is None else environ)
        values.update(secret for secret in secrets if secret and len(secret) >= MIN_SECRET_LENGTH)
        # Longest first: a value that contains another is removed whole.
        self._secrets = tuple(sorted(values, key=len, reverse=True))
        self._values = re.compile("|".join(re.escape(value) for value in self._secrets)) if self._secrets else None

    def __call__(self, text: str) -> str:
        # Plain substring tests first: nearly every line holds no secret, and seven regular-expression
        # scans per field were a measurable share of each service's CPU per payment.
        if self._values is not None and any(secret in text for secret in self._secrets):
            text = self._values.sub(REDACTED, text)
        lowered = text.lower()
        if any(trigger in lowered for trigger in _SHAPE_TRIGGERS):
            for pattern, replacement in _SHAPES:
                text = pattern.sub(replacement, text)
        return text


@contextlib.contextmanager
def log_context(*, correlation_id: str | None = None, payment_id: str | None = None) -> Iterator[None]:
    """Attach the ids to every log line written inside the block (thread- and task-local)."""
    correlation_token = correlation_id_var.set(correlation_id)
    payment_token = payment_id_var.set(payment_id)
    try:
        yield
    finally:
        payment_id_var.reset(payment_token)
        correlation_id_var.reset(correlation_token)


class ContextFilter(logging.Filter):
    """Stamps each record with the correlation and payment ids of the context it was logged in (unless
    given as `extra`): on the record, so every handler of it sees them, a test's capture included."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("correlation_id", correlation_id_var), ("payment_id", payment_id_var)):
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class JsonFormatter(_PythonJsonFormatter):
    """One JSON object per record: see the module docstring for the fields and the redaction.

    `secrets`: values to redact besides the environment's secret settings (e.g. settings a test set).
    """

    def __init__(self, *args, secrets: Iterable[str | None] = (), **kwargs) -> None:
        kwargs.setdefault("fmt", "%(message)s")
        super().__init__(*args, **kwargs)
        self.redact = Redactor(secrets)
        self.project_id = env_str("PROJECT_ID", None)

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["severity"] = _SEVERITY.get(record.levelname, record.levelname)
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_data["logger"] = record.name
        for name in ("correlation_id", "payment_id"):
            if log_data.get(name) is None:
                log_data.pop(name, None)
            else:
                log_data[name] = str(log_data[name])
        log_data.update(self.trace_fields())

    def trace_fields(self) -> dict[str, object]:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return {}
        trace_id = format(context.trace_id, "032x")
        return {
            _TRACE_FIELD: f"projects/{self.project_id}/traces/{trace_id}" if self.project_id else trace_id,
            _SPAN_FIELD: format(context.span_id, "016x"),
            _SAMPLED_FIELD: context.trace_flags.sampled,
        }

    def process_log_record(self, log_data: dict) -> dict:
        return {key: self._redacted(value) for key, value in log_data.items()}

    def _redacted(self, value: object) -> object:
        if isinstance(value, str):
            return self.redact(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {str(key): self._redacted(item) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._redacted(item) for item in value]
        if isinstance(value, datetime | date):
            return value.isoformat()
        # Anything else would be written as str(value) anyway: redact that.
        return self.redact(str(value))


def configure_logging(level: str = "INFO", secrets: Iterable[str | None] = ()) -> None:
    """Route every logger through one JSON handler on stdout (idempotent: the handler is replaced)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(secrets=secrets))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
