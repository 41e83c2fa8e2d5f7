"""Break BinPay on purpose and prove no money is lost, duplicated or stuck.

Each scenario builds a fresh stack (devtools/stack.py) in pull or push mode, drives payments with
mixed outcomes through it while injecting its faults, drains it, and runs the invariant checker,
which must report zero violations. Every scenario also proves that its faults happened (kills with
sagas in flight, redeliveries, relay crashes, duplicates, gateway fault answers, refunds, late
charges): a fault suite whose faults did not fire proves nothing.
"""

from __future__ import annotations

import collections
import json
import random
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime

import check_invariants
import pytest
import requests
from google.cloud import firestore, pubsub_v1
from stack import build_stack

# Amount endings (docs/contracts.md): 00 approve, 51/52 decline, 53 transient 5xx, 55 lost
# response, 57 slow. Scenarios add their own faults on top of this mix.
MIX = ["00"] * 10 + ["51", "52", "53", "55", "57"]
DECLINES = {"51", "52"}
# The relay's crash hook exits with this code (initiator/payments/outbox.py).
RELAY_CRASH_EXIT_CODE = 70
# The processor's read timeout on the gateway in every stack (devtools/stack.py).
GATEWAY_READ_TIMEOUT = 2
# Kills end like production. A killed worker's messages come back once their ack deadline lapses:
# 10 s on the subscription, but a streaming-pull client extends it (~60 s) while it holds them, and
# a message can go to a worker that is killed in turn; a killed worker's lease lapses after
# LEASE_SECONDS. The processor stops retrying an ambiguous gateway after SAGA_TIMEOUT, and the
# reconciler settles a payment only after PAYMENT_TIMEOUT, which such redeliveries always beat.
ACK_DEADLINE = 10
LEASE_SECONDS = 60
# Push mode as deployed on Cloud Run: the request timeout leaves room to wait out a killed delivery's
# lease (60 s) and then handle (55 s) and publish (10 s); Pub/Sub waits longer than that for the answer.
PUSH_REQUEST_TIMEOUT = 130
PUSH_ACK_DEADLINE = 140
SAGA_TIMEOUT = 240
PAYMENT_TIMEOUT = 300
REDRIVE_AFTER = 60
# Where the processor is taken down on purpose, the reconciler settles what stays pending past this.
OUTAGE_TIMEOUT = 20
# The slow gateway of the race scenarios: every charge takes longer than the processor's read timeout.
SLOW_GATEWAY_MS = 5000
# The racing reconciler's timeout: it looks at payments whose charges are still in flight.
RACING_RECONCILER_TIMEOUT = 3

SCENARIOS = [
    "worker_sigkill",
    "initiator_workers_sigkill",
    "gateway_faults",
    "duplicate_deliveries",
    "failure_after_charge",
    "poison_messages",
    "processor_down_past_timeout",
    "everything_at_once",
    "slow_gateway_past_saga_timeout",
    "reconciler_races_inflight_charge",
    "completion_after_rollback",
]
KILL_PROCESSOR = {"worker_sigkill", "everything_at_once"}
KILL_INITIATOR = {"initiator_workers_sigkill", "everything_at_once"}
GATEWAY_FAULTS = {"gateway_faults", "everything_at_once"}
DUPLICATES = {"duplicate_deliveries", "everything_at_once"}
AFTER_CHARGE = {"failure_after_charge", "everything_at_once"}
POISON = {"poison_messages", "everything_at_once"}
OUTAGE = {"processor_down_past_timeout", "everything_at_once"}
SLOW_GATEWAY = {"slow_gateway_past_saga_timeout", "reconciler_races_inflight_charge"}
# Only workers die here and the gateway answers normally: every payment it approves must complete.
ONLY_WORKERS_KILLED = {"worker_sigkill", "initiator_workers_sigkill"}
# The processor and the initiator processes a kill hits, per delivery mode.
PROCESSOR_VICTIMS = {"pull": ["processor-worker"], "push": ["processor-web"]}
INITIATOR_VICTIMS = {"pull": ["initiator-consumer", "initiator-relay"], "push": ["initiator-web", "initiator-relay"]}
STREAMING_PULL_SUBSCRIBERS = {"processor-worker", "initiator-consumer"}
PROCESSOR_DONE = {"COMPLETED", "FAILED", "REFUNDED", "CAPTURED", "COMPENSATED", "NEEDS_ATTENTION"}
CLOSING_STEPS = {"CAPTURED", "COMPENSATED", "NEEDS_ATTENTION"}


