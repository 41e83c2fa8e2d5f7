"""JSON log lines for Cloud Logging: severity, message, time, logger, correlation_id, payment_id."""

import logging
import re
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter

from core.context import correlation_id_var, payment_id_var

# Authorization values and BinPay API keys never reach a log line.
_SECRET_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1[REDACTED]"),
    (re.compile(r"bpk_[A-Za-z0-9_\-]+"), "bpk_[REDACTED]"),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\"',}]+"), r"\1[REDACTED]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = correlation_id_var.get()
        if not hasattr(record, "payment_id"):
            record.payment_id = payment_id_var.get()
        return True


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class GcpJsonFormatter(JsonFormatter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__("%(message)s", *args, **kwargs)

    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["severity"] = record.levelname
        log_record["time"] = datetime.fromtimestamp(record.created, UTC).isoformat()
        log_record["logger"] = record.name
        for key in ("correlation_id", "payment_id"):
            value = getattr(record, key, None)
            if value is not None:
                log_record[key] = str(value)
            else:
                log_record.pop(key, None)
        if "exc_info" in log_record:
            log_record["exc_info"] = redact(log_record["exc_info"])
