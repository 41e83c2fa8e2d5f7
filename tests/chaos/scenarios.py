"""The fault scenarios, one entry each: the table every count of the suite is derived from.

An entry holds its settings (added to the stack's environment), its faults (pieces from faults.py
and gateway_faults.py), its load (traffic.py), the proofs that its faults happened and the outcomes
it promises, and whether `make test`'s quick pass runs it. Every scenario runs in each of its modes;
the quick pass runs the quick ones in pull mode only. A new scenario is a new entry here, plus a new
fault piece if it needs a new kind of fault. The provider's hard cases run in pull mode only (`modes`):
what they test sits between BinPay and the provider, the same whichever way Pub/Sub delivers.

The provider's hard cases (gateway/README.md "Faults" for the magic amounts and knobs; what each
models of Stripe, and where Stripe documents it, is there too). They prove BinPay against the
sandbox's model of Stripe, not Stripe: saved 500s, key pruning, lost responses, `processing` on cards
and webhook faults cannot be produced on Stripe at all, so each is only as good as the model.

| scenario                            | fault                                                  | proven by                                 |
|-------------------------------------|--------------------------------------------------------|-------------------------------------------|
| saved_500_on_create                 | 58/61: a 500 saved under the create key, intent made / not | access log `saved_error*` on creates; those payments complete |
| saved_500_on_confirm                | 59/60: a 500 saved under the confirm key, applied / not | access log `saved_error*` on confirms; those payments complete |
| lost_create_response                | the intent is created, the connection dropped           | dropped creates; one intent per payment   |
| idempotency_key_past_window         | lost responses while the clock jumps 24 h at a time     | a key executed again as a new request     |
| refund_pending_then_failed          | 63: the refund answers pending, fails later             | REFUND_FAILED logged, the money still standing: surfaced, not a violation |
| refund_pending_then_succeeded       | 64: the refund answers pending, succeeds later          | access log `refund_pending`; refunds end succeeded |
| processing_intents                  | 62: the confirm leaves the intent `processing` 5 s       | access log `processing`; those payments complete |
| webhooks_duplicated_reordered_lost  | webhook deliveries doubled, held back, dropped          | the sandbox's webhook fault lines; deliveries made |
| operator_settles_while_reconciler_runs | parked payments settled by `settle_payment` beside the reconciler | operators settled some, the rest refused; each settled once |
| reconciler_sigkill_mid_settlement   | open intents of a dead processor; the reconciler, on a slow provider, SIGKILLed while it holds a claim | kills with a reconciler claim held |
| refund_slower_than_client_timeout   | refunds (and every call) slower than the read timeout, a racing reconciler | refunds slower than the read timeout |
| firestore_refuses_writes            | the Firestore emulator frozen (SIGSTOP) 15 s, twice      | sagas in flight at the freeze; saga-log calls set no deadline, so they wait it out |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import faults as f
import gateway_faults as gw
import pytest
from timing import stack_settings
from traffic import MIX, Load

MODES = ("pull", "push")
QUICK_MODES = ("pull",)
PULL = ("pull",)


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: tuple[f.Fault, ...]
    proofs: tuple[f.Proof, ...]
    load: Load = Load()
    settings: Mapping[str, str] = field(default_factory=dict)
    quick: bool = False
    modes: tuple[str, ...] = MODES

    def __post_init__(self):
        required = {name for fault in self.faults for name in fault.proofs}
        if self.load.fault == "after_charge":
            refund_fails = self.load.fault_ending == gw.REFUND_FAILS
            required.add("failed_refunds_surfaced" if refund_fails else "after_charge_refunded")
        required |= {gw.ENDING_PROOFS[ending] for ending in self.load.mix if ending in gw.ENDING_PROOFS}
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
        # Half the calls outlast the read timeout: confirms still sleeping at the provider when the
        # processor, past its saga timeout, announces and sends the cancel.
        settings={"SAGA_TIMEOUT_SECONDS": "5"},
        faults=(gw.SlowGateway(latency_rate=0.5),),
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
    # --- the provider's hard cases ---------------------------------------------------------------
    Scenario(
        "saved_500_on_create",
        faults=(),
        load=Load(mix=MIX + ("58", "61") * 4),
        proofs=(gw.create_saved_500s,),
        modes=PULL,
        quick=True,
    ),
    Scenario(
        "saved_500_on_confirm",
        faults=(),
        load=Load(mix=MIX + ("59", "60") * 4),
        proofs=(gw.confirm_saved_500s,),
        modes=PULL,
        quick=True,
    ),
    Scenario(
        "lost_create_response",
        faults=(gw.LostCreateResponses(),),
        proofs=(gw.create_responses_lost,),
        modes=PULL,
    ),
    Scenario(
        "idempotency_key_past_window",
        faults=(gw.KeysPastWindow(),),
        proofs=(gw.keys_reused_past_window,),
        modes=PULL,
    ),
    Scenario(
        "refund_pending_then_failed",
        faults=(gw.RefundsSettleLater(fails=True),),
        load=Load(fault="after_charge", fault_share=0.4, fault_ending=gw.REFUND_FAILS),
        proofs=(gw.failed_refunds_surfaced,),
        modes=PULL,
        quick=True,
    ),
    Scenario(
        "refund_pending_then_succeeded",
        faults=(gw.RefundsSettleLater(fails=False),),
        load=Load(fault="after_charge", fault_share=0.4, fault_ending=gw.REFUND_SUCCEEDS_LATER),
        proofs=(f.after_charge_refunded(), gw.pending_refunds_succeeded),
        modes=PULL,
    ),
    Scenario(
        "processing_intents",
        faults=(),
        load=Load(mix=MIX + ("62",) * 8),
        proofs=(gw.processing_intents_completed,),
        modes=PULL,
        quick=True,
    ),
    Scenario(
        "webhooks_duplicated_reordered_lost",
        faults=(gw.WebhookFaults(),),
        load=Load(fault="after_charge", fault_share=0.3),
        proofs=(gw.webhooks_duplicated_reordered_lost, f.after_charge_refunded()),
        modes=PULL,
    ),
    Scenario(
        "operator_settles_while_reconciler_runs",
        faults=(gw.OperatorRacesReconciler(),),
        load=Load(share=Fraction(1, 2)),  # the operator piece drives the rest
        proofs=(gw.operator_raced_reconciler,),
        modes=PULL,
    ),
    Scenario(
        "reconciler_sigkill_mid_settlement",
        faults=(gw.SlowGateway(), f.KillReconciler()),
        load=Load(share=Fraction(1, 2), fault="after_charge", fault_share=0.2),  # KillReconciler drives the rest
        proofs=(gw.charges_outlasted_read_timeout, f.reconciler_killed_mid_settlement, f.after_charge_refunded()),
        modes=PULL,
    ),
    Scenario(
        "refund_slower_than_client_timeout",
        faults=(gw.SlowGateway(slow_paths=("/v1/refunds",)), f.RacingReconciler()),
        load=Load(fault="after_charge", fault_share=0.4),
        proofs=(
            gw.charges_outlasted_read_timeout,
            f.reconciler_examined_in_flight,
            gw.refunds_outlasted_read_timeout,
            f.after_charge_refunded(),
        ),
        modes=PULL,
    ),
    Scenario(
        "firestore_refuses_writes",
        faults=(f.FirestoreUnavailable(),),
        load=Load(fault="after_charge", fault_share=0.2),
        proofs=(f.firestore_refused_writes, f.after_charge_refunded()),
        modes=PULL,
    ),
)
SCENARIO_RUNS = sum(len(scenario.modes) for scenario in SCENARIOS)


def params() -> list:
    """Every scenario in every mode, scenario by scenario; the quick pass's runs marked `quick`."""
    runs = []
    for scenario in SCENARIOS:
        for mode in scenario.modes:
            quick = scenario.quick and mode in QUICK_MODES
            runs.append(
                pytest.param(scenario, mode, id=f"{scenario.name}-{mode}", marks=pytest.mark.quick if quick else ())
            )
    return runs
