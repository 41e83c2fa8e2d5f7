"""A push delivery dies holding the payment's lease (a Cloud Run instance killed mid-charge).

Pub/Sub pushes the message again within seconds (retry policy 1-60 s, as deployed), long before the
dead delivery's lease lapses. Each of those deliveries used to answer 429 at once: five answers in
about 15 s burnt every delivery attempt, the message went to the dead-letter topic and the payment,
approved by the gateway, ended in needs_attention with the customer's funds held. A redelivery must
wait the lease out and finish the payment.
"""

from __future__ import annotations

import signal
import time
import uuid

import check_invariants
from google.cloud import firestore
from stack import build_stack

# One provider call: 3 connects of 1 s + a 6 s read; one delivery (five calls, plus Firestore) at worst
# 5 x 9 + 5 = 50 s, under the lease.
LEASE_SECONDS = 51
SLOW_CALL_MS = 5000
SETTINGS = {
    "SANDBOX_ALLOW_CONFIG": "true",
    "PAYMENT_GATEWAY_CONNECT_TIMEOUT_SECONDS": "1",
    "PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS": "6",
    "LEASE_SECONDS": str(LEASE_SECONDS),
    # Cloud Run's request timeout: a delivery that waits out a whole lease and then settles the
    # payment still answers inside it (the processor refuses to start otherwise): 51 + 50 + 10 s.
    "PUSH_REQUEST_TIMEOUT_SECONDS": "120",
}


def test_a_redelivery_waits_out_a_crashed_deliverys_lease_instead_of_burning_its_attempts(emulator_env, tmp_path):
    # The ack deadline is above the request timeout, as deployed (docs/architecture.md, timeouts).
    stack = build_stack("push", emulator_env, tmp_path, SETTINGS, ack_deadline_seconds=130)
    try:
        user = stack.create_funded_user("100.00")
        config = {"sandbox_latency_ms": SLOW_CALL_MS, "sandbox_latency_rate": 1.0}
        assert stack.gateway().post(f"{stack.gateway_url}/_sandbox/config", json=config, timeout=10).ok
        response = stack.api().post(
            f"{stack.initiator_url}/initiate-payment",
            data={"user_id": user["id"], "amount": "12.00"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        payment_id = response.json()["id"]

        # The fault: the processor dies while its delivery holds the lease and a provider call is in flight.
        saga = firestore.Client(project=stack.env["PROJECT_ID"]).collection("transactions").document(payment_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (saga.get().to_dict() or {}).get("lease_owner"):
            time.sleep(0.1)
        held = saga.get().to_dict() or {}
        assert held.get("lease_owner") and "CHARGED" not in (held.get("steps_done") or []), held
        stack.stop("processor-web", signal.SIGKILL)
        stack.restart("processor-web")

        settled = stack.wait_terminal([payment_id], timeout=LEASE_SECONDS + 90)[payment_id]
        received = [
            line
            for line in stack.log_lines("processor-web")
            if line.get("payment_id") == payment_id
            and str(line.get("message", "")).startswith("payment.initiated received")
        ]
        assert len(received) >= 2, "Pub/Sub never pushed the message again after the crash"
        assert settled["status"] == "completed", settled
        money = stack.money(payment_id)
        assert (money.succeeded, money.refunds) == (1, 0), money
        report = check_invariants.check(stack.invariant_sources(), [user["id"]], deposits=stack.deposits)
        assert report.violations == [], report.table()
    finally:
        stack.stop_all()
