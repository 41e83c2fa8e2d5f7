"""Run-time chaos knobs and the sandbox magic amounts."""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping

from .settings import Knobs


class Fault(enum.Enum):
    UNAVAILABLE = "unavailable"  # 503 before anything is done
    TIMEOUT = "timeout"  # hang, then 504; nothing is done
    LOST_RESPONSE = "lost_response"  # the work is done and committed, the response never sent


# amount % 100 -> what the charge does (docs/contracts.md, "Sandbox magic amounts").
DECLINE_CODES = {51: "card_declined", 52: "insufficient_funds"}
FIRST_ATTEMPT_FAULTS = {53: Fault.UNAVAILABLE, 54: Fault.TIMEOUT, 55: Fault.LOST_RESPONSE}
ALWAYS_UNAVAILABLE = 56
SLOW = 57


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
