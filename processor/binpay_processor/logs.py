"""JSON log lines on stdout with GCP severity names, correlation/payment ids and secret redaction."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
payment_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("payment_id", default=None)

REDACTED = "[REDACTED]"
_BEARER = re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]+")
_SEVERITY = {"WARN": "WARNING", "FATAL": "CRITICAL"}


@contextlib.contextmanager
def log_context(*, correlation_id: str | None = None, payment_id: str | None = None) -> Iterator[None]:
    """Attach the ids to every log line written inside the block (thread- and task-local)."""
    tokens = [correlation_id_var.set(correlation_id), payment_id_var.set(payment_id)]
    try:
        yield
    finally:
        payment_id_var.reset(tokens[1])
        correlation_id_var.reset(tokens[0])


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("correlation_id", correlation_id_var), ("payment_id", payment_id_var)):
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class RedactionFilter(logging.Filter):
    """Removes bearer tokens and configured secret values from the rendered message."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _BEARER.sub(f"Bearer {REDACTED}", message)
        for secret in self.secrets:
            redacted = redacted.replace(secret, REDACTED)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class GcpJsonFormatter(JsonFormatter):
    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["severity"] = _SEVERITY.get(record.levelname, record.levelname)
        log_record["logger"] = record.name
        log_record["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_record.pop("levelname", None)
        log_record.pop("name", None)
        log_record.pop("asctime", None)


def configure_logging(level: str = "INFO", secrets: Iterable[str | None] = ()) -> None:
    """Install one JSON stdout handler on the root logger (idempotent: safe to call per app)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler = next((h for h in root.handlers if getattr(h, "binpay_json", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stdout)
        handler.binpay_json = True
        handler.setFormatter(GcpJsonFormatter("%(message)s %(levelname)s %(name)s %(asctime)s"))
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
    for existing in [f for f in handler.filters if isinstance(f, RedactionFilter)]:
        handler.removeFilter(existing)
    handler.addFilter(RedactionFilter(secrets))