class Faults(collections.Counter):
    """Thread-safe counts of the faults a scenario injected or observed."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()

    def add(self, name: str, count: int = 1) -> None:
        with self.lock:
            self[name] += count


@dataclass(frozen=True)
class Order:
    user_id: int
    amount: str
    ending: str
    fault: str | None  # the processor's simulate_failure point, if any


@dataclass
class Driven:
    """What the test drove: its own record, against which the system's counts are asserted."""

    orders: int = 0
    accepted: dict[str, Order] = field(default_factory=dict)
    refused: int = 0  # explicit 402 answers (insufficient funds)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        with self.lock:
            return list(self.accepted)


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


class SagaProbe:
    """Reads the saga log just before a kill: how many sagas wait for the process about to die?"""

    def __init__(self, stack, driven: Driven):
        self.collection = firestore.Client(project=stack.env["PROJECT_ID"]).collection("transactions")
        self.driven = driven

    def in_flight(self, victim: str) -> int:
        """Sagas accepted whose next step is the victim's: not yet logged or without the processor's
        outcome (a processor), or not yet ended by the initiator (an initiator process)."""
        documents = {doc.id: set(doc.to_dict().get("steps_done") or []) for doc in self.collection.stream()}
        unlogged = sum(1 for payment_id in self.driven.ids() if payment_id not in documents)
        waiting_for = PROCESSOR_DONE if victim.startswith("processor") else CLOSING_STEPS
        return unlogged + sum(1 for steps in documents.values() if not waiting_for & steps)


def reap(stack, name: str, faults: Faults, sig: int = signal.SIGTERM) -> None:
    """Stop a process, counting a relay crash (its hook's exit code) if it had died that way."""
    if stack.processes[name].poll() == RELAY_CRASH_EXIT_CODE:
        faults.add("relay_crash")
    stack.stop(name, sig)


def kill_and_restart(stack, names: list[str], faults: Faults, probe: SagaProbe):
    """SIGKILL one of the processes, while a saga is in flight in it, and start it again; first revive
    any that died on their own (the relay's crash hook), as Kubernetes or honcho would.

    A streaming-pull subscriber is killed once per scenario: on the emulator (0.8.20) a subscription
    with a retry policy stops delivering for minutes once a second subscriber dies before the first
    one's messages came back (measured, see the README); production redelivers after the deadline.
    """
    killed_subscribers: set[str] = set()

    def action(rng):
        for name in names:
            if stack.processes[name].poll() is not None:
                reap(stack, name, faults)
                stack.restart(name)
        candidates = [name for name in names if name not in killed_subscribers]
        if not candidates:
            return
        name = rng.choice(candidates)
        in_flight = probe.in_flight(name)
        if not in_flight and name in STREAMING_PULL_SUBSCRIBERS:
            return  # its one kill must hit a saga in flight: try again next round
        stack.stop(name, signal.SIGKILL)
        faults.add("kills")
        faults.add("kills_in_flight", 1 if in_flight else 0)
        if name in STREAMING_PULL_SUBSCRIBERS:
            killed_subscribers.add(name)
        time.sleep(rng.uniform(0.1, 1.0))
        stack.restart(name)

    return action


def replace_relay(stack, crash_rate: str, faults: Faults) -> None:
    """Run the outbox relay with the chaos hook that kills it between publishing and marking a row."""
    command, cwd, _ = stack.commands["initiator-relay"]
    reap(stack, "initiator-relay", faults)
    stack.start("initiator-relay", command, cwd, {"OUTBOX_RELAY_CRASH_RATE": crash_rate})


def restart_reconciler(stack, *options: str) -> None:
    command = [sys.executable, "manage.py", "reconcile", "--loop", "--interval", "1", *options]
    if "initiator-reconciler" in stack.processes:
        stack.stop("initiator-reconciler")
    stack.start("initiator-reconciler", command, "initiator")


class Duplicator:
    """Re-publishes every message on the saga's topics once more (a duplicate delivery)."""

    def __init__(self, stack, faults: Faults):
        self.faults = faults
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
                self.faults.add("duplicates")
            message.ack()

        return republish

    def close(self):
        for future in self.futures:
            future.cancel()
        self.subscriber.close()


