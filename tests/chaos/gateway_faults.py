"""The fault suite's adapter to the payment provider: every piece that talks to it, in one place.

Against the sandbox gateway (gateway/README.md), a model of Stripe's PaymentIntents API:
  knobs         POST /_sandbox/config (allowed by SANDBOX_ALLOW_CONFIG): fault rates, latency, webhooks
  clock         POST /_sandbox/clock {"advance_seconds": N}: idempotency keys pruned after 24 h
  magic amounts amount % 100 aims a fault at one payment (traffic.py's endings)
  late intents  a PaymentIntent with metadata[payment_id], created and confirmed under keys of our own
                after its payment rolled back: what a create replayed under a spent key leaves behind
  money         stack.money() (every intent naming the payment, and its refunds) and the invariant
                checker, both through the gateway port
  access log    the sandbox's JSON access lines (logger sandbox_gateway.access): each fault answer names
                its fault (`fault`), slow answers their `duration_ms`, replays `idempotent_replayed`
  webhook log   the sandbox's webhook lines: webhook_drop|webhook_duplicate|webhook_delay, deliveries
A port to another provider replaces these and keeps the pieces' names, hooks and proofs. What the
sandbox models is only as good as its model (gateway/README.md says which Stripe facts it follows).
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from faults import (
    Disturbance,
    Fault,
    Run,
    completed_message,
    open_intents,
    proof,
    restart_processor,
    restart_reconciler,
    steps_of,
    wait_until,
)
from google.cloud import pubsub_v1
from stack import ROOT

# The processor's and the initiator's read timeout on the provider in every stack; connects are
# local, so 1 s each (one call's worst case, 3 connects + the read, is 5 s: LEASE_SECONDS fits 5 calls).
READ_TIMEOUT = 2
SETTINGS = {
    "SANDBOX_ALLOW_CONFIG": "true",
    "PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
    "PAYMENT_GATEWAY_CONNECT_TIMEOUT_SECONDS": "1",
}
# The knobs that make the provider answer normally again.
HEALED = {
    "sandbox_fail_rate": 0,
    "sandbox_timeout_rate": 0,
    "sandbox_lost_response_rate": 0,
    "sandbox_latency_rate": 0,
    "sandbox_saved_error_rate": 0,
    "sandbox_saved_error_applied_rate": 0,
    "sandbox_processing_rate": 0,
    "sandbox_webhook_duplicate_rate": 0,
    "sandbox_webhook_delay_rate": 0,
    "sandbox_webhook_drop_rate": 0,
}
ACCESS = "sandbox_gateway.access"
MONEY_PATHS = ("/confirm", "/cancel", "/v1/refunds")  # POSTs that move money or end an intent
WEBHOOKS = "sandbox_gateway.webhooks"
CREATE = "/v1/payment_intents"
DAY = 24 * 3600


def set_knobs(stack, **knobs) -> None:
    answer = stack.gateway().post(f"{stack.gateway_url}/_sandbox/config", json=knobs, timeout=10)
    assert answer.status_code == 200, answer.text


def advance_clock(stack, seconds: float) -> float:
    """Move the sandbox clock forward (everything that fell due is applied); returns the total offset."""
    answer = stack.gateway().post(f"{stack.gateway_url}/_sandbox/clock", json={"advance_seconds": seconds}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["offset_seconds"]


def access_lines(stack) -> list[dict]:
    return [line for line in stack.log_lines("gateway") if line.get("logger") == ACCESS]


def faulted(stack, fault: str, path_suffix: str = "") -> list[dict]:
    """Access lines whose answer was the sandbox fault `fault`, on paths ending in `path_suffix`."""
    return [
        line
        for line in access_lines(stack)
        if fault in str(line.get("fault") or "").split(",") and line.get("path", "").endswith(path_suffix)
    ]


def is_create(line: dict) -> bool:
    return line.get("http_method") == "POST" and line.get("path") == CREATE


def is_confirm(line: dict) -> bool:
    return line.get("http_method") == "POST" and line.get("path", "").endswith("/confirm")


class GatewayKnobs(Fault):
    """The provider misbehaves from the traffic's start until just before the drain."""

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
    """503s, hangs past the read timeout, dropped responses and some latency, on every call."""

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
    """Calls (`latency_rate` of them) take longer than the read timeout (holding their key), then execute;
    a replay under a used key answers at once."""

    latency_ms: int = 5000
    latency_rate: float = 1.0
    slow_paths: tuple[str, ...] = ()  # stays slow until a call on each of these was slow too
    proofs = ("charges_outlasted_read_timeout",)

    def knobs(self) -> dict[str, float]:
        return {"sandbox_latency_ms": self.latency_ms, "sandbox_latency_rate": self.latency_rate}

    def after_traffic(self, run: Run) -> None:
        # The provider stays slow until money-moving calls met it (the traffic alone is over first).
        def met() -> bool:
            slow = slow_calls(run.stack, MONEY_PATHS + self.slow_paths)
            return any(slow[path] for path in MONEY_PATHS) and all(slow[path] for path in self.slow_paths)

        deadline = time.monotonic() + 120
        while not met() and time.monotonic() < deadline:
            time.sleep(1)

    def after_drain(self, run: Run) -> None:
        time.sleep(self.latency_ms / 1000 + 2)  # calls still sleeping at the provider commit now


