"""The fault suite's adapter to the payment gateway: every piece that talks to it, in one place.

Against the sandbox gateway (gateway/, docs/contracts.md "Knobs for chaos runs"):
  knobs         POST /_sandbox/config (allowed by SANDBOX_ALLOW_CONFIG): fault rates and latency
  late charges  POST /v1/charges with an idempotency key of our own, after the payment rolled back
  ledger        GET /v1/ledger?reference=<payment id> (through devtools/stack.py): refunds per payment
  access log    the gateway's JSON access lines (logger sandbox_gateway.access): fault answers, slow charges
A port to another gateway replaces these four and keeps the pieces' names, hooks and proofs.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import check_invariants
from faults import Fault, Run, completed_message, proof
from google.cloud import pubsub_v1

# The processor's read timeout on the gateway in every stack.
READ_TIMEOUT = 2
# What every stack sets for the gateway conversation.
SETTINGS = {"SANDBOX_ALLOW_CONFIG": "true", "PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT)}
# The knobs that make the gateway answer normally again.
HEALED = {"sandbox_fail_rate": 0, "sandbox_timeout_rate": 0, "sandbox_lost_response_rate": 0, "sandbox_latency_rate": 0}


def set_knobs(stack, **knobs) -> None:
    answer = stack.gateway().post(f"{stack.gateway_url}/_sandbox/config", json=knobs, timeout=10)
    assert answer.status_code == 200, answer.text


class GatewayKnobs(Fault):
    """The gateway misbehaves from the traffic's start until just before the drain."""

    def knobs(self) -> dict[str, float]:
        raise NotImplementedError

    @contextmanager
    def during_traffic(self, run: Run):
        set_knobs(run.stack, **self.knobs())
        yield

    def heal(self, run: Run) -> None:
        set_knobs(run.stack, **HEALED)


@dataclass(frozen=True)
class FlakyGateway(GatewayKnobs):
    """5xx answers, hangs past the read timeout, dropped responses and some latency."""

    fail_rate: float = 0.15
    timeout_rate: float = 0.03
    lost_response_rate: float = 0.1
    latency_ms: int = 800
    latency_rate: float = 0.1
    proofs = ("gateway_answered_faults",)

    def knobs(self) -> dict[str, float]:
        return {
            "sandbox_fail_rate": self.fail_rate,
            "sandbox_timeout_rate": self.timeout_rate,
            "sandbox_lost_response_rate": self.lost_response_rate,
            "sandbox_latency_ms": self.latency_ms,
            "sandbox_latency_rate": self.latency_rate,
        }


@dataclass(frozen=True)
class SlowGateway(GatewayKnobs):
    """Every charge takes longer than the processor's read timeout."""

    latency_ms: int = 5000
    proofs = ("charges_outlasted_read_timeout",)

    def knobs(self) -> dict[str, float]:
        return {"sandbox_latency_ms": self.latency_ms, "sandbox_latency_rate": 1.0}

    def after_drain(self, run: Run) -> None:
        time.sleep(self.latency_ms / 1000 + 2)  # charges still sleeping at the gateway commit now


def refunded(stack, payment_id: str) -> bool:
    """The gateway refunded the payment's charges and none stands."""
    entry = stack.ledger(payment_id)
    return bool(entry["refunds"]) and not check_invariants.standing(entry)


def fault_answers(stack) -> tuple[int, int]:
    """From the gateway's JSON access log: answers that were faults (5xx, timeouts, dropped responses),
    and charge answers slower than the processor's read timeout."""
    faults = slow = 0
    for line in stack.log_lines("gateway"):
        if line.get("logger") != "sandbox_gateway.access":
            continue
        if line.get("status", 0) >= 500 or line.get("response_dropped"):
            faults += 1
        if line.get("path") == "/v1/charges" and line.get("duration_ms", 0) > READ_TIMEOUT * 1000:
            slow += 1
    return faults, slow


class PlantedLateCharges(Fault):
    """Charges the gateway commits after their payment rolled back (key late-<id>, as a charge that
    landed late would), with a payment.completed for every other one; the sweeper must refund them."""

    proofs = ("late_charges_planted",)

    def settings(self, mode: str) -> dict[str, str]:
        return {"LATE_CHARGE_CHECK_INTERVAL_SECONDS": "5"}  # the sweeper looks again soon after the rollback

    def after_drain(self, run: Run) -> None:
        run.planted = self.plant(run)
        self.wait_refunded(run, run.planted, timeout=90)

    def plant(self, run: Run) -> list[str]:
        stack = run.stack
        publisher = pubsub_v1.PublisherClient()
        topic = publisher.topic_path(stack.env["PROJECT_ID"], "binpay-completion")
        planted = []
        for payment_id, order in sorted(run.driven.accepted.items()):
            payment = run.settled[payment_id]
            if order.fault != "before_charge" or payment["status"] != "rolled_back":
                continue
            answer = stack.gateway().post(
                f"{stack.gateway_url}/v1/charges",
                json={"amount": payment["amount"], "currency": payment["currency"], "reference": payment_id},
                headers={"Idempotency-Key": f"late-{payment_id}"},
                timeout=30,
            )
            assert answer.status_code == 201, answer.text
            run.counts.add("late_charges")
            planted.append(payment_id)
            if len(planted) % 2:  # every other one: the sweeper must find the rest on its own
                data, attributes = completed_message(
                    payment_id, answer.json()["id"], payment["amount"], payment["currency"]
                )
                publisher.publish(topic, data, **attributes).result(timeout=30)
                run.counts.add("late_completions")
        return planted

    @staticmethod
    def wait_refunded(run: Run, payment_ids: list[str], timeout: float) -> None:
        """Wait (up to `timeout`) until the gateway shows each payment's charges refunded and its saga
        log ends as its status allows; the invariant checker judges what is left."""
        stack = run.stack
        api = stack.api()
        deadline = time.monotonic() + timeout
        remaining = set(payment_ids)
        while remaining and time.monotonic() < deadline:
            for payment_id in list(remaining):
                if check_invariants.standing(stack.ledger(payment_id)):
                    continue
                payment = api.get(f"{stack.initiator_url}/payments/{payment_id}", timeout=10).json()
                steps = (payment.get("saga_log") or {}).get("steps") or [{}]
                if steps[-1].get("step") in check_invariants.PATHS.last_steps(payment["status"]):
                    remaining.discard(payment_id)
            time.sleep(1)


@proof
def gateway_answered_faults(run: Run) -> None:
    assert run.row["gw_faults"] > 0, "the gateway answered no fault"


@proof
def charges_outlasted_read_timeout(run: Run) -> None:
    assert run.row["gw_slow"] > 0, "no charge was slower than the processor's read timeout"


@proof
def late_charges_planted(run: Run) -> None:
    assert run.planted and run.counts["late_completions"] > 0
