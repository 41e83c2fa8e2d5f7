"""The fault pieces a scenario is built from, and the proofs that they happened.

A scenario (scenarios.py) lists fault pieces. The test calls each piece's hooks, in table order,
at fixed moments of one run:

    settings(mode)        the stack's environment
    reconciler_options    options of the reconciler the test starts before the traffic
    during_traffic(run)   a context around the traffic: entered in table order, left in reverse
    after_traffic(run)    once the traffic and the faults around it stopped (an outage drives the rest)
    heal(run)             before the drain: what must answer normally again does
    after_drain(run)      once every payment settled

A piece names the proofs a scenario with it must list (`proofs`): the table refuses a scenario
whose faults could fail to fire unnoticed. The pieces that talk to the payment gateway are in
gateway_faults.py.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from google.cloud import firestore, pubsub_v1
from timing import SETTLE_TIMEOUT
from traffic import DECLINES, Driven, Load, drive

if TYPE_CHECKING:
    import check_invariants
    from scenarios import Scenario
    from stack import Stack

# The relay's crash hook exits with this code (initiator/payments/outbox.py).
RELAY_CRASH_EXIT_CODE = 70
# The processor's processes, whatever the delivery mode.
PROCESSES = ("processor-worker", "processor-web")
# The processes a kill hits, per delivery mode.
PROCESSOR = {"pull": ("processor-worker",), "push": ("processor-web",)}
INITIATOR = {"pull": ("initiator-consumer", "initiator-relay"), "push": ("initiator-web", "initiator-relay")}
STREAMING_PULL_SUBSCRIBERS = {"processor-worker", "initiator-consumer"}
# Saga-log steps after which a saga no longer waits for the processor, or for the initiator.
AFTER_PROCESSOR = {"COMPLETED", "FAILED", "REFUNDED", "CAPTURED", "COMPENSATED", "NEEDS_ATTENTION"}
CLOSING_STEPS = {"CAPTURED", "COMPENSATED", "NEEDS_ATTENTION"}
# Where the processor is taken down on purpose, the reconciler settles what stays pending past this.
OUTAGE_TIMEOUT = 20
# The racing reconciler's timeout: it looks at payments whose charges are still in flight.
RACING_RECONCILER_TIMEOUT = 3
# Traffic with no fault of its own: the amount mix only.
PLAIN = Load()


class FaultCounts(collections.Counter):
    """Thread-safe counts of the faults a scenario injected or observed."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()

    def add(self, name: str, count: int = 1) -> None:
        with self.lock:
            self[name] += count


@dataclass
class Run:
    """One scenario in one delivery mode: what its fault pieces act on and what its proofs read."""

    scenario: Scenario
    mode: str
    stack: Stack
    seed: int
    payments: int  # the scenario's payments, traffic and later phases together
    counts: FaultCounts = field(default_factory=FaultCounts)
    driven: Driven = field(default_factory=Driven)
    cleanup: ExitStack = field(default_factory=ExitStack)  # closed last, before the stack stops
    users: list[dict] = field(default_factory=list)
    probe: SagaProbe | None = None
    settled: dict[str, dict] = field(default_factory=dict)
    planted: list[str] = field(default_factory=list)  # payments a late charge was planted on
    report: check_invariants.Report | None = None
    row: dict = field(default_factory=dict)  # the closing table's figures
    after_charge: list[str] = field(default_factory=list)  # payments that failed after their charge
    refunded_after_charge: int = 0
    parked: list[str] = field(default_factory=list)  # payments parked needs_attention(gateway_unreachable)
    firestore: subprocess.Popen | None = None  # the Firestore emulator, when this session started it
    operator_refusals: list[str] = field(default_factory=list)

    @property
    def traffic(self) -> int:
        return self.scenario.load.count(self.payments)

    def drive(self, count: int, seed: int, load: Load = PLAIN) -> None:
        drive(self.stack, self.users, count, seed, self.driven, load)


@dataclass(frozen=True)
class Proof:
    """A check that a fault happened, or of an outcome a scenario promises; fails by assertion."""

    name: str
    check: Callable[[Run], None]


