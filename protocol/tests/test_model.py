"""The settlement protocol's spin model: the main model holds, and every bug it must catch is caught.

The session runs every check of check.py once, two verifiers at a time (the machine's two
cores); each test asserts on its check. A failure prints the check's report, counterexample
timeline included.
"""

import subprocess
import sys
from pathlib import Path

import check
import pytest

HERE = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def results() -> dict[str, check.Result]:
    return {result.check.name: result for result in check.run_checks(list(check.CHECKS), jobs=2)}


def _actions(result: check.Result, actor: str) -> list[str]:
    return [event.action for event in result.events if event.actor == actor]


def _happened(result: check.Result, actor: str, words: str) -> int:
    """The index of the first event where `actor` did something containing `words`."""
    for index, event in enumerate(result.events):
        if event.actor == actor and words in event.action:
            return index
    raise AssertionError(f"{actor} never did {words!r}:\n" + check.report(result))


@pytest.mark.parametrize("name", [c.name for c in check.PROPERTIES])
def test_the_main_model_holds(results, name):
    result = results[name]
    assert result.errors == 0, check.report(result)
    assert result.states > 100_000, f"{name} explored only {result.states} states:\n{result.output}"
    assert "search depth too small" not in result.output


def test_the_main_model_reaches_every_path_it_should_and_not_the_dead_one(results):
    result = results["probes"]
    assert result.errors == 0, check.report(result)
    assert set(result.reached) == {*range(1, 11), 12}, check.report(result)
    assert 11 not in result.reached, check.report(result)


def test_protocol_as_written_loses_money_when_a_paused_reconciler_captures_after_an_operator_refund(results):
    """The hole: a settlement is not fenced by the claim (README "The hole")."""
    result = results["variant-as-written"]
    assert result.errors == 1, check.report(result)
    decided = _happened(result, "reconciler", "follows the log: closes the named intent")
    asked = _happened(result, "operator", "REFUND_REQUESTED")
    captured = _happened(result, "reconciler", "captures the hold")
    assert decided < asked < captured, check.report(result)
    final = result.events[-1]
    assert final.status == "completed" and final.state["refund"] == 2, check.report(result)


def test_the_fix_needs_ordered_claim_tokens(results):
    result = results["variant-unordered-registration"]
    assert result.errors == 1, check.report(result)
    operator_registers = _happened(result, "operator", "registers its claim")
    reconciler_claims = _happened(result, "reconciler", "claims the payment")
    assert reconciler_claims < operator_registers, check.report(result)
    assert any(
        "registers its claim" in event.action and event.actor == "reconciler"
        for event in result.events[operator_registers:]
    ), check.report(result)
    assert result.events[-1].status == "completed" and result.events[-1].state["refund"] == 2


def test_f1_operator_refund_without_the_claim_races_the_reconciler_capture(results):
    result = results["variant-f1"]
    assert result.errors == 1, check.report(result)
    assert any("takes no claim" in action for action in _actions(result, "operator")), check.report(result)
    _happened(result, "operator", "refunds the intent: accepted")
    _happened(result, "reconciler", "captures the hold")
    final = result.events[-1]
    assert final.status == "completed" and final.state["refund"] == 2, check.report(result)


def test_a_lookup_taken_as_proof_rolls_back_while_a_confirm_is_in_flight(results):
    result = results["variant-list-as-proof"]
    assert result.errors == 1, check.report(result)
    proof = _happened(result, "reconciler", "takes that as proof")
    landed = _happened(result, "provider/time", "applies the confirm in flight")
    assert proof < landed, check.report(result)
    final = result.events[-1]
    assert final.status == "rolled_back" and final.state["intent0"] == 2 and final.state["refund"] == 0


def test_confirming_before_the_id_is_logged_leaves_two_charges(results):
    result = results["variant-confirm-before-logged"]
    assert result.errors == 1, check.report(result)
    _happened(result, "provider/time", "prunes the create key")
    final = result.events[-1]
    assert final.state["intent0"] == 2 and final.state["intent1"] == 2, check.report(result)


def test_f2_a_refund_sent_without_its_write_ahead_lands_after_the_reconciler_captured(results):
    result = results["variant-f2"]
    assert result.errors == 1, check.report(result)
    sent = next(i for i, e in enumerate(result.events) if "refunds without logging" in e.action)
    decided = _happened(result, "reconciler", "cancels the intent: refused, it succeeded")
    captured = _happened(result, "reconciler", "captures the hold")
    _happened(result, "provider/time", "applies the refund in flight")
    assert sent < decided < captured, check.report(result)
    assert "REFUND_REQUESTED" not in result.events[captured].log, check.report(result)
    final = result.events[-1]
    assert final.status == "completed" and final.state["refund"] == 2, check.report(result)


def test_f3_a_step_written_after_the_commit_is_lost_with_a_crash(results):
    result = results["variant-no-step-outbox"]
    assert result.errors == 1, check.report(result)
    committed = next(i for i, e in enumerate(result.events) if e.action.startswith("DB: "))
    crashed = _happened(result, result.events[committed].actor, "CRASHES")
    assert committed < crashed, check.report(result)
    final = result.events[-1]
    assert final.status in ("completed", "rolled_back")
    assert not {"CAPTURED", "COMPENSATED"} & set(final.log), check.report(result)


def test_a_lease_that_never_lapses_leaves_the_payment_pending_for_ever(results):
    result = results["variant-lease-never-lapses"]
    assert result.errors == 1 and "acceptance cycle" in result.violation, check.report(result)
    assert result.events[-1].status == "pending"
    assert any("nothing more happens" in line for line in result.timeline), check.report(result)


def test_the_timeline_reads_one_line_per_step():
    replay = "\n".join(
        [
            "@@2|claims the payment (lease)|0 0 0 0 0 0 0 0 1 2 0 0 0 0 0 0 0 1 0 0",
            "@@3|claims the payment (fences processors)|0 0 0 0 0 0 0 0 1 3 1 0 0 0 0 1 0 1 0 0",
            "@@0|applies the confirm in flight of intent #0|2 0 0 0 0 0 0 0 3 3 1 0 0 0 1 1 0 1 0 0",
            "<<<<<START OF CYCLE>>>>>",
            "@@3|DB: needs_attention|2 0 0 0 0 1 0 0 19 0 1 0 3 8192 1 0 2 1 0 0",
        ]
    )
    found = check.events(replay)
    lines = check.timeline(found, replay)
    assert [e.actor for e in found] == ["processor 2", "reconciler", "provider/time", "reconciler"]
    assert "(the lease of processor 2 lapsed)" in found[1].action
    assert found[2].log == ["RECEIVED", "INTENT_CREATED"]
    assert "#0 succeeded" in lines[3] and "pending, row: reconciler's claim" in lines[3]
    assert "repeats for ever" in lines[4]
    assert "needs_attention, row: an ended claim (outbox: NEEDS_ATTENTION)" in lines[5]
    assert "in flight: cancel" in lines[5]
    assert lines[5].rstrip().endswith("RECEIVED, INTENT_CREATED, CANCEL_REQUESTED (none)")


def test_the_runner_refuses_an_unknown_check():
    done = subprocess.run(
        [sys.executable, str(HERE / "check.py"), "--only", "property-9"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "unknown check(s): property-9" in done.stderr
