"""The invariant checker's own rules (unit tests: no services).

Each money check is fed a planted violation and must report it; the legal cases around it must pass.
"""

from __future__ import annotations

import check_invariants
import pytest
from saga_paths import load_saga_paths

PROCESSOR_STEPS = {"RECEIVED", "COMPLETED", "FAILED", "CHARGE_DECLINED"}
INITIATOR_STEPS = {"CAPTURED", "COMPENSATED", "NEEDS_ATTENTION"}


def log(*names: str, source: str | None = None) -> list[dict]:
    """A saga log; steps either service writes are the processor's unless `source` names an initiator component."""
    steps = []
    for seq, name in enumerate(names, start=1):
        service = "initiator" if name in INITIATOR_STEPS or (source and name not in PROCESSOR_STEPS) else "processor"
        detail = {"source": source} if service == "initiator" and source else {}
        if name in ("CHARGED", "REFUNDED"):
            detail["charge_id"] = "ch_1"
        steps.append({"id": f"{seq:02d}-{name}", "step": name, "seq": seq, "service": service, "detail": detail})
    return steps


def payment(status: str, amount: int = 1000, charge_id: str | None = None) -> dict:
    return {"id": "p", "status": status, "amount": amount, "currency": "USD", "charge_id": charge_id}


def row(charged: int = 0, refunded: int = 0, charges: int = 0, refunds: int = 0, reference: str = "p") -> dict:
    return {
        "reference": reference,
        "charges_succeeded": charges,
        "charges_failed": 0,
        "refunds": refunds,
        "amount_charged": charged,
        "amount_refunded": refunded,
    }


def charge(charge_id: str = "ch_1", amount: int = 1000, refunded: bool = False, status: str = "succeeded") -> dict:
    return {"id": charge_id, "amount": amount, "currency": "USD", "status": status, "refunded": refunded}


# --- saga-log paths (contracts/saga-log/steps.json) -------------------------------------------------


def test_the_contract_file_is_what_the_checker_uses():
    paths = load_saga_paths()
    assert check_invariants.PATHS == paths
    assert paths.next_steps[None] == {"RECEIVED", "CHARGED", "CHARGE_DECLINED", "CHARGE_CANCELED", "NEEDS_ATTENTION"}
    assert paths.next_steps["CAPTURED"] == frozenset()
    assert paths.last_steps("rolled_back") == {"COMPENSATED", "REFUNDED"}


LEGAL = [
    ("completed", log("RECEIVED", "CHARGED", "COMPLETED", "CAPTURED")),
    ("rolled_back", log("RECEIVED", "CHARGE_DECLINED", "FAILED", "COMPENSATED")),
    ("rolled_back", log("RECEIVED", "CHARGED", "REFUNDED", "COMPENSATED")),
    ("rolled_back", log("RECEIVED", "CHARGE_CANCELED", "FAILED", "COMPENSATED")),
    # the reconciler canceled the charge key of a payment whose processor stopped
    ("rolled_back", log("RECEIVED", "CHARGE_CANCELED", "COMPENSATED", source="reconciler")),
    # the reconciler found the charge the log did not show and logged it before capturing
    ("completed", log("RECEIVED", "CHARGED", "CAPTURED", source="reconciler")),
    # the late-charge sweeper: a charge found after the rollback, logged and refunded
    (
        "rolled_back",
        log("RECEIVED", "CHARGE_CANCELED", "FAILED", "COMPENSATED", "CHARGED", "REFUNDED", source="reconciler"),
    ),
    ("needs_attention", log("RECEIVED", "CHARGED", "COMPLETED", "NEEDS_ATTENTION")),
    # an operator settled a needs_attention payment
    ("completed", log("RECEIVED", "CHARGED", "NEEDS_ATTENTION", "CAPTURED", source="operator")),
    ("pending", log("RECEIVED", "CHARGED")),
]


@pytest.mark.parametrize(
    ("status", "steps"), LEGAL, ids=[f"{status}:{'-'.join(step['step'] for step in steps)}" for status, steps in LEGAL]
)
def test_the_real_paths_are_legal(status, steps):
    assert check_invariants.check_saga_log(payment(status), steps) == []