def proof(check: Callable[[Run], None]) -> Proof:
    return Proof(check.__name__, check)


class Fault:
    """A composable fault: every hook does nothing unless a piece says otherwise."""

    proofs: tuple[str, ...] = ()
    reconciler_options: tuple[str, ...] = ()

    def settings(self, mode: str) -> dict[str, str]:
        return {}

    @contextmanager
    def during_traffic(self, run: Run):
        yield

    def after_traffic(self, run: Run) -> None:
        pass

    def heal(self, run: Run) -> None:
        pass

    def after_drain(self, run: Run) -> None:
        pass


# --- processes killed -------------------------------------------------------------------------


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
        waiting_for = AFTER_PROCESSOR if victim.startswith("processor") else CLOSING_STEPS
        return unlogged + sum(1 for steps in documents.values() if not waiting_for & steps)


def reap(stack, name: str, counts: FaultCounts, sig: int = signal.SIGTERM) -> None:
    """Stop a process, counting a relay crash (its hook's exit code) if it had died that way."""
    if stack.processes[name].poll() == RELAY_CRASH_EXIT_CODE:
        counts.add("relay_crash")
    stack.stop(name, sig)


def kill_and_restart(stack, names: list[str], counts: FaultCounts, probe: SagaProbe):
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
                reap(stack, name, counts)
                stack.restart(name)
        candidates = [name for name in names if name not in killed_subscribers]
        if not candidates:
            return
        name = rng.choice(candidates)
        in_flight = probe.in_flight(name)
        if not in_flight and name in STREAMING_PULL_SUBSCRIBERS:
            return  # its one kill must hit a saga in flight: try again next round
        stack.stop(name, signal.SIGKILL)
        counts.add("kills")
        counts.add("kills_in_flight", 1 if in_flight else 0)
        if name in STREAMING_PULL_SUBSCRIBERS:
            killed_subscribers.add(name)
        time.sleep(rng.uniform(0.1, 1.0))
        stack.restart(name)

    return action


@dataclass(frozen=True)
class Kill(Fault):
    """SIGKILL one of `victims` (per delivery mode) every 1-3 s while the traffic flows, and restart it."""

    victims: dict[str, tuple[str, ...]]
    seed_offset: int = 0
    proofs = ("kills_hit_sagas_in_flight", "held_messages_came_back")

    @contextmanager
    def during_traffic(self, run: Run):
        action = kill_and_restart(run.stack, list(self.victims[run.mode]), run.counts, run.probe)
        with Disturbance(action, (1.0, 3.0), run.seed + self.seed_offset):
            yield


def replace_relay(stack, crash_rate: str, counts: FaultCounts) -> None:
    """Run the outbox relay with the chaos hook that kills it between publishing and marking a row."""
    command, cwd, _ = stack.commands["initiator-relay"]
    reap(stack, "initiator-relay", counts)
    stack.start("initiator-relay", command, cwd, {"OUTBOX_RELAY_CRASH_RATE": crash_rate})


@dataclass(frozen=True)
class RelayCrashes(Fault):
    """The outbox relay dies between publishing and marking a row (its crash hook) at `rate`."""

    rate: str = "0.1"
    proofs = ("relay_crashed",)

    def settings(self, mode: str) -> dict[str, str]:
        return {"OUTBOX_PUBLISH_ON_COMMIT": "false"}  # every event goes through the crashing relay

    @contextmanager
    def during_traffic(self, run: Run):
        replace_relay(run.stack, self.rate, run.counts)
        yield
        replace_relay(run.stack, "0", run.counts)


# --- messages: duplicates and poison ----------------------------------------------------------


class Duplicator:
    """Re-publishes every message on the saga's topics once more (a duplicate delivery)."""

    def __init__(self, stack, counts: FaultCounts):
        self.counts = counts
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
                self.counts.add("duplicates")
            message.ack()

        return republish

    def close(self):
        for future in self.futures:
            future.cancel()
        self.subscriber.close()


class Duplicates(Fault):
    """Every event on the saga's topics is published twice, from the traffic's start to the run's end."""

    proofs = ("duplicates_delivered",)

    @contextmanager
    def during_traffic(self, run: Run):
        run.cleanup.callback(Duplicator(run.stack, run.counts).close)
        yield


