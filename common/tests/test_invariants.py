"""The money invariants (binpay_common.invariants): each check is fed a planted violation and must report
it; the legal cases around it must pass. The invariant checker and the console run these rules."""

from __future__ import annotations

import pytest
from binpay_common import invariants
from binpay_common.gateway import Intent, IntentStatus, Refund, RefundStatus


def payment(status: str, amount: int = 1000, charge_id: str | None = None, **extra) -> dict:
    return {"id": "p", "status": status, "amount": amount, "currency": "USD", "charge_id": charge_id, **extra}


def intent(
    intent_id: str = "pi_1", status: IntentStatus = IntentStatus.SUCCEEDED, amount: int = 1000, charge: str = "ch_1"
) -> Intent:
    taken = status is IntentStatus.SUCCEEDED
    return Intent(intent_id, status, amount, "USD", "p", charge if taken else None, None, None, 0)


def refund(amount: int = 1000, status: RefundStatus = RefundStatus.SUCCEEDED, intent_id: str = "pi_1") -> Refund:
    return Refund(f"re_{intent_id}", intent_id, "ch_1", amount, status, None)


def test_settled_money_that_matches_passes():
    assert invariants.check_provider(payment("completed"), "pi_1", [intent()], {"pi_1": []}) == []
    canceled = intent(status=IntentStatus.CANCELED)
    assert invariants.check_provider(payment("rolled_back"), "pi_1", [canceled], {"pi_1": []}) == []
    assert invariants.check_provider(payment("rolled_back"), "pi_1", [intent()], {"pi_1": [refund()]}) == []
    # A refund still pending gives the money back too.
    pending = refund(status=RefundStatus.PENDING)
    assert invariants.check_provider(payment("rolled_back"), "pi_1", [intent()], {"pi_1": [pending]}) == []
    # A rolled-back payment with no intent logged: nothing could land.
    assert invariants.check_provider(payment("rolled_back"), None, [], {}) == []


@pytest.mark.parametrize(
    ("status", "intents", "refunds", "expected"),
    [
        ("rolled_back", [intent()], {"pi_1": []}, "rolled back but the provider holds 1000"),
        ("rolled_back", [intent()], {"pi_1": [refund(status=RefundStatus.FAILED)]}, "rolled back but"),
        ("completed", [intent()], {"pi_1": [refund()]}, "completed but the money stands in"),
        # A second intent that took money beside a completed payment's own is money held twice.
        ("completed", [intent(), intent("pi_2", charge="ch_2")], {"pi_1": [], "pi_2": []}, "holds 2000"),
        ("completed", [intent(amount=900)], {"pi_1": []}, "took 900 USD"),
        ("rolled_back", [intent()], {"pi_1": [refund(), refund(intent_id="pi_1")]}, "refunded more than it took"),
        (
            "rolled_back",
            [intent(status=IntentStatus.REQUIRES_CONFIRMATION)],
            {"pi_1": []},
            "still requires_confirmation",
        ),
    ],
    ids=["unrefunded", "refund-failed", "completed-refunded", "two-charges", "other-amount", "over-refund", "open"],
)
def test_money_violations_are_found(status, intents, refunds, expected):
    problems = invariants.check_provider(payment(status), "pi_1", intents, refunds)
    assert any(expected in problem for problem in problems), problems


def test_a_refund_failure_that_was_surfaced_is_not_a_violation():
    failed = {"pi_1": [refund(status=RefundStatus.FAILED)]}
    assert invariants.check_provider(payment("rolled_back", refund_failed=True), "pi_1", [intent()], failed) == []


def test_the_charge_ids_the_log_names_are_the_providers():
    steps = [{"step": "CHARGED", "detail": {"intent_id": "pi_1", "charge_id": "ch_1"}}]
    assert invariants.check_charge_ids(payment("completed", charge_id="ch_1"), steps, [intent()]) == []
    wrong = [{"step": "CHARGED", "detail": {"intent_id": "pi_1", "charge_id": "ch_other"}}]
    assert invariants.check_charge_ids(payment("completed"), wrong, [intent()])
    unknown = [{"step": "INTENT_CREATED", "detail": {"intent_id": "pi_ghost"}}]
    assert any(
        "unknown to the provider" in p for p in invariants.check_charge_ids(payment("pending"), unknown, [intent()])
    )
    assert invariants.check_charge_ids(payment("completed"), [{"step": "CHARGED", "detail": {}}], [intent()])


def account(balance: int, held: int) -> dict:
    return {"id": 7, "account": {"balance": balance, "held": held, "available": balance - held}}


def test_the_account_matches_what_was_deposited_and_completed():
    payments = [payment("completed", 300), payment("pending", 200), payment("rolled_back", 400)]
    assert invariants.check_account(account(700, 200), 1000, payments) == []


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
    problems = invariants.check_account(user, deposited, payments)
    assert any(expected in problem for problem in problems), problems


def test_negative_available_is_a_violation():
    problems = invariants.check_account(
        {"id": 7, "account": {"balance": 100, "held": 200, "available": -100}}, 100, [payment("pending", 200)]
    )
    assert any("negative" in problem for problem in problems), problems