def publish_poison(stack, faults: Faults) -> None:
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
        ("binpay-completion", *completed_message(unknown, "ch_unknown", 100, "USD")),
        ("rollback", b"[]", {"event_type": "payment.rollback", "schema_version": "1"}),
    ]
    for topic, data, attributes in poison:
        publisher.publish(publisher.topic_path(project, topic), data, **attributes).result(timeout=30)
    faults.add("poison", len(poison))


def completed_message(payment_id: str, charge_id: str, amount: int, currency: str) -> tuple[bytes, dict]:
    """A valid payment.completed event (contracts/events/payment.completed.schema.json) and its attributes."""
    event_id = str(uuid.uuid4())
    event = {
        "event_id": event_id,
        "event_type": "payment.completed",
        "schema_version": 1,
        "payment_id": payment_id,
        "charge_id": charge_id,
        "amount": amount,
        "currency": currency,
        "completed_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    attributes = {
        "event_type": "payment.completed",
        "event_id": event_id,
        "payment_id": payment_id,
        "schema_version": "1",
    }
    return json.dumps(event).encode(), attributes


def drive(
    stack,
    users,
    count: int,
    seed: int,
    driven: Driven,
    fault: str | None = None,
    fault_share: float = 0.0,
    spread_seconds: float = 12,
) -> None:
    """Submit `count` payments from 12 threads, spread over `spread_seconds` so the faults land while
    traffic flows, into `driven`. A payment given the processor `fault` gets an amount the gateway
    approves, so the fault is the only thing that can fail it."""
    rng = random.Random(seed)
    orders = []
    for index in range(count):
        ending = rng.choice(MIX)
        order_fault = fault if rng.random() < fault_share else None
        if order_fault:
            ending = "00"
        orders.append(Order(users[index % len(users)]["id"], f"{rng.randint(1, 40)}.{ending}", ending, order_fault))
    started = time.monotonic()

    def submit(numbered):
        index, order = numbered
        time.sleep(max(0.0, started + index * spread_seconds / count - time.monotonic()))
        fields = {"metadata[simulate_failure]": order.fault} if order.fault else {}
        key = uuid.uuid4().hex  # the same key on every retry: a retry never makes a second payment
        for attempt in range(20):
            try:
                response = stack.api().post(
                    f"{stack.initiator_url}/initiate-payment",
                    data={"user_id": order.user_id, "amount": order.amount, **fields},
                    headers={"Idempotency-Key": key},
                    timeout=30,
                )
            except requests.ConnectionError:  # the initiator's web server is being restarted
                time.sleep(0.5 * (attempt + 1))
                continue
            # 5xx, or 409 idempotency_key_in_use while the first attempt still runs: ask again.
            if response.status_code < 500 and response.status_code != 409:
                break
            time.sleep(0.5 * (attempt + 1))
        assert response.status_code in (202, 402), response.text
        with driven.lock:
            if response.status_code == 202:
                driven.accepted[response.json()["id"]] = order
            else:
                driven.refused += 1

    driven.orders += count
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(submit, enumerate(orders)))


def set_gateway(stack, **knobs) -> None:
    answer = stack.gateway().post(f"{stack.gateway_url}/_sandbox/config", json=knobs, timeout=10)
    assert answer.status_code == 200, answer.text