def completed_message(
    payment_id: str, intent_id: str, charge_id: str, amount: int, currency: str
) -> tuple[bytes, dict]:
    """A valid payment.completed event (contracts/events/payment.completed.schema.json) and its attributes."""
    event_id = str(uuid.uuid4())
    event = {
        "event_id": event_id,
        "event_type": "payment.completed",
        "schema_version": 1,
        "payment_id": payment_id,
        "intent_id": intent_id,
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


def publish_poison(stack, counts: FaultCounts) -> None:
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
        ("binpay-completion", *completed_message(unknown, "pi_unknown", "ch_unknown", 100, "USD")),
        ("rollback", b"[]", {"event_type": "payment.rollback", "schema_version": "1"}),
    ]
    for topic, data, attributes in poison:
        publisher.publish(publisher.topic_path(project, topic), data, **attributes).result(timeout=30)
    counts.add("poison", len(poison))


class Poison(Fault):
    """Poison messages on every topic, before and after the traffic."""

    proofs = ("poison_published",)

    @contextmanager
    def during_traffic(self, run: Run):
        publish_poison(run.stack, run.counts)
        yield
        publish_poison(run.stack, run.counts)


# --- the processor down, the reconciler racing ------------------------------------------------


def restart_reconciler(stack, *options: str) -> None:
    command = [sys.executable, "manage.py", "reconcile", "--loop", "--interval", "1", *options]
    if "initiator-reconciler" in stack.processes:
        stack.stop("initiator-reconciler")
    stack.start("initiator-reconciler", command, "initiator")


@dataclass(frozen=True)
class Outage(Fault):
    """After the traffic, the processor goes down; the rest of the scenario's payments arrive while it
    is down, and the reconciler (with a short timeout) settles them before it comes back."""

    timeout: int = OUTAGE_TIMEOUT
    proofs = ("reconciler_expired_payments",)

    def after_traffic(self, run: Run) -> None:
        stack = run.stack
        if run.driven.accepted:  # the traffic's backlog settles before the outage starts
            stack.wait_terminal(run.driven.ids(), timeout=SETTLE_TIMEOUT)
        down = ["processor-worker", "processor-web"] if run.mode == "pull" else ["processor-web"]
        for name in down:
            stack.stop(name)
        # From here on, payments pending past the outage's short timeout are the reconciler's.
        restart_reconciler(stack, "--older-than", str(self.timeout))
        run.drive(run.payments - run.traffic, run.seed + 7)
        time.sleep(self.timeout + 8)  # past the timeout: the reconciler settles these payments
        for name in reversed(down):
            stack.restart(name)


@dataclass(frozen=True)
class RacingReconciler(Fault):
    """The reconciler runs with a timeout shorter than a charge takes: it meets charges in flight."""

    older_than: int = RACING_RECONCILER_TIMEOUT
    proofs = ("reconciler_examined_in_flight",)

    @property
    def reconciler_options(self) -> tuple[str, ...]:
        return ("--older-than", str(self.older_than))


def claims_held_by(stack, holder: str) -> int:
    """Payments whose claim `holder` holds right now, from the saga log."""
    collection = firestore.Client(project=stack.env["PROJECT_ID"]).collection("transactions")
    return sum(
        1
        for doc in collection.where(filter=firestore.FieldFilter("lease_holder", "==", holder)).stream()
        if (doc.to_dict() or {}).get("lease_owner")
    )


def steps_of(stack, payment_id: str) -> set[str]:
    payment = stack.api().get(f"{stack.initiator_url}/payments/{payment_id}", timeout=10).json()
    return {step["step"] for step in (payment.get("saga_log") or {}).get("steps") or []}


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(1)