@dataclass(frozen=True)
class LostCreateResponses(GatewayKnobs):
    """The provider creates the intent and the connection drops before the answer (a rate on every
    call, creates among them): the processor replays the create under its key and gets the same intent."""

    rate: float = 0.3
    proofs = ("create_responses_lost",)

    def knobs(self) -> dict[str, float]:
        return {"sandbox_lost_response_rate": self.rate}


@dataclass(frozen=True)
class KeysPastWindow(GatewayKnobs):
    """Lost responses while the sandbox clock jumps a day at a time: a key used before a jump is pruned
    after it, so a retry under it is a new request (Stripe: keys "at least 24 hours old" are pruned)."""

    lost_response_rate: float = 0.3
    every_seconds: float = 1.0
    proofs = ("keys_reused_past_window",)

    def knobs(self) -> dict[str, float]:
        return {"sandbox_lost_response_rate": self.lost_response_rate}

    @contextmanager
    def during_traffic(self, run: Run):
        with super().during_traffic(run):

            def jump(_rng) -> None:
                advance_clock(run.stack, DAY + 60)
                run.counts.add("clock_jumps")

            with Disturbance(jump, (self.every_seconds, self.every_seconds), run.seed):
                yield


@dataclass(frozen=True)
class WebhookFaults(GatewayKnobs):
    """Webhook deliveries duplicated, held back (later events overtake them) and dropped."""

    duplicate_rate: float = 0.3
    delay_rate: float = 0.3
    drop_rate: float = 0.2
    proofs = ("webhooks_duplicated_reordered_lost",)

    def knobs(self) -> dict[str, float]:
        return {
            "sandbox_webhook_duplicate_rate": self.duplicate_rate,
            "sandbox_webhook_delay_rate": self.delay_rate,
            "sandbox_webhook_delay_ms": 1500,
            "sandbox_webhook_drop_rate": self.drop_rate,
        }


def refunded(stack, payment_id: str) -> bool:
    """The provider gave back everything the payment's intents took, and a refund did it."""
    money = stack.money(payment_id)
    return money.refunds > 0 and money.standing == 0


def fault_answers(stack) -> tuple[int, int]:
    """From the provider's JSON access log: answers that were faults (5xx, timeouts, dropped responses),
    and confirms, refunds and cancels slower than the read timeout."""
    faults = slow = 0
    for line in access_lines(stack):
        if line.get("status", 0) >= 500 or line.get("response_dropped"):
            faults += 1
        moves_money = line.get("http_method") == "POST" and line.get("path", "").endswith(MONEY_PATHS)
        if moves_money and line.get("duration_ms", 0) > READ_TIMEOUT * 1000:
            slow += 1
    return faults, slow