def plant_late_charges(stack, driven: Driven, settled: dict[str, dict], faults: Faults) -> list[str]:
    """Finding 3: charges the gateway committed after the payment was rolled back (key late-<id>, as a
    charge that landed late would), and a payment.completed for every other one."""
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(stack.env["PROJECT_ID"], "binpay-completion")
    planted = []
    for payment_id, order in sorted(driven.accepted.items()):
        payment = settled[payment_id]
        if order.fault != "before_charge" or payment["status"] != "rolled_back":
            continue
        answer = stack.gateway().post(
            f"{stack.gateway_url}/v1/charges",
            json={"amount": payment["amount"], "currency": payment["currency"], "reference": payment_id},
            headers={"Idempotency-Key": f"late-{payment_id}"},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        faults.add("late_charges")
        planted.append(payment_id)
        if len(planted) % 2:  # every other one: the sweeper must find the rest on its own
            data, attributes = completed_message(
                payment_id, answer.json()["id"], payment["amount"], payment["currency"]
            )
            publisher.publish(topic, data, **attributes).result(timeout=30)
            faults.add("late_completions")
    return planted


def wait_refunded(stack, payment_ids: list[str], timeout: float) -> None:
    """Wait (up to `timeout`) until the gateway shows each payment's charges refunded and its saga log
    ends as its status allows; the invariant checker judges what is left."""
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


def processor_redeliveries(stack) -> int:
    """Deliveries of payment.initiated beyond the first per payment, from the processor's logs."""
    received = collections.Counter(
        line.get("payment_id")
        for name in ("processor-worker", "processor-web")
        for line in stack.log_lines(name)
        if str(line.get("message", "")).startswith("payment.initiated received")
    )
    return sum(count - 1 for count in received.values())


def gateway_fault_answers(stack) -> tuple[int, int]:
    """From the gateway's JSON access log: answers that were faults (5xx, timeouts, dropped responses),
    and charge answers slower than the processor's read timeout."""
    faults = slow = 0
    for line in stack.log_lines("gateway"):
        if line.get("logger") != "sandbox_gateway.access":
            continue
        if line.get("status", 0) >= 500 or line.get("response_dropped"):
            faults += 1
        if line.get("path") == "/v1/charges" and line.get("duration_ms", 0) > GATEWAY_READ_TIMEOUT * 1000:
            slow += 1
    return faults, slow


def reconciler_counted(stack, result: str) -> int:
    """A reconciler count summed over its passes (examined, redriven, ...: the counts its pass lines carry)."""
    lines = stack.log_lines("initiator-reconciler")
    return sum((line.get("reconcile_counts") or {}).get(result, 0) for line in lines)


def stack_settings(scenario: str, mode: str) -> dict[str, str]:
    env = {
        "SANDBOX_ALLOW_CONFIG": "true",
        "PAYMENT_TIMEOUT_SECONDS": str(PAYMENT_TIMEOUT),
        # The emulator does not deliver again some messages a killed worker held (README): the
        # reconciler publishes those again once no lease holds them, as it would a dead-lettered one.
        "PAYMENT_REDRIVE_AFTER_SECONDS": str(REDRIVE_AFTER),
        # The emulator goes on dispatching to a killed worker's stream (measured: 7 to 12 of 20 messages
        # published after the kill reached the new worker): each such message comes back after the
        # workers' lease-extension bound, so the shortest bound Pub/Sub allows.
        "PUBSUB_MAX_LEASE_EXTENSION_SECONDS": "10",
        "SAGA_TIMEOUT_SECONDS": str(SAGA_TIMEOUT),
        # One delivery's worst case here is a charge and a cancel, each 3 attempts x (3 s connect +
        # 2 s read) + 2 x 5 s backoff = 25 s, plus Firestore: the lease outlives it (the processor
        # refuses to start otherwise), and a killed worker's lease lapses soon after.
        "LEASE_SECONDS": str(LEASE_SECONDS),
        "GATEWAY_READ_TIMEOUT": str(GATEWAY_READ_TIMEOUT),
    }
    if mode == "push":
        env["PUSH_REQUEST_TIMEOUT_SECONDS"] = str(PUSH_REQUEST_TIMEOUT)
    if scenario == "slow_gateway_past_saga_timeout":
        env["SAGA_TIMEOUT_SECONDS"] = "1"  # every payment reaches the processor "past the saga timeout"
    if scenario == "completion_after_rollback":
        env["LATE_CHARGE_CHECK_INTERVAL_SECONDS"] = "5"  # the sweeper looks again soon after the rollback
    if scenario in KILL_INITIATOR:
        env["OUTBOX_PUBLISH_ON_COMMIT"] = "false"  # every event goes through the crashing relay
    return env


@pytest.mark.parametrize("mode", ["pull", "push"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario, mode, emulator_env, tmp_path, payments_per_scenario, results):
    seed = SCENARIOS.index(scenario) + 1
    ack_deadline = PUSH_ACK_DEADLINE if mode == "push" else ACK_DEADLINE
    stack = build_stack(mode, emulator_env, tmp_path, stack_settings(scenario, mode), ack_deadline_seconds=ack_deadline)
    started = time.monotonic()
    faults = Faults()
    driven = Driven()
    duplicator = None
    row = {"scenario": scenario, "mode": mode, "outcome": "failed", "payments": 0, "violations": 0}
    try:
        if scenario == "reconciler_races_inflight_charge":
            restart_reconciler(stack, "--older-than", str(RACING_RECONCILER_TIMEOUT))
        else:
            restart_reconciler(stack)
        users = [stack.create_funded_user("5000.00") for _ in range(8)]
        probe = SagaProbe(stack, driven)
        with ExitStack() as running_faults:
            if scenario in KILL_PROCESSOR:
                action = kill_and_restart(stack, PROCESSOR_VICTIMS[mode], faults, probe)
                running_faults.enter_context(Disturbance(action, (1.0, 3.0), seed))
            if scenario in KILL_INITIATOR:
                replace_relay(stack, "0.1", faults)
                action = kill_and_restart(stack, INITIATOR_VICTIMS[mode], faults, probe)
                running_faults.enter_context(Disturbance(action, (1.0, 3.0), seed + 100))
            if scenario in GATEWAY_FAULTS:
                set_gateway(
                    stack,
                    sandbox_fail_rate=0.15,
                    sandbox_timeout_rate=0.03,
                    sandbox_lost_response_rate=0.1,
                    sandbox_latency_ms=800,
                    sandbox_latency_rate=0.1,
                )
            if scenario in SLOW_GATEWAY:
                set_gateway(stack, sandbox_latency_ms=SLOW_GATEWAY_MS, sandbox_latency_rate=1.0)
            if scenario in DUPLICATES:
                duplicator = Duplicator(stack, faults)
            if scenario in POISON:
                publish_poison(stack, faults)
            # In the mix the outage comes after the other faults: the kill loop restarts workers.
            first_batch = payments_per_scenario * 2 // 3 if scenario == "everything_at_once" else 0
            if scenario in AFTER_CHARGE:
                drive(stack, users, first_batch or payments_per_scenario, seed, driven, "after_charge", 0.3)
            elif scenario == "completion_after_rollback":
                drive(stack, users, payments_per_scenario, seed, driven, "before_charge", 0.4)
            elif scenario != "processor_down_past_timeout":
                drive(stack, users, payments_per_scenario, seed, driven)
            if scenario in POISON:
                publish_poison(stack, faults)
        if scenario in KILL_INITIATOR:
            replace_relay(stack, "0", faults)
        if scenario in OUTAGE:
            if driven.accepted:  # the mix: let the first phase's backlog settle before the outage starts
                stack.wait_terminal(driven.ids(), timeout=PAYMENT_TIMEOUT + 300)
            for name in PROCESSOR_VICTIMS["pull"] if mode == "pull" else []:
                stack.stop(name)
            stack.stop("processor-web")
            # From here on, payments pending past the outage's short timeout are the reconciler's.
            restart_reconciler(stack, "--older-than", str(OUTAGE_TIMEOUT))
            drive(stack, users, payments_per_scenario - first_batch, seed + 7, driven)
            time.sleep(OUTAGE_TIMEOUT + 8)  # past the timeout: the reconciler settles these payments
            stack.restart("processor-web")
            if mode == "pull":
                stack.restart("processor-worker")
        if scenario in GATEWAY_FAULTS | SLOW_GATEWAY:
            set_gateway(
                stack,
                sandbox_fail_rate=0,
                sandbox_timeout_rate=0,
                sandbox_lost_response_rate=0,
                sandbox_latency_rate=0,
            )

        settled = stack.wait_terminal(driven.ids(), timeout=PAYMENT_TIMEOUT + 300)
        planted = []
        if scenario == "completion_after_rollback":
            planted = plant_late_charges(stack, driven, settled, faults)
            wait_refunded(stack, planted, timeout=90)
        if scenario in SLOW_GATEWAY:
            time.sleep(SLOW_GATEWAY_MS / 1000 + 2)  # charges still sleeping at the gateway commit now
        row["drain_s"] = f"{time.monotonic() - started:.0f}"
        time.sleep(3)  # late duplicates, if any, would change something now
        report = check_invariants.check(
            stack.invariant_sources(), [user["id"] for user in users], deposits=stack.deposits
        )
        gateway_faults, gateway_slow = gateway_fault_answers(stack)
        after_charge = [pid for pid, order in driven.accepted.items() if order.fault == "after_charge"]
        refunded_after_charge = sum(
            1
            for pid in after_charge
            if (entry := stack.ledger(pid))["refunds"] and not check_invariants.standing(entry)
        )
        row.update(
            payments=report.payments,
            completed=report.by_status["completed"],
            rolled_back=report.by_status["rolled_back"],
            attention=report.by_status["needs_attention"],
            charges=report.charges,
            refunds=report.refunds,
            kills=faults["kills"],
            in_flight=faults["kills_in_flight"],
            relay_crash=faults["relay_crash"],
            duplicates=faults["duplicates"],
            redeliver=processor_redeliveries(stack),
            redriven=reconciler_counted(stack, "redriven"),
            gw_faults=gateway_faults,
            gw_slow=gateway_slow,
            late=faults["late_charges"],
            violations=len(report.violations),
        )

        # What was driven is what the system holds: every accepted payment, nothing else.
        assert len(driven.accepted) + driven.refused == driven.orders
        assert driven.refused == 0, "every user is funded for every payment: no 402 expected"
        assert report.payments == len(driven.accepted) == driven.orders, report.table()
        assert report.violations == [], report.table()
        assert report.by_status["needs_attention"] == 0, "the gateway answers in the end: nothing needs a person"
        assert not stack.dead(), f"processes died: {stack.dead()}"

        # The faults happened.
        if scenario in KILL_PROCESSOR | KILL_INITIATOR:
            assert faults["kills"] > 0 and faults["kills_in_flight"] > 0, dict(faults)
        if scenario in DUPLICATES:
            assert row["redeliver"] > 0, "no payment.initiated was delivered twice"
        if scenario in KILL_PROCESSOR | KILL_INITIATOR:
            # What a killed process held came back: Pub/Sub delivered it again, or (where the emulator
            # does not) the reconciler published it again.
            assert row["redeliver"] + row["redriven"] > 0, "nothing a killed process held was delivered again"
        if scenario in KILL_INITIATOR:
            assert faults["relay_crash"] > 0, "the relay's crash hook never fired"
        if scenario in DUPLICATES:
            assert faults["duplicates"] > 0
        if scenario in GATEWAY_FAULTS:
            assert gateway_faults > 0, "the gateway answered no fault"
        if scenario in SLOW_GATEWAY:
            assert gateway_slow > 0, "no charge was slower than the processor's read timeout"
        if scenario == "reconciler_races_inflight_charge":
            assert reconciler_counted(stack, "examined") > 0, (
                "the racing reconciler never looked at an in-flight payment"
            )
        if scenario in POISON:
            assert faults["poison"] > 0
        if scenario in OUTAGE:
            expired = [p for p in settled.values() if p.get("failure_reason") == "expired"]
            assert expired, "the reconciler settled no payment during the outage"
        if scenario in AFTER_CHARGE:
            assert refunded_after_charge > 0, "no payment failed after its charge"
            # Every one was charged and refunded, except, where workers die, one whose message the
            # emulator held back past the payment timeout: the reconciler canceled it uncharged.
            expired = [pid for pid in after_charge if settled[pid].get("failure_reason") == "expired"]
            assert refunded_after_charge + (len(expired) if scenario in KILL_PROCESSOR else 0) == len(after_charge)
        if scenario == "completion_after_rollback":
            assert planted and faults["late_completions"] > 0
        assert report.refunds == refunded_after_charge + len(planted), report.table()
        if scenario in ONLY_WORKERS_KILLED:
            # Nothing but worker deaths: the gateway's approvals complete, its declines roll back.
            approved = {pid for pid, order in driven.accepted.items() if order.ending not in DECLINES}
            wrong = {pid: settled[pid]["status"] for pid in approved if settled[pid]["status"] != "completed"}
            assert not wrong, f"{len(wrong)} approved payment(s) did not complete: {list(wrong.items())[:5]}"
            declined = set(driven.accepted) - approved
            assert all(settled[pid]["failure_reason"] in ("card_declined", "insufficient_funds") for pid in declined)
        row["outcome"] = "passed"
    finally:
        row["payments"] = row["payments"] or len(driven.accepted)
        results.append(row)
        if duplicator:
            duplicator.close()
        stack.stop_all()
