"""Head-of-line: payments waiting on a slow gateway must not hold up the others.

The pull worker runs one callback thread per message that flow control lets in. With too few slots,
a burst of slow charges (the gateway answering in seconds, as real ones do under load) fills every
slot, and fast payments published after them wait for a whole slow round before they start.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from stack import build_stack

SLOW_MS = 3000  # the sandbox waits this long on amounts ending in .57
SLOW, FAST = 20, 20


@pytest.fixture(scope="module")
def slow_gateway_stack(emulator_env, tmp_path_factory):
    stack = build_stack(
        "pull",
        emulator_env,
        tmp_path_factory.mktemp("stack-head-of-line"),
        extra_env={"SANDBOX_LATENCY_MS": str(SLOW_MS), "PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS": "10"},
    )
    yield stack
    dead = stack.dead()
    stack.stop_all()
    assert not dead, f"processes died during the run: {dead}"


def completed_at(payment: dict) -> datetime:
    """When the processor logged COMPLETED (a Firestore server timestamp: one clock for every payment)."""
    return datetime.fromisoformat(next(s["at"] for s in payment["saga_log"]["steps"] if s["step"] == "COMPLETED"))


def test_fast_payments_complete_while_slow_charges_are_still_waiting(slow_gateway_stack):
    stack = slow_gateway_stack
    user = stack.create_funded_user("5000.00")
    api = stack.api()

    def pay(amount: str) -> str:
        response = api.post(
            f"{stack.initiator_url}/initiate-payment", data={"user_id": user["id"], "amount": amount}, timeout=10
        )
        assert response.status_code == 202, response.text
        return response.json()["id"]

    slow = [pay(f"{index + 1}.57") for index in range(SLOW)]
    fast = [pay(f"{index + 1}.00") for index in range(FAST)]
    settled = stack.wait_terminal(slow + fast, timeout=120)

    assert {settled[payment_id]["status"] for payment_id in slow + fast} == {"completed"}
    # The fault happened: every slow charge waited at the gateway.
    for payment_id in slow:
        payment = settled[payment_id]
        assert completed_at(payment) - datetime.fromisoformat(payment["created_at"]) >= timedelta(milliseconds=SLOW_MS)
    first_slow = min(completed_at(settled[payment_id]) for payment_id in slow)
    waited = [payment_id for payment_id in fast if completed_at(settled[payment_id]) > first_slow]
    assert waited == [], f"{len(waited)} of {FAST} fast payments completed only after a slow charge came back"