def slow_calls(stack, path_suffixes: tuple[str, ...]) -> dict[str, int]:
    """POSTs on paths ending in each suffix that took longer than the read timeout."""
    lines = [line for line in access_lines(stack) if line.get("http_method") == "POST"]
    return {
        suffix: sum(
            1 for line in lines if line["path"].endswith(suffix) and line.get("duration_ms", 0) > READ_TIMEOUT * 1000
        )
        for suffix in path_suffixes
    }


def late_intent(stack, payment: dict) -> dict:
    """A second intent for the payment, created and confirmed under keys of our own (the processor's are
    create-<payment id>, confirm-<intent id>): what a create sent again under a spent key leaves."""
    session = stack.gateway()
    payment_id = payment["id"]
    created = session.post(
        f"{stack.gateway_url}/v1/payment_intents",
        data={
            "amount": payment["amount"],
            "currency": payment["currency"].lower(),
            "payment_method": "pm_card_visa",
            "metadata[payment_id]": payment_id,
        },
        headers={"Idempotency-Key": f"late-create-{payment_id}"},
        timeout=30,
    )
    assert created.status_code == 200, created.text
    intent_id = created.json()["id"]
    confirmed = session.post(
        f"{stack.gateway_url}/v1/payment_intents/{intent_id}/confirm",
        data={"off_session": "true"},
        headers={"Idempotency-Key": f"late-confirm-{intent_id}"},
        timeout=30,
    )
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "succeeded", confirmed.text
    return confirmed.json()


class PlantedLateCharges(Fault):
    """Intents that take money after their payment rolled back, with a payment.completed for every
    other one; the sweeper (and the outcome consumer) must refund them."""

    proofs = ("late_charges_planted",)

    def settings(self, mode: str) -> dict[str, str]:
        return {
            "LATE_CHARGE_CHECK_INTERVAL_SECONDS": "5",  # the sweeper looks again soon after the rollback
            "PROVIDER_SEARCH_LAG_SECONDS": "0",  # the stack's sandbox searches without lag
        }

    def after_drain(self, run: Run) -> None:
        run.planted = self.plant(run)
        wait_money_settled(run, run.planted, timeout=120)

    def plant(self, run: Run) -> list[str]:
        stack = run.stack
        publisher = pubsub_v1.PublisherClient()
        topic = publisher.topic_path(stack.env["PROJECT_ID"], "binpay-completion")
        planted = []
        for payment_id, order in sorted(run.driven.accepted.items()):
            payment = run.settled[payment_id]
            if order.fault != "before_charge" or payment["status"] != "rolled_back":
                continue
            intent = late_intent(stack, payment)
            run.counts.add("late_charges")
            planted.append(payment_id)
            if len(planted) % 2:  # every other one: the sweeper must find the rest on its own
                data, attributes = completed_message(
                    payment_id, intent["id"], intent["latest_charge"], payment["amount"], payment["currency"]
                )
                publisher.publish(topic, data, **attributes).result(timeout=30)
                run.counts.add("late_completions")
        return planted


def open_refunds(steps: list[dict]) -> set[str]:
    """Intents whose announced refund (REFUND_REQUESTED) has no result logged yet."""

    def intents(name: str) -> set[str]:
        return {(step.get("detail") or {}).get("intent_id") for step in steps if step["step"] == name}

    return intents("REFUND_REQUESTED") - intents("REFUNDED") - intents("REFUND_FAILED")


