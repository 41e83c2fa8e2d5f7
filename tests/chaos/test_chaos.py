"""Break BinPay on purpose and prove no money is lost, duplicated or stuck.

Each scenario of scenarios.py builds a fresh stack (devtools/stack.py) in pull or push mode, drives
payments with mixed outcomes through it while its fault pieces inject their faults, drains it, and
runs the invariant checker, which must report zero violations. Every scenario also proves that its
faults happened (kills with sagas in flight, redeliveries, relay crashes, duplicates, gateway fault
answers, refunds, late charges): a fault suite whose faults did not fire proves nothing.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import check_invariants
import gateway_faults as gw
import pytest
from faults import Run, SagaProbe, processor_redeliveries, reconciler_counted, restart_reconciler
from scenarios import SCENARIOS, params
from stack import build_stack
from timing import ACK_DEADLINES, SETTLE_TIMEOUT

GATEWAY_UNREACHABLE = "gateway_unreachable"
# Fault counts the closing table has columns for; the rest go to its last column.
SHOWN = {"kills", "kills_in_flight", "relay_crash", "duplicates", "late_charges"}


@pytest.mark.parametrize(("scenario", "mode"), params())
def test_scenario(scenario, mode, emulator_env, firestore_emulator, tmp_path, payments_per_scenario, results):
    settings = scenario.stack_settings(mode)
    stack = build_stack(mode, emulator_env, tmp_path, settings, ack_deadline_seconds=ACK_DEADLINES[mode])
    run = Run(scenario, mode, stack, seed=SCENARIOS.index(scenario) + 1, payments=payments_per_scenario)
    run.firestore = firestore_emulator
    run.row.update(scenario=scenario.name, mode=mode, outcome="failed", payments=0, violations=0)
    started = time.monotonic()
    try:
        restart_reconciler(stack, *scenario.reconciler_options)
        run.users = [stack.create_funded_user("5000.00") for _ in range(8)]
        run.probe = SagaProbe(stack, run.driven)
        with ExitStack() as injected:
            for fault in scenario.faults:
                injected.enter_context(fault.during_traffic(run))
            run.drive(run.traffic, run.seed, scenario.load)
        for fault in scenario.faults:
            fault.after_traffic(run)
        for fault in scenario.faults:
            fault.heal(run)
        run.settled = settle(stack, run.driven.ids())
        for fault in scenario.faults:
            fault.after_drain(run)
        run.row["drain_s"] = f"{time.monotonic() - started:.0f}"  # the whole run so far, faults included
        time.sleep(3)  # late duplicates, if any, would change something now
        user_ids = [user["id"] for user in run.users]
        run.report = check_invariants.check(stack.invariant_sources(), user_ids, deposits=stack.deposits)
        observe(run)

        # What was driven is what the system holds: every accepted payment, nothing else.
        driven, report = run.driven, run.report
        assert len(driven.accepted) + driven.refused == driven.orders
        assert driven.refused == 0, "every user is funded for every payment: no 402 expected"
        assert report.payments == len(driven.accepted) == driven.orders, report.table()
        assert report.violations == [], report.table()
        assert report.by_status["needs_attention"] == 0, "the provider answers in the end: nothing needs a person"
        assert not stack.dead(), f"processes died: {stack.dead()}"
        # Refunds only where a fault called for one: failures after the charge, late charges, operators;
        # a refund that failed (surfaced, the money still standing) is counted apart.
        expected = run.refunded_after_charge + len(run.planted) + run.counts["refunds_expected"]
        assert report.refunds - report.refunds_failed == expected, report.table()
        # The faults happened, and the scenario's own outcomes hold.
        for proof in scenario.proofs:
            proof.check(run)
        run.row["outcome"] = "passed"
    except BaseException as error:
        run.row["error"] = f"{type(error).__name__}: {error}"[:500]  # results.json: why, before pytest says
        raise
    finally:
        run.row["payments"] = run.row["payments"] or len(run.driven.accepted)
        run.row["duration_s"] = f"{time.monotonic() - started:.0f}"
        results.append(run.row)
        run.cleanup.close()
        stack.stop_all()


def is_parked(payment: dict) -> bool:
    return payment["status"] == "needs_attention" and payment.get("failure_reason") == GATEWAY_UNREACHABLE


def settle(stack, payment_ids: list[str]) -> dict[str, dict]:
    """Wait until every payment settled; one parked needs_attention(gateway_unreachable) is not settled
    yet: the reconciler retries it with backoff now that the provider answers, and settles it."""
    settled = stack.wait_terminal(payment_ids, timeout=SETTLE_TIMEOUT)
    api = stack.api()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        parked = [pid for pid, payment in settled.items() if is_parked(payment)]
        if not parked:
            break
        for payment_id in parked:
            payment = api.get(f"{stack.initiator_url}/payments/{payment_id}", timeout=10).json()
            if payment["status"] != "needs_attention":
                settled.update(stack.wait_terminal([payment_id], timeout=60))
        time.sleep(1)
    return settled


def observe(run: Run) -> None:
    """The closing table's figures for the run, which the proofs read too."""
    stack, report, counts = run.stack, run.report, run.counts
    gateway_faults, gateway_slow = gw.fault_answers(stack)
    run.after_charge = [pid for pid, order in run.driven.accepted.items() if order.fault == "after_charge"]
    run.refunded_after_charge = sum(1 for pid in run.after_charge if gw.refunded(stack, pid))
    run.row.update(
        payments=report.payments,
        completed=report.by_status["completed"],
        rolled_back=report.by_status["rolled_back"],
        attention=report.by_status["needs_attention"],
        charges=report.intents_succeeded,
        refunds=report.refunds,
        kills=counts["kills"],
        in_flight=counts["kills_in_flight"],
        relay_crash=counts["relay_crash"],
        duplicates=counts["duplicates"],
        redeliver=processor_redeliveries(stack),
        redriven=reconciler_counted(stack, "redriven"),
        gw_faults=gateway_faults,
        gw_slow=gateway_slow,
        late=counts["late_charges"],
        refunds_failed=report.refunds_failed,
        parked=len(run.parked),
        other_faults=" ".join(f"{name}={count}" for name, count in sorted(counts.items()) if name not in SHOWN),
        violations=len(report.violations),
    )
