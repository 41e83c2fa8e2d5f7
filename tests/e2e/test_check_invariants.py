"""The invariant checker's own rules (unit tests: no services)."""

from __future__ import annotations

import check_invariants


def log(*names: str) -> list[dict]:
    return [{"id": f"{seq:02d}-{name}", "step": name, "seq": seq} for seq, name in enumerate(names, start=1)]


def test_the_processors_paths_and_the_initiators_settlements_are_legal():
    legal = [
        ("completed", log("RECEIVED", "CHARGED", "COMPLETED", "CAPTURED")),
        ("rolled_back", log("RECEIVED", "CHARGE_DECLINED", "FAILED", "COMPENSATED")),
        ("rolled_back", log("RECEIVED", "CHARGED", "REFUNDED", "COMPENSATED")),
        # the processor died after recording a decline; the reconciler found no charge
        ("rolled_back", log("RECEIVED", "CHARGE_DECLINED", "COMPENSATED")),
        # it died after the charge; the reconciler found the charge standing
        ("completed", log("RECEIVED", "CHARGED", "CAPTURED")),
        ("needs_attention", log("RECEIVED", "CHARGED", "COMPLETED", "NEEDS_ATTENTION")),
    ]
    for status, steps in legal:
        assert check_invariants.check_saga_log({"id": "p", "status": status}, steps) == [], steps


def test_a_standing_charge_compensated_a_repeated_step_and_a_gap_are_violations():
    compensated_charge = check_invariants.check_saga_log(
        {"id": "p", "status": "rolled_back"}, log("RECEIVED", "CHARGED", "COMPENSATED")
    )
    assert any("cannot follow CHARGED" in problem for problem in compensated_charge)
    twice = check_invariants.check_saga_log({"id": "p", "status": "completed"}, log("RECEIVED", "RECEIVED", "CAPTURED"))
    assert any("logged twice" in problem for problem in twice)
    gap = log("RECEIVED", "CHARGED", "COMPLETED", "CAPTURED")
    gap[2]["seq"] = 4
    assert any(
        "seq not 1..n" in problem
        for problem in check_invariants.check_saga_log({"id": "p", "status": "completed"}, gap)
    )