def wait_money_settled(run: Run, payment_ids: list[str], timeout: float) -> None:
    """Wait (up to `timeout`) until nothing stands at the provider for each rolled-back payment and every
    refund its saga log announces has its result logged; the invariant checker judges what is left."""
    stack = run.stack
    api = stack.api()
    deadline = time.monotonic() + timeout
    remaining = set(payment_ids)
    while remaining and time.monotonic() < deadline:
        for payment_id in list(remaining):
            if stack.money(payment_id).standing:
                continue
            payment = api.get(f"{stack.initiator_url}/payments/{payment_id}", timeout=10).json()
            if not open_refunds((payment.get("saga_log") or {}).get("steps") or []):
                remaining.discard(payment_id)
        time.sleep(1)


# --- proofs -----------------------------------------------------------------------------------


@proof
def gateway_answered_faults(run: Run) -> None:
    assert run.row["gw_faults"] > 0, "the provider answered no fault"


@proof
def charges_outlasted_read_timeout(run: Run) -> None:
    assert run.row["gw_slow"] > 0, "no confirm, cancel or refund was slower than the read timeout"


@proof
def late_charges_planted(run: Run) -> None:
    assert run.planted and run.counts["late_completions"] > 0


@proof
def create_responses_lost(run: Run) -> None:
    """Creates were answered into a dropped connection, and every payment has one intent: the replay
    under the same key gave back the intent it had created."""
    lost = [line for line in access_lines(run.stack) if is_create(line) and line.get("response_dropped")]
    assert lost, "no create's response was lost"
    payment_ids = {line.get("payment_id") for line in lost} & set(run.driven.accepted)
    assert payment_ids, "no lost create names a payment of the run"
    doubled = {pid: run.stack.money(pid).intents for pid in payment_ids if run.stack.money(pid).intents != 1}
    assert not doubled, f"a replayed create made another intent: {doubled}"


@proof
def keys_reused_past_window(run: Run) -> None:
    """The clock jumped past keys' 24 h, and some key came back as a new request after its first use."""
    assert run.counts["clock_jumps"] > 0
    executed = collections.Counter(
        line["idempotency_key"]
        for line in access_lines(run.stack)
        if line.get("idempotency_key") and line.get("status") == 200 and not line.get("idempotent_replayed")
    )
    reused = [key for key, count in executed.items() if count > 1]
    assert reused, "no key was executed again after the clock pruned it"
    run.counts.add("keys_reused", len(reused))


@proof
def webhooks_duplicated_reordered_lost(run: Run) -> None:
    lines = [line for line in run.stack.log_lines("gateway") if line.get("logger") == WEBHOOKS]
    kinds = collections.Counter(line.get("fault") for line in lines if line.get("fault"))
    for kind in ("webhook_duplicate", "webhook_delay", "webhook_drop"):
        assert kinds[kind] > 0, f"no {kind}: {dict(kinds)}"
    delivered = [line for line in lines if line.get("message") == "webhook delivered"]
    assert delivered, "no webhook reached the initiator"
    run.counts.add("webhook_faults", sum(kinds.values()))


# --- an operator settling beside the reconciler -----------------------------------------------

# Ending of the operator scenario's payments: the confirm always answers 503 (nothing done), or
# goes `processing` and succeeds a few seconds later: their intents are logged and open.
OPERATOR_MIX = ("56", "62")
OPERATOR_TIMEOUT = 4  # the reconciler's timeout: past twice this, an unanswering provider parks a payment
PARKED = ("needs_attention", "gateway_unreachable")
OPERATORS_AT_ONCE = 6