def open_intents(run: Run, mix: tuple[str, ...], seed: int) -> list[str]:
    """Drive the rest of the scenario's payments with amounts ending in `mix`, wait until each has its
    intent logged, and SIGKILL the processor: payments left pending with an open intent, whose leases
    lapse on their own (LEASE_SECONDS). Returns those still pending."""
    stack = run.stack
    if run.driven.accepted:
        stack.wait_terminal(run.driven.ids(), timeout=SETTLE_TIMEOUT)
    before = set(run.driven.ids())
    run.drive(run.payments - run.traffic, seed, Load(mix=mix))
    opened = sorted(set(run.driven.ids()) - before)
    wait_until(lambda: all("INTENT_CREATED" in steps_of(stack, pid) for pid in opened), 120, "intents logged")
    time.sleep(2)  # the confirms are sent
    for name in PROCESSES:
        if name in stack.processes:
            stack.stop(name, signal.SIGKILL)
    api = stack.api()
    pending = [
        pid
        for pid in opened
        if api.get(f"{stack.initiator_url}/payments/{pid}", timeout=10).json()["status"] == "pending"
    ]
    assert pending, "every payment finished before the processor stopped"
    return pending


def restart_processor(run: Run) -> None:
    for name in PROCESSES:
        if name in run.stack.commands and name not in run.stack.processes:
            run.stack.restart(name)


@dataclass(frozen=True)
class KillReconciler(Fault):
    """After the traffic, payments with open intents and a dead processor; the reconciler (timeout
    `older_than`) settles them through a slow provider and is SIGKILLed, `kills` times, while it holds
    one's claim, mid-settlement, and started again: the next holder follows what the dead one logged."""

    older_than: int = RACING_RECONCILER_TIMEOUT
    kills: int = 4
    mix: tuple[str, ...] = ("56", "62", "00")  # confirms refused (503), processing, approved
    proofs = ("reconciler_killed_mid_settlement",)

    def settings(self, mode: str) -> dict[str, str]:
        return {"SETTLEMENT_LEASE_SECONDS": "65"}  # a dead reconciler's claim lapses soon (> its worst case)

    def after_traffic(self, run: Run) -> None:
        stack = run.stack
        run.counts.add("open_intents", len(open_intents(run, self.mix, run.seed + 13)))
        restart_reconciler(stack, "--older-than", str(self.older_than))
        deadline = time.monotonic() + 240
        while run.counts["reconciler_kills"] < self.kills and time.monotonic() < deadline:
            if claims_held_by(stack, "reconciler"):
                stack.stop("initiator-reconciler", signal.SIGKILL)
                run.counts.add("reconciler_kills")
                time.sleep(0.5)
                stack.restart("initiator-reconciler")
            time.sleep(0.2)
        restart_processor(run)


@dataclass(frozen=True)
class FirestoreUnavailable(Fault):
    """The Firestore emulator is frozen (SIGSTOP) for `seconds`, `times` times while the traffic flows:
    every saga-log read and write waits (or fails, where a deadline is set), then it answers again (SIGCONT)."""

    seconds: float = 15
    times: int = 2
    proofs = ("firestore_refused_writes",)

    def settings(self, mode: str) -> dict[str, str]:
        return {"FIRESTORE_TIMEOUT_SECONDS": "5"}

    @contextmanager
    def during_traffic(self, run: Run):
        emulator = run.firestore
        assert emulator is not None, "this scenario needs the Firestore emulator the session started"
        resume = lambda: os.killpg(emulator.pid, signal.SIGCONT)  # noqa: E731 - also the cleanup
        run.cleanup.callback(resume)
        stopping = threading.Event()

        def freeze():
            for _ in range(self.times):
                if stopping.wait(3):
                    return
                in_flight = run.probe.in_flight("initiator")  # read just before the freeze
                os.killpg(emulator.pid, signal.SIGSTOP)
                run.counts.add("firestore_pauses")
                run.counts.add("firestore_paused_in_flight", in_flight)
                stopping.wait(self.seconds)
                resume()

        thread = threading.Thread(target=freeze, daemon=True)
        thread.start()
        try:
            yield
            thread.join()
        finally:
            stopping.set()
            thread.join()
            resume()


# --- what the proofs read ---------------------------------------------------------------------


