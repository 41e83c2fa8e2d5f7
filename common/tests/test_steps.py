"""The saga log's legal paths (contracts/saga-log/steps.json) as the invariant checker and the console judge them."""

from __future__ import annotations

import pytest
from binpay_common import steps
from binpay_common.steps import PATHS, LoggedStep, check_saga_log


def log(*names: str, service: str = "processor", source: str | None = None) -> list[LoggedStep]:
    settlement = {"CAPTURED", "COMPENSATED", "NEEDS_ATTENTION"}
    return [LoggedStep("initiator" if name.split(":")[0] in settlement else service, source, name) for name in names]


LEGAL = {
    "completed": ("completed", log("RECEIVED", "INTENT_CREATED", "CHARGED", "COMPLETED", "CAPTURED")),
    "declined": (
        "rolled_back",
        log("RECEIVED", "INTENT_CREATED", "CHARGE_DECLINED", "CHARGE_CANCELED", "FAILED", "COMPENSATED"),
    ),
    "refunded after the charge": (
        "rolled_back",
        log("RECEIVED", "INTENT_CREATED", "CHARGED", "REFUND_REQUESTED", "REFUNDED", "COMPENSATED"),
    ),
    "no intent ever created": ("rolled_back", log("RECEIVED", "FAILED", "COMPENSATED")),
    "a late intent refunded by the sweeper": (
        "completed",
        log(
            "RECEIVED",
            "INTENT_CREATED",
            "CHARGED",
            "COMPLETED",
            "CAPTURED",
            "REFUND_REQUESTED:pi_late",
            "REFUNDED:pi_late",
        ),
    ),
}

ILLEGAL = {
    # A payment cannot complete while its own charge is being refunded.
    "captured after its refund was announced": (
        "completed",
        log("RECEIVED", "INTENT_CREATED", "CHARGED", "REFUND_REQUESTED", "CAPTURED"),
        "came before CAPTURED",
    ),
    # A late delivery cannot re-open a payment already compensated.
    "received after the compensation": ("rolled_back", log("COMPENSATED", "RECEIVED"), "cannot follow COMPENSATED"),
    "released while its intent may still land": (
        "rolled_back",
        log("RECEIVED", "INTENT_CREATED", "COMPENSATED"),
        "without one of CHARGE_CANCELED, REFUNDED",
    ),
    "a refund announced and never answered": (
        "rolled_back",
        log("RECEIVED", "INTENT_CREATED", "CHARGED", "REFUND_REQUESTED", "COMPENSATED"),
        "cannot follow REFUND_REQUESTED",
    ),
    "a step twice": ("completed", log("RECEIVED", "RECEIVED"), "logged twice"),
    "a settlement by the processor": (
        "completed",
        [LoggedStep("processor", None, name) for name in ("RECEIVED", "INTENT_CREATED", "CHARGED", "CAPTURED")],
        "written by processor",
    ),
}


@pytest.mark.parametrize("status,logged", LEGAL.values(), ids=list(LEGAL))
def test_legal_paths(status, logged) -> None:
    assert PATHS.check(status, logged) == []


@pytest.mark.parametrize("status,logged,problem", ILLEGAL.values(), ids=list(ILLEGAL))
def test_illegal_paths(status, logged, problem) -> None:
    found = PATHS.check(status, logged)
    assert any(problem in line for line in found), found


def test_unresolved_write_ahead_is_reported_on_a_settled_payment() -> None:
    logged = log("RECEIVED", "INTENT_CREATED", "CANCEL_REQUESTED", "CHARGE_CANCELED", "FAILED", "COMPENSATED")
    assert PATHS.check("rolled_back", logged) == []
    stuck = log("CAPTURED", "CANCEL_REQUESTED:pi_x")
    assert any(
        "CANCEL_REQUESTED:pi_x was never resolved" in line for line in PATHS._unresolved([s.identity for s in stuck])
    )


def test_check_saga_log_compares_steps_done_with_the_step_documents() -> None:
    document = {"intent_id": "pi_1", "steps_done": ["RECEIVED", "INTENT_CREATED"]}
    step_docs = [
        {"id": "01-RECEIVED", "step": "RECEIVED", "seq": 1, "service": "processor", "detail": {}},
        {
            "id": "02-INTENT_CREATED",
            "step": "INTENT_CREATED",
            "seq": 2,
            "service": "processor",
            "detail": {"intent_id": "pi_1"},
        },
    ]
    assert check_saga_log({"id": "p", "status": "pending"}, document, step_docs) == []
    assert check_saga_log({"id": "p", "status": "pending"}, {**document, "steps_done": ["RECEIVED"]}, step_docs)


def test_the_step_names_in_code_are_the_contracts() -> None:
    in_code = {
        value for name, value in vars(steps).items() if name.isupper() and isinstance(value, str) and value.isupper()
    }
    assert in_code == set(steps.STEP_NAMES)