@dataclass(frozen=True)
class OperatorRacesReconciler(Fault):
    """After the traffic: payments whose intents are logged and open, the processor stopped and the
    provider answering nothing (503) until the reconciler parks them needs_attention(gateway_unreachable).
    The provider answers again, and an operator settles each (`manage.py settle_payment`, refund-and-
    release or release) while the reconciler, whose backoff is short, retries the same payments: one
    settler wins each, the other is refused or finds it settled."""

    proofs = ("operator_raced_reconciler",)

    def settings(self, mode: str) -> dict[str, str]:
        # Parked payments come due again after 60-120 s: the operators (a Django start-up each, six at a
        # time, slow on a loaded machine) reach the first ones before, and the reconciler's retries fall
        # among the later ones. Measured: at 20-40 s the reconciler settled every payment first.
        return {"RECONCILE_BACKOFF_SECONDS": "60", "RECONCILE_BACKOFF_MAX_SECONDS": "120"}

    def after_traffic(self, run: Run) -> None:
        stack = run.stack
        opened = open_intents(run, OPERATOR_MIX, run.seed + 11)
        set_knobs(stack, sandbox_fail_rate=1)
        restart_reconciler(stack, "--older-than", str(OPERATOR_TIMEOUT))

        def payments() -> list[dict]:
            api = stack.api()
            return [api.get(f"{stack.initiator_url}/payments/{pid}", timeout=10).json() for pid in opened]

        def parked() -> list[str]:
            return [a["id"] for a in payments() if (a["status"], a["failure_reason"]) == PARKED]

        wait_until(lambda: len(parked()) == len(opened), 240, "every open payment parked")
        run.parked = opened
        set_knobs(stack, sandbox_fail_rate=0)
        restart_processor(run)

        def operator(numbered: tuple[int, str]) -> None:
            index, payment_id = numbered
            action = "--release" if index % 3 == 2 else "--refund-and-release"
            assert stack.processes["initiator-reconciler"].poll() is None, "the reconciler is not running"
            done = subprocess.run(
                [sys.executable, "manage.py", "settle_payment", payment_id, action, "--reason", "chaos"],
                cwd=ROOT / "initiator",
                env=stack.env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            if done.returncode == 0:
                run.counts.add("operator_settled")
            else:  # refused: the reconciler holds the claim, or settled the payment first
                assert "CommandError" in done.stderr, done.stderr
                run.counts.add("operator_refused")
                run.operator_refusals.append(done.stderr.strip().splitlines()[-1])

        with ThreadPoolExecutor(max_workers=OPERATORS_AT_ONCE) as pool:
            list(pool.map(operator, enumerate(opened)))

    def after_drain(self, run: Run) -> None:
        # The refunds the operators made (of intents that succeeded) are the only ones this piece calls for.
        run.counts.add("refunds_expected", sum(run.stack.money(pid).refunds for pid in run.parked))


@proof
def operator_raced_reconciler(run: Run) -> None:
    """Every parked payment met an operator while the reconciler ran: each settled once, by one of them."""
    assert run.parked, "no payment was parked needs_attention(gateway_unreachable)"
    assert run.counts["operator_settled"] + run.counts["operator_refused"] == len(run.parked)
    assert run.counts["operator_settled"] > 0, f"no operator settled anything: {run.operator_refusals[:3]}"
    for payment_id in run.parked:
        assert run.settled[payment_id]["status"] in ("completed", "rolled_back"), run.settled[payment_id]


# --- magic amounts: saved 500s, processing, refunds that settle later ----------------------------

REFUND_FAILS = "63"  # the refund answers pending, then fails
REFUND_SUCCEEDS_LATER = "64"  # the refund answers pending, then succeeds
# The proof a scenario drawing these endings must list.
ENDING_PROOFS = {
    "58": "create_saved_500s",
    "61": "create_saved_500s",
    "59": "confirm_saved_500s",
    "60": "confirm_saved_500s",
    "62": "processing_intents_completed",
}


def with_ending(run: Run, *endings: str) -> list[str]:
    return [pid for pid, order in run.driven.accepted.items() if order.ending in endings]


def all_completed(run: Run, payment_ids: list[str]) -> None:
    assert payment_ids, "no payment of the run drew the fault's amount"
    wrong = {pid: run.settled[pid]["status"] for pid in payment_ids if run.settled[pid]["status"] != "completed"}
    assert not wrong, f"{len(wrong)} approved payment(s) did not complete: {list(wrong.items())[:5]}"


def saved_500s(run: Run, which) -> collections.Counter:
    return collections.Counter(
        line["fault"] for line in access_lines(run.stack) if which(line) and line.get("fault", "") in SAVED_500S
    )


SAVED_500S = ("saved_error", "saved_error_applied")


@proof
def create_saved_500s(run: Run) -> None:
    """Creates answered a saved 500 (the intent made, and not made); each payment completed anyway,
    through a create under its key's next attempt."""
    seen = saved_500s(run, is_create)
    assert all(seen[kind] for kind in SAVED_500S), f"saved 500s on creates: {dict(seen)}"
    all_completed(run, with_ending(run, "58", "61"))


@proof
def confirm_saved_500s(run: Run) -> None:
    """Confirms answered a saved 500 (the confirm applied, and not); each payment completed anyway: the
    intent retrieved by id, confirmed again under the key's next attempt where the first had no effect."""
    seen = saved_500s(run, is_confirm)
    assert all(seen[kind] for kind in SAVED_500S), f"saved 500s on confirms: {dict(seen)}"
    all_completed(run, with_ending(run, "59", "60"))


@proof
def processing_intents_completed(run: Run) -> None:
    assert faulted(run.stack, "processing", "/confirm"), "no confirm left its intent processing"
    all_completed(run, with_ending(run, "62"))


@proof
def refunds_outlasted_read_timeout(run: Run) -> None:
    assert slow_calls(run.stack, ("/v1/refunds",))["/v1/refunds"], "no refund was slower than the read timeout"


REFUND_FOLLOWING = {"LATE_CHARGE_CHECK_INTERVAL_SECONDS": "5"}  # the sweeper follows pending refunds soon


@dataclass(frozen=True)
class RefundsSettleLater(Fault):
    """The refunds of payments failed after their charge (amount ending 63 / 64) answer `pending` and
    end `failed` / `succeeded` a few seconds later; the sweeper follows them."""

    fails: bool

    @property
    def proofs(self) -> tuple[str, ...]:
        return ("failed_refunds_surfaced",) if self.fails else ("pending_refunds_succeeded",)

    def settings(self, mode: str) -> dict[str, str]:
        return REFUND_FOLLOWING

    def after_drain(self, run: Run) -> None:
        after_charge = [pid for pid, order in run.driven.accepted.items() if order.fault == "after_charge"]

        def followed() -> bool:
            if self.fails:
                return all("REFUND_FAILED" in " ".join(steps_of(run.stack, pid)) for pid in after_charge)
            provider = run.stack.provider()
            return all(
                refund.status == "succeeded"
                for pid in after_charge
                for intent in provider.search_intents(pid)
                for refund in provider.refunds_of(intent.id)
            )

        wait_until(followed, 120, "every pending refund followed to its end")


@proof
def failed_refunds_surfaced(run: Run) -> None:
    """Every refund failed, and the sweeper surfaced it: REFUND_FAILED logged, the payment flagged, the
    money still standing (a person must look; it is not a silent loss)."""
    assert faulted(run.stack, "refund_failure", "/v1/refunds"), "no refund was set to fail"
    api = run.stack.api()
    after_charge = [pid for pid, order in run.driven.accepted.items() if order.fault == "after_charge"]
    assert after_charge
    for payment_id in after_charge:
        payment = api.get(f"{run.stack.initiator_url}/payments/{payment_id}", timeout=10).json()
        assert payment["status"] == "rolled_back", payment
        assert any(s["step"].startswith("REFUND_FAILED") for s in payment["saga_log"]["steps"]), payment
        assert run.stack.money(payment_id).standing == payment["amount"], payment_id


@proof
def pending_refunds_succeeded(run: Run) -> None:
    assert faulted(run.stack, "refund_pending", "/v1/refunds"), "no refund answered pending"
    assert run.refunded_after_charge == len(run.after_charge) > 0