def processor_redeliveries(stack) -> int:
    """Deliveries of payment.initiated beyond the first per payment, from the processor's logs."""
    received = collections.Counter(
        line.get("payment_id")
        for name in ("processor-worker", "processor-web")
        for line in stack.log_lines(name)
        if str(line.get("message", "")).startswith("payment.initiated received")
    )
    return sum(count - 1 for count in received.values())


def reconciler_counted(stack, result: str) -> int:
    """A reconciler count summed over its passes (examined, redriven, ...: the counts its pass lines carry)."""
    lines = stack.log_lines("initiator-reconciler")
    return sum((line.get("reconcile_counts") or {}).get(result, 0) for line in lines)


# --- proofs -----------------------------------------------------------------------------------


@proof
def kills_hit_sagas_in_flight(run: Run) -> None:
    assert run.counts["kills"] > 0 and run.counts["kills_in_flight"] > 0, dict(run.counts)


@proof
def held_messages_came_back(run: Run) -> None:
    # What a killed process held came back: Pub/Sub delivered it again, or (where the emulator
    # does not) the reconciler published it again.
    assert run.row["redeliver"] + run.row["redriven"] > 0, "nothing a killed process held was delivered again"


@proof
def relay_crashed(run: Run) -> None:
    assert run.counts["relay_crash"] > 0, "the relay's crash hook never fired"


@proof
def duplicates_delivered(run: Run) -> None:
    assert run.row["redeliver"] > 0, "no payment.initiated was delivered twice"
    assert run.counts["duplicates"] > 0


@proof
def poison_published(run: Run) -> None:
    assert run.counts["poison"] > 0


@proof
def reconciler_expired_payments(run: Run) -> None:
    expired = [p for p in run.settled.values() if p.get("failure_reason") == "expired"]
    assert expired, "the reconciler settled no payment during the outage"


@proof
def reconciler_examined_in_flight(run: Run) -> None:
    assert reconciler_counted(run.stack, "examined") > 0, "the racing reconciler never looked at an in-flight payment"


def after_charge_refunded(unless_expired: bool = False) -> Proof:
    """Every payment failed after its charge was charged and refunded. With `unless_expired` (where
    workers die), one whose message the emulator held back past the payment timeout may instead
    have been canceled uncharged by the reconciler."""

    def check(run: Run) -> None:
        assert run.refunded_after_charge > 0, "no payment failed after its charge"
        expired = [pid for pid in run.after_charge if run.settled[pid].get("failure_reason") == "expired"]
        assert run.refunded_after_charge + (len(expired) if unless_expired else 0) == len(run.after_charge)

    return Proof("after_charge_refunded", check)


@proof
def approved_payments_complete(run: Run) -> None:
    """Nothing but worker deaths: the gateway's approvals complete, its declines roll back."""
    accepted = run.driven.accepted
    approved = {pid for pid, order in accepted.items() if order.ending not in DECLINES}
    wrong = {pid: run.settled[pid]["status"] for pid in approved if run.settled[pid]["status"] != "completed"}
    assert not wrong, f"{len(wrong)} approved payment(s) did not complete: {list(wrong.items())[:5]}"
    wrong = {
        pid: run.settled[pid]["failure_reason"]
        for pid in set(accepted) - approved
        if run.settled[pid]["failure_reason"] != DECLINES[accepted[pid].ending]
    }
    assert not wrong, f"declines rolled back for another reason: {list(wrong.items())[:5]}"


@proof
def reconciler_killed_mid_settlement(run: Run) -> None:
    assert run.counts["reconciler_kills"] > 0, "the reconciler was never killed holding a claim"


@proof
def firestore_refused_writes(run: Run) -> None:
    """Firestore was frozen while sagas waited on it. The saga-log calls pass no deadline, so they wait
    the freeze out rather than fail (the services' failures, if any, are counted, not required)."""
    assert run.counts["firestore_pauses"] > 0
    assert run.counts["firestore_paused_in_flight"] > 0, "no saga was in flight when Firestore froze"
    failed = [
        line
        for name in run.stack.processes
        for line in run.stack.log_lines(name)
        if str(line.get("message", "")).startswith("saga log unavailable")
        or "not delivered yet" in str(line.get("message", ""))
    ]
    run.counts.add("firestore_failures", len(failed))
