"""Per-request / per-message context that every log line carries."""

from contextvars import ContextVar

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
payment_id_var: ContextVar[str | None] = ContextVar("payment_id", default=None)