ILLEGAL = [
    # a charge compensated without its refund: the customer keeps paying
    ("rolled_back", log("RECEIVED", "CHARGED", "COMPENSATED"), "cannot follow CHARGED"),
    # a rollback on no definitive answer (finding 1: the processor's list by reference was empty)
    ("rolled_back", log("RECEIVED", "FAILED", "COMPENSATED"), "cannot follow RECEIVED"),
    # the reconciler compensating on an empty list (finding 2)
    ("rolled_back", log("RECEIVED", "COMPENSATED"), "cannot follow RECEIVED"),
    # captured from a charge the log never shows (finding 6)
    ("completed", log("RECEIVED", "CAPTURED"), "cannot follow RECEIVED"),
    ("completed", log("RECEIVED", "RECEIVED", "CAPTURED"), "logged twice"),
    ("completed", log("RECEIVED", "CHARGED", "COMPLETED"), "ends COMPLETED"),
    ("rolled_back", log("RECEIVED", "CHARGED", "REFUNDED"), "ends REFUNDED without COMPENSATED"),
    ("needs_attention", log("RECEIVED", "CHARGED", "COMPLETED", "CAPTURED"), "ends CAPTURED"),
]


@pytest.mark.parametrize(("status", "steps", "expected"), ILLEGAL)
def test_illegal_paths_are_violations(status, steps, expected):
    problems = check_invariants.check_saga_log(payment(status), steps)
    assert any(expected in problem for problem in problems), problems


def test_a_step_by_the_wrong_writer_is_a_violation():
    steps = log("RECEIVED", "CHARGED", "COMPLETED", "CAPTURED")
    steps[3]["service"] = "processor"
    assert any("written by processor" in p for p in check_invariants.check_saga_log(payment("completed"), steps))
    # dead letters only close a log (CAPTURED / COMPENSATED); they never learn of a charge
    by_dead_letter = log("RECEIVED", "CHARGED", "CAPTURED", source="dead_letter")
    problems = check_invariants.check_saga_log(payment("completed"), by_dead_letter)
    assert any("from source dead_letter" in p for p in problems), problems


def test_a_gap_in_the_numbering_and_a_misnamed_step_document_are_violations():
    gap = log("RECEIVED", "CHARGED", "COMPLETED", "CAPTURED")
    gap[2]["seq"] = 4
    assert any("seq not 1..n" in p for p in check_invariants.check_saga_log(payment("completed"), gap))
    misnamed = log("RECEIVED", "CHARGED", "COMPLETED", "CAPTURED")
    misnamed[1]["id"] = "02-CHARGE"
    assert any("should be 02-CHARGED" in p for p in check_invariants.check_saga_log(payment("completed"), misnamed))


# --- the gateway's money, by amount ---------------------------------------------------------------


def test_settled_money_that_matches_passes():
    assert check_invariants.check_gateway(payment("completed"), row(1000, 0, 1, 0)) == []
    assert check_invariants.check_gateway(payment("rolled_back"), row(1000, 1000, 1, 1)) == []
    assert check_invariants.check_gateway(payment("rolled_back"), None) == []
    # a late charge refunded after the rollback: two charges, both refunded
    assert check_invariants.check_gateway(payment("rolled_back"), row(2000, 2000, 2, 2)) == []


@pytest.mark.parametrize(
    ("status", "entry", "expected"),
    [
        ("rolled_back", row(1000, 0, 1, 0), "rolled back but charged 1000 and refunded 0"),
        # as many refunds as charges, but of less than was charged: only amounts show it
        ("rolled_back", row(1000, 500, 1, 1), "rolled back but charged 1000 and refunded 500"),
        ("rolled_back", row(2000, 1000, 2, 1), "rolled back but charged 2000 and refunded 1000"),
        ("completed", None, "completed but the gateway holds 0 of 1000"),
        ("completed", row(1000, 1000, 1, 1), "completed but the gateway holds 0 of 1000"),
        ("completed", row(2000, 0, 2, 0), "the gateway holds 2000 for a payment of 1000"),
        ("completed", row(900, 0, 1, 0), "completed but the gateway holds 900 of 1000"),
        ("needs_attention", row(2000, 0, 2, 0), "the gateway holds 2000 for a payment of 1000"),
    ],
)
def test_money_violations_at_the_gateway_are_found(status, entry, expected):
    problems = check_invariants.check_gateway(payment(status), entry)
    assert any(expected in problem for problem in problems), problems


