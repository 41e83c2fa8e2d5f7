"""The fault scenarios, one entry each: the table every count of the suite is derived from.

An entry holds its settings (added to the stack's environment), its faults (pieces from faults.py
and gateway_faults.py), its load (traffic.py), the proofs that its faults happened and the outcomes
it promises, and whether `make test`'s quick pass runs it. Every scenario runs in each of MODES;
the quick pass runs the quick ones in pull mode only. A new scenario is a new entry here, plus a new
fault piece if it needs a new kind of fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import faults as f
import gateway_faults as gw
import pytest
from timing import stack_settings
from traffic import Load

MODES = ("pull", "push")
QUICK_MODES = ("pull",)


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: tuple[f.Fault, ...]
    proofs: tuple[f.Proof, ...]
    load: Load = Load()
    settings: Mapping[str, str] = field(default_factory=dict)
    quick: bool = False

    def __post_init__(self):
        required = {name for fault in self.faults for name in fault.proofs}
        if self.load.fault == "after_charge":
            required.add("after_charge_refunded")
        missing = required - {proof.name for proof in self.proofs}
        if missing:
            raise ValueError(f"scenario {self.name}: its faults need the proofs {sorted(missing)}")

    def stack_settings(self, mode: str) -> dict[str, str]:
        env = {**stack_settings(mode), **gw.SETTINGS, **self.settings}
        for fault in self.faults:
            env.update(fault.settings(mode))
        return env

    @property
    def reconciler_options(self) -> tuple[str, ...]:
        return tuple(option for fault in self.faults for option in fault.reconciler_options)


KILLS = (f.kills_hit_sagas_in_flight, f.held_messages_came_back)

SCENARIOS = (
    Scenario(
        "worker_sigkill",
        faults=(f.Kill(f.PROCESSOR),),
        proofs=(*KILLS, f.approved_payments_complete),
    ),
    Scenario(
        "initiator_workers_sigkill",
        faults=(f.RelayCrashes(), f.Kill(f.INITIATOR, seed_offset=100)),
        proofs=(*KILLS, f.relay_crashed, f.approved_payments_complete),
    ),
    Scenario(
        "gateway_faults",
        faults=(gw.FlakyGateway(),),
        proofs=(gw.gateway_answered_faults,),
        quick=True,
    ),
    Scenario(
        "duplicate_deliveries",
        faults=(f.Duplicates(),),
        proofs=(f.duplicates_delivered,),
    ),
    Scenario(
        "failure_after_charge",
        faults=(),
        load=Load(fault="after_charge", fault_share=0.3),
        proofs=(f.after_charge_refunded(),),
        quick=True,
    ),
    Scenario(
        "poison_messages",
        faults=(f.Poison(),),
        proofs=(f.poison_published,),
    ),
    Scenario(
        "processor_down_past_timeout",
        faults=(f.Outage(),),
        load=Load(share=Fraction(0)),  # every payment arrives during the outage
        proofs=(f.reconciler_expired_payments,),
    ),
    Scenario(
        "everything_at_once",
        # The outage comes after the other faults (the kill loop restarts workers), with a third of
        # the payments; the gateway misbehaves through both.
        faults=(
            f.Kill(f.PROCESSOR),
            f.RelayCrashes(),
            f.Kill(f.INITIATOR, seed_offset=100),
            gw.FlakyGateway(),
            f.Duplicates(),
            f.Poison(),
            f.Outage(),
        ),
        load=Load(share=Fraction(2, 3), fault="after_charge", fault_share=0.3),
        proofs=(
            *KILLS,
            f.relay_crashed,
            f.duplicates_delivered,
            gw.gateway_answered_faults,
            f.poison_published,
            f.reconciler_expired_payments,
            f.after_charge_refunded(unless_expired=True),
        ),
    ),
    Scenario(
        "slow_gateway_past_saga_timeout",
        settings={"SAGA_TIMEOUT_SECONDS": "1"},  # every payment reaches the processor "past the saga timeout"
        faults=(gw.SlowGateway(),),
        proofs=(gw.charges_outlasted_read_timeout,),
        quick=True,
    ),
    Scenario(
        "reconciler_races_inflight_charge",
        faults=(gw.SlowGateway(), f.RacingReconciler()),
        proofs=(gw.charges_outlasted_read_timeout, f.reconciler_examined_in_flight),
    ),
    Scenario(
        "completion_after_rollback",
        faults=(gw.PlantedLateCharges(),),
        load=Load(fault="before_charge", fault_share=0.4),
        proofs=(gw.late_charges_planted,),
        quick=True,
    ),
)
SCENARIO_RUNS = len(SCENARIOS) * len(MODES)


def params() -> list:
    """Every scenario in every mode, scenario by scenario; the quick pass's runs marked `quick`."""
    runs = []
    for scenario in SCENARIOS:
        for mode in MODES:
            quick = scenario.quick and mode in QUICK_MODES
            runs.append(
                pytest.param(scenario, mode, id=f"{scenario.name}-{mode}", marks=pytest.mark.quick if quick else ())
            )
    return runs
