"""JSON log lines on stdout with GCP severity names, request context and secret redaction."""

from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
payment_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("payment_id", default=None)

_SEVERITY = {"WARN": "WARNING", "FATAL": "CRITICAL"}
_REDACTED = "[REDACTED]"


class ContextFilter(logging.Filter):
    """Adds severity and the request's correlation/payment ids; replaces secrets in the message."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        record.severity = _SEVERITY.get(record.levelname, record.levelname)
        for name, var in (("correlation_id", correlation_id_var), ("payment_id", payment_id_var)):
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        if self._secrets:
            message = record.getMessage()
            redacted = message
            for secret in self._secrets:
                redacted = redacted.replace(secret, _REDACTED)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


def json_formatter() -> JsonFormatter:
    """One JSON object per line: message, logger, time, severity and any `extra` fields."""
    return JsonFormatter(
        "{message}{name}{asctime}",
        style="{",
        rename_fields={"name": "logger", "asctime": "time"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure_logging(level: str, secrets: list[str]) -> None:
    """Route every logger (ours, werkzeug's) through one JSON handler on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter(secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # The app logs one access line per request itself; werkzeug's would be a second, non-JSON one.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