def test_a_standing_charge_on_a_reference_that_is_no_payment_is_a_violation():
    ledger = [row(1000, 0, 1, 0, reference="p"), row(500, 0, 1, 0, reference="ghost"), row(700, 700, 1, 1, "gone")]
    assert check_invariants.check_ledger_references(ledger, {"p"}) == [
        "charge of 500 stands on reference ghost, which is no payment"
    ]
    # a payment outside the checked users is a payment
    assert check_invariants.check_ledger_references(ledger, {"p"}, lambda reference: reference == "ghost") == []


# --- charge ids: the saga log names the gateway's charge ------------------------------------------


def test_the_charge_the_log_names_is_the_gateways():
    steps = log("RECEIVED", "CHARGED", "COMPLETED", "CAPTURED")
    ok = check_invariants.check_charge_ids(
        payment("completed", charge_id="ch_1"), {"charge_id": "ch_1"}, steps, [charge()]
    )
    assert ok == []


@pytest.mark.parametrize(
    ("status", "document", "charges", "expected"),
    [
        # the log's CHARGED names a charge the gateway never made for this payment
        ("completed", {"charge_id": "ch_1"}, [charge("ch_2")], "names charge ch_1, not a succeeded charge"),
        # the gateway's charge failed; the log says it succeeded
        ("completed", {"charge_id": "ch_1"}, [charge(status="failed")], "names charge ch_1, not a succeeded charge"),
        # captured from one charge while another stands
        ("completed", {"charge_id": "ch_1"}, [charge("ch_1"), charge("ch_2")], "gateway stands"),
        # the standing charge is of another amount
        ("completed", {"charge_id": "ch_1"}, [charge(amount=999)], "is 999 USD, the payment 1000 USD"),
        # the document's charge id is no charge of this payment
        ("completed", {"charge_id": "ch_9"}, [charge()], "saga document names charge ch_9, not a charge the gateway"),
        # a completed payment whose document keeps a failed charge's id while another charge stands
        ("completed", {"charge_id": "ch_0"}, [charge("ch_0", status="failed"), charge()], "gateway stands"),
    ],
)
def test_a_charge_id_that_is_not_the_gateways_is_a_violation(status, document, charges, expected):
    steps = log("RECEIVED", "CHARGED", "COMPLETED", "CAPTURED")
    problems = check_invariants.check_charge_ids(payment(status, charge_id="ch_1"), document, steps, charges)
    assert any(expected in problem for problem in problems), problems


def test_a_declined_payment_may_keep_the_failed_charges_id():
    steps = log("RECEIVED", "CHARGE_DECLINED", "FAILED", "COMPENSATED")
    failed = charge("ch_0", status="failed")
    assert check_invariants.check_charge_ids(payment("rolled_back"), {"charge_id": "ch_0"}, steps, [failed]) == []


def test_a_charged_step_without_a_charge_id_is_a_violation():
    steps = log("RECEIVED", "CHARGED", "COMPLETED", "CAPTURED")
    steps[1]["detail"] = {}
    problems = check_invariants.check_charge_ids(payment("completed"), {}, steps, [charge()])
    assert any("CHARGED without a charge_id" in problem for problem in problems), problems


# --- accounts against the caller's own deposits ---------------------------------------------------


def account(balance: int, held: int) -> dict:
    return {"id": 7, "account": {"balance": balance, "held": held, "available": balance - held}}


def test_the_account_matches_what_was_deposited_and_completed():
    payments = [payment("completed", 300), payment("pending", 200), payment("rolled_back", 400)]
    assert check_invariants.check_account(account(700, 200), 1000, payments) == []


@pytest.mark.parametrize(
    ("user", "deposited", "expected"),
    [
        # a deposit the API reports but the test never made (or lost): the caller's record wins
        (account(1700, 200), 1000, "balance 1700 != deposits 1000 - completed 300"),
        # a hold released while its payment is pending
        (account(700, 0), 1000, "held 0 != pending holds 200"),
        # a completed payment captured twice
        (account(400, 200), 1000, "balance 400 != deposits 1000 - completed 300"),
    ],
)
def test_account_violations_are_found(user, deposited, expected):
    payments = [payment("completed", 300), payment("pending", 200), payment("rolled_back", 400)]
    problems = check_invariants.check_account(user, deposited, payments)
    assert any(expected in problem for problem in problems), problems


def test_negative_available_is_a_violation():
    problems = check_invariants.check_account(
        {"id": 7, "account": {"balance": 100, "held": 200, "available": -100}}, 100, [payment("pending", 200)]
    )
    assert any("negative" in problem for problem in problems), problems
