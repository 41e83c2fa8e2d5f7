"""Break BinPay on purpose and prove no money is lost, duplicated or stuck.

Each scenario builds a fresh pull-mode stack (devtools/stack.py), drives payments with mixed
outcomes through it while injecting one kind of fault (the last one all of them at once),
drains it, and runs the invariant checker, which must report zero violations.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import check_invariants
import pytest
from google.cloud import pubsub_v1
from stack import build_stack

# Amount endings (docs/contracts.md): 00 approve, 51/52 decline, 53 transient 5xx, 55 lost
# response, 57 slow. Scenarios add their own faults on top of this mix.
MIX = [("00", None)] * 10 + [("51", None), ("52", None), ("53", None), ("55", None), ("57", None)]
# Seconds a payment may stay pending before the reconciler settles it from the gateway's answer:
# short where the processor is taken down on purpose, else longer than a SIGKILLed worker's
# messages take to come back (their ack deadline, extended by the client before it died).
OUTAGE_SAGA_TIMEOUT = 20
SAGA_TIMEOUT = 60


class Disturbance:
    """A background loop that injects one fault repeatedly until stopped."""

    def __init__(self, action, every: tuple[float, float], seed: int):
        self.action, self.every, self.rng = action, every, random.Random(seed)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stopping.wait(self.rng.uniform(*self.every)):
            self.action(self.rng)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()


def kill_and_restart(stack, *names):
    """SIGKILL one of the processes and start it again; first revive any that died on their own
    (the relay's crash hook), as Kubernetes or honcho would."""

    def action(rng):
        for name in names:
            if stack.processes[name].poll() is not None:
                stack.stop(name)
                stack.restart(name)
        name = rng.choice(names)
        stack.stop(name, signal.SIGKILL)
        time.sleep(rng.uniform(0.1, 1.0))
        stack.restart(name)

    return action


def replace_relay(stack, crash_rate: str) -> None:
    """Run the outbox relay with the chaos hook that kills it between publishing and marking a row."""
    command, cwd, _ = stack.commands["initiator-relay"]
    stack.stop("initiator-relay")
    stack.start("initiator-relay", command, cwd, {"OUTBOX_RELAY_CRASH_RATE": crash_rate})


class Duplicator:
    """Re-publishes every message on the saga's topics once more (a duplicate delivery)."""

    def __init__(self, stack):
        self.stack = stack
        self.publisher = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        self.futures = []
        project = stack.env["PROJECT_ID"]
        for topic in ("binpay-initiation", "binpay-completion", "rollback"):
            tap = self.subscriber.subscription_path(project, f"chaos-tap-{topic}")
            topic_path = self.publisher.topic_path(project, topic)
            self.subscriber.create_subscription(name=tap, topic=topic_path)
            self.futures.append(self.subscriber.subscribe(tap, self._callback(topic_path)))

    def _callback(self, topic_path):
        def republish(message):
            if message.attributes.get("chaos_duplicate") != "1":
                attributes = {**message.attributes, "chaos_duplicate": "1"}
                self.publisher.publish(topic_path, message.data, **attributes).result(timeout=30)
            message.ack()

        return republish

    def close(self):
        for future in self.futures:
            future.cancel()
        self.subscriber.close()


def publish_poison(stack) -> None:
    """Unparseable data, a wrong schema version and outcomes for payments nobody has."""
    publisher = pubsub_v1.PublisherClient()
    project = stack.env["PROJECT_ID"]
    unknown = "00000000-0000-4000-8000-000000000000"
    poison = [
        ("binpay-initiation", b"{not json", {"event_type": "payment.initiated"}),
        ("binpay-initiation", b"\xff\xfe", {}),
        (
            "binpay-initiation",
            json.dumps({"event_type": "payment.initiated", "schema_version": 2, "payment_id": unknown}).encode(),
            {"event_type": "payment.initiated", "schema_version": "2", "payment_id": unknown},
        ),
        (
            "binpay-completion",
            json.dumps(
                {
                    "event_id": "11111111-1111-4111-8111-111111111111",
                    "event_type": "payment.completed",
                    "schema_version": 1,
                    "payment_id": unknown,
                    "charge_id": "ch_unknown",
                    "amount": 100,
                    "currency": "USD",
                    "completed_at": "2026-01-01T00:00:00Z",
                }
            ).encode(),
            {
                "event_type": "payment.completed",
                "event_id": "11111111-1111-4111-8111-111111111111",
                "payment_id": unknown,
                "schema_version": "1",
            },
        ),
        ("rollback", b"[]", {"event_type": "payment.rollback", "schema_version": "1"}),
    ]
    for topic, data, attributes in poison:
        publisher.publish(publisher.topic_path(project, topic), data, **attributes).result(timeout=30)


def drive(stack, users, count: int, seed: int, fault_share: float = 0.0, spread_seconds: float = 12) -> list[str]:
    """Submit `count` payments from 12 threads, spread over `spread_seconds` so the faults land
    while traffic flows; return the ids of the accepted ones."""
    rng = random.Random(seed)
    orders = []
    for index in range(count):
        ending, _ = rng.choice(MIX)
        fields = {}
        if rng.random() < fault_share:
            fields["metadata[simulate_failure]"] = "after_charge"
        orders.append((users[index % len(users)]["id"], f"{rng.randint(1, 40)}.{ending}", fields))

    started = time.monotonic()

    def submit(numbered):
        index, (user_id, amount, fields) = numbered
        time.sleep(max(0.0, started + index * spread_seconds / count - time.monotonic()))
        for attempt in range(5):
            response = stack.api().post(
                f"{stack.initiator_url}/initiate-payment",
                data={"user_id": user_id, "amount": amount, **fields},
                timeout=30,
            )
            if response.status_code < 500:
                break
            time.sleep(0.5 * (attempt + 1))
        assert response.status_code in (202, 402), response.text
        return response.json().get("id") if response.status_code == 202 else None

    with ThreadPoolExecutor(max_workers=12) as pool:
        return [payment_id for payment_id in pool.map(submit, enumerate(orders)) if payment_id]


def redeliveries(stack) -> int:
    """Deliveries of payment.initiated beyond the first per payment, from the processor's logs."""
    received: dict[str, int] = {}
    for name in ("processor-worker", "processor-web"):
        for line in stack.logs(name, tail=50_000_000).splitlines():
            if "payment.initiated received" in line:
                try:
                    payment_id = json.loads(line).get("payment_id")
                except ValueError:
                    continue
                received[payment_id] = received.get(payment_id, 0) + 1
    return sum(count - 1 for count in received.values())


SCENARIOS = [
    "worker_sigkill",
    "initiator_workers_sigkill",
    "gateway_faults",
    "duplicate_deliveries",
    "failure_after_charge",
    "poison_messages",
    "processor_down_past_timeout",
    "everything_at_once",
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario, emulator_env, tmp_path, payments_per_scenario, results):
    rng_seed = SCENARIOS.index(scenario) + 1
    outage = scenario in ("processor_down_past_timeout", "everything_at_once")
    saga_timeout = OUTAGE_SAGA_TIMEOUT if scenario == "processor_down_past_timeout" else SAGA_TIMEOUT
    extra_env = {
        "SANDBOX_ALLOW_CONFIG": "true",
        "PAYMENT_TIMEOUT_SECONDS": str(saga_timeout),
        "SAGA_TIMEOUT_SECONDS": str(saga_timeout),
        # A SIGKILLed worker's lease must lapse soon for the redelivery to take over; one gateway
        # call's worst case here is 3 attempts x (3 s connect + 2 s read) + 2 x 5 s backoff = 25 s.
        "LEASE_SECONDS": "30",
    }
    relay_crashes = scenario in ("initiator_workers_sigkill", "everything_at_once")
    if relay_crashes:
        extra_env["OUTBOX_PUBLISH_ON_COMMIT"] = "false"  # every event goes through the crashing relay
    stack = build_stack("pull", emulator_env, tmp_path, extra_env, ack_deadline_seconds=10)
    started = time.monotonic()
    duplicator = None
    accepted: list[str] = []
    try:
        stack.start(
            "initiator-reconciler",
            [sys.executable, "manage.py", "reconcile", "--loop", "--interval", "2"],
            "initiator",
        )
        users = [stack.create_funded_user("5000.00") for _ in range(8)]
        fault_share = 0.3 if scenario in ("failure_after_charge", "everything_at_once") else 0.0
        with ExitStack() as faults:
            if scenario in ("worker_sigkill", "everything_at_once"):
                faults.enter_context(Disturbance(kill_and_restart(stack, "processor-worker"), (1.0, 3.0), rng_seed))
            if relay_crashes:
                replace_relay(stack, "0.1")
                action = kill_and_restart(stack, "initiator-consumer", "initiator-relay")
                faults.enter_context(Disturbance(action, (1.0, 3.0), rng_seed + 100))
            if scenario in ("gateway_faults", "everything_at_once"):
                knobs = {"sandbox_fail_rate": 0.15, "sandbox_timeout_rate": 0.03, "sandbox_lost_response_rate": 0.1}
                knobs |= {"sandbox_latency_ms": 800, "sandbox_latency_rate": 0.1}
                answer = stack.gateway().post(f"{stack.gateway_url}/_sandbox/config", json=knobs, timeout=10)
                assert answer.status_code == 200, answer.text
            if scenario in ("duplicate_deliveries", "everything_at_once"):
                duplicator = Duplicator(stack)
            if scenario in ("poison_messages", "everything_at_once"):
                publish_poison(stack)
            # In the mix the outage comes after the other faults: the kill loop restarts workers.
            first_batch = payments_per_scenario * 2 // 3 if scenario == "everything_at_once" else 0
            if scenario != "processor_down_past_timeout":
                accepted = drive(stack, users, first_batch or payments_per_scenario, rng_seed, fault_share)
            if scenario in ("poison_messages", "everything_at_once"):
                publish_poison(stack)
        if relay_crashes:
            replace_relay(stack, "0")
        if outage:
            if accepted:  # the mix: let the first phase's backlog settle before the outage starts
                stack.wait_terminal(accepted, timeout=300)
            stack.stop("processor-worker")
            stack.stop("processor-web")
            # From here on, payments pending past the outage's short timeout are the reconciler's.
            reconcile, cwd, _ = stack.commands["initiator-reconciler"]
            stack.stop("initiator-reconciler")
            stack.start("initiator-reconciler", [*reconcile, "--older-than", str(OUTAGE_SAGA_TIMEOUT)], cwd)
            accepted += drive(stack, users, payments_per_scenario - first_batch, rng_seed + 7, fault_share)
            time.sleep(OUTAGE_SAGA_TIMEOUT + 8)  # past the timeout: the reconciler settles these payments
            stack.restart("processor-web")
            stack.restart("processor-worker")
        if scenario in ("gateway_faults", "everything_at_once"):
            calm = {"sandbox_fail_rate": 0, "sandbox_timeout_rate": 0, "sandbox_lost_response_rate": 0}
            stack.gateway().post(f"{stack.gateway_url}/_sandbox/config", json=calm | {"sandbox_latency_rate": 0})

        settled = stack.wait_terminal(accepted, timeout=300)
        drain_seconds = time.monotonic() - started
        time.sleep(3)  # late duplicates, if any, would change something now
        report = check_invariants.check(stack.invariant_sources(), [user["id"] for user in users])
        results.append(
            {
                "scenario": scenario,
                "payments": len(settled),
                "completed": report.by_status["completed"],
                "rolled_back": report.by_status["rolled_back"],
                "attention": report.by_status["needs_attention"],
                "charges": report.charges,
                "refunds": report.refunds,
                "redeliveries": redeliveries(stack),
                "drain_s": f"{drain_seconds:.0f}",
                "violations": len(report.violations),
            }
        )
        assert report.violations == [], report.table()
        assert not stack.dead(), f"processes died: {stack.dead()}"
    finally:
        if duplicator:
            duplicator.close()
        stack.stop_all()
