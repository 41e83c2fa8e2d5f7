"""A scenario's traffic: payments with mixed outcomes, submitted while its faults run."""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction

import requests

# Amount endings: the sandbox's magic amounts (amount % 100, gateway/README.md "Faults"): 00 approve,
# 51/52 decline, 53 a 503 on the first confirm under a key, 55 a confirm whose response is lost,
# 57 a slow confirm holding its key. Scenarios add their own faults on top of this mix.
MIX = ("00",) * 10 + ("51", "52", "53", "55", "57")
# The declining endings and the reason a rollback names (the card error's decline_code).
DECLINES = {"51": "generic_decline", "52": "insufficient_funds"}


@dataclass(frozen=True)
class Load:
    """What a scenario submits while its faults run: `share` of its payments, a `fault_share` of
    them carrying the processor's simulate_failure point `fault`, amounts ending as `mix` says. A fault
    may drive the rest."""

    share: Fraction = Fraction(1)
    fault: str | None = None
    fault_share: float = 0.0
    mix: tuple[str, ...] = MIX  # the amount endings drawn from
    fault_ending: str = "00"  # the ending of a payment given `fault`: one the provider approves

    def count(self, payments: int) -> int:
        return payments * self.share.numerator // self.share.denominator


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


def drive(
    stack,
    users,
    count: int,
    seed: int,
    driven: Driven,
    load: Load | None = None,
    spread_seconds: float = 12,
) -> None:
    """Submit `count` payments of `load` from 12 threads, spread over `spread_seconds` so the faults land
    while traffic flows, into `driven`. A payment given the processor's fault gets an amount the provider
    approves (`load.fault_ending`), so the fault is the only thing that can fail it."""
    load = load or Load()
    rng = random.Random(seed)
    orders = []
    for index in range(count):
        ending = rng.choice(load.mix)
        order_fault = load.fault if rng.random() < load.fault_share else None
        if order_fault:
            ending = load.fault_ending
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
