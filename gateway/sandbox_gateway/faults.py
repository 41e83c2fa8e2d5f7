"""What a provider never does on purpose, on demand: magic amounts and the run-time knob board.

Magic amounts (``amount % 100`` of the PaymentIntent) are deterministic, so a chaos scenario
can aim a fault at a payment and prove it from the access log (``fault`` field).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping

from .settings import Knobs


class Fault(enum.Enum):
    UNAVAILABLE = "unavailable"  # 503 before execution; nothing done, nothing saved
    TIMEOUT = "timeout"  # hang past the client's read timeout, then 504; nothing done
    LOST_RESPONSE = "lost_response"  # the effect is committed, the connection dropped
    LATENCY = "latency"  # the request holds its key while it waits, then executes
    SAVED_ERROR = "saved_error"  # a 500 saved under the key; the effect rolled back
    SAVED_ERROR_APPLIED = "saved_error_applied"  # a 500 saved under the key; the effect committed
    PROCESSING = "processing"  # a confirm leaves the intent in `processing` for a while
    REFUND_PENDING = "refund_pending"  # the refund answers `pending`, succeeds later
    REFUND_FAILURE = "refund_failure"  # the refund answers `pending`, fails later


# On confirming requests (POST .../confirm, or create with confirm=true). The saved 500s strike
# the first confirm of an intent and the first create of a metadata[payment_id] (every create
# without one): after that a request under a new key executes normally.
DECLINES = {
    51: ("card_declined", "generic_decline", "Your card was declined."),
    52: ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
}
FIRST_ATTEMPT_FAULTS = {53: Fault.UNAVAILABLE, 54: Fault.TIMEOUT, 55: Fault.LOST_RESPONSE}  # per idempotency key
ALWAYS_UNAVAILABLE = 56
SLOW = 57
CONFIRM_SAVED_ERRORS = {59: Fault.SAVED_ERROR_APPLIED, 60: Fault.SAVED_ERROR}
PROCESSING = 62
# On creating requests (POST /v1/payment_intents).
CREATE_SAVED_ERRORS = {58: Fault.SAVED_ERROR_APPLIED, 61: Fault.SAVED_ERROR}
# On refunds of the intent.
REFUND_FAULTS = {63: Fault.REFUND_FAILURE, 64: Fault.REFUND_PENDING}


class KnobBoard:
    """The knobs currently in force in this process (thread-safe)."""

    def __init__(self, knobs: Knobs) -> None:
        self._knobs = knobs
        self._lock = threading.Lock()

    def current(self) -> Knobs:
        with self._lock:
            return self._knobs

    def update(self, values: Mapping[str, object]) -> Knobs:
        """Apply public-named values (ValueError if any is invalid; then nothing changes)."""
        with self._lock:
            self._knobs = Knobs.parse(values, base=self._knobs)
            return self._knobs
