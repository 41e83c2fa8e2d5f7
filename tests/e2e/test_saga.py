"""The payment saga across both services, once in pull mode and once in push mode."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import check_invariants  # devtools/, put on sys.path by conftest.py
import pytest
import requests


def saga_steps(stack, payment_id: str) -> list[str]:
    payment = stack.api().get(f"{stack.initiator_url}/payments/{payment_id}", timeout=10).json()
    return [step["step"] for step in (payment["saga_log"] or {}).get("steps", [])]


def processor_steps(stack, payment_id: str) -> list[str]:
    response = requests.get(f"{stack.processor_url}/transactions/{payment_id}", timeout=10)
    assert response.status_code == 200, response.text
    return [step["step"] for step in response.json()["steps"]]


def pay(stack, user_id: int, amount: str, **fields) -> dict:
    response = stack.api().post(
        f"{stack.initiator_url}/initiate-payment", data={"user_id": user_id, "amount": amount, **fields}, timeout=10
    )
    assert response.status_code == 202, response.text
    return response.json()


@pytest.mark.skipif(shutil.which("curl") is None, reason="the seed's command needs curl")
def test_seed_curl_completes_and_debits_once(stack):
    api = stack.api()
    before = api.get(f"{stack.initiator_url}/users/1", timeout=10).json()["account"]

    result = subprocess.run(
        [
            "curl", "-sS", "-X", "POST",
            "-H", f"Authorization: Bearer {stack.api_key}",
            "-d", "user_id=1&amount=100.00",
            "-w", "\n%{http_code}",
            f"{stack.initiator_url}/initiate-payment",
        ],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "202", body
    payment_id = json.loads(body)["id"]

    payment = stack.wait_terminal([payment_id])[payment_id]
    assert payment["status"] == "completed"
    assert payment["amount"] == 10000 and payment["currency"] == "USD"
    after = api.get(f"{stack.initiator_url}/users/1", timeout=10).json()["account"]
    assert after["balance"] == before["balance"] - 10000
    assert after["held"] == before["held"]
    # The intent's id is logged before the confirm that takes the money.
    steps = ["RECEIVED", "INTENT_CREATED", "CHARGED", "COMPLETED", "CAPTURED"]
    assert saga_steps(stack, payment_id) == steps
    assert processor_steps(stack, payment_id) == steps
    money = stack.money(payment_id)
    assert (money.intents, money.succeeded, money.refunds, money.amount_charged) == (1, 1, 0, 10000)


def test_gateway_decline_rolls_back_and_releases_funds(stack):
    user = stack.create_funded_user("500.00")
    # Stripe's test card that is always declined (the sandbox knows it; amounts ending .51 are its magic decline).
    payment = pay(stack, user["id"], "100.00", payment_method="pm_card_chargeDeclined")

    settled = stack.wait_terminal([payment["id"]])[payment["id"]]
    assert settled["status"] == "rolled_back"
    assert settled["failure_reason"] == "generic_decline"
    assert settled["payment_method"] == "pm_card_chargeDeclined"
    account = stack.api().get(f"{stack.initiator_url}/users/{user['id']}", timeout=10).json()["account"]
    assert (account["balance"], account["held"], account["available"]) == (50000, 0, 50000)
    assert saga_steps(stack, payment["id"]) == [
        "RECEIVED", "INTENT_CREATED", "CHARGE_DECLINED", "CHARGE_CANCELED", "FAILED", "COMPENSATED"
    ]  # fmt: skip
    assert stack.money(payment["id"]).succeeded == 0


def test_processor_failure_after_charge_is_refunded_and_rolled_back(stack):
    user = stack.create_funded_user("500.00")
    payment = pay(stack, user["id"], "42.00", **{"metadata[simulate_failure]": "after_charge"})

    settled = stack.wait_terminal([payment["id"]])[payment["id"]]
    assert settled["status"] == "rolled_back"
    assert settled["failure_reason"] == "processor_failure"
    account = stack.api().get(f"{stack.initiator_url}/users/{user['id']}", timeout=10).json()["account"]
    assert (account["balance"], account["held"]) == (50000, 0)
    assert saga_steps(stack, payment["id"]) == [
        "RECEIVED", "INTENT_CREATED", "CHARGED", "REFUND_REQUESTED", "REFUNDED", "COMPENSATED"
    ]  # fmt: skip
    money = stack.money(payment["id"])
    assert (money.succeeded, money.refunds, money.standing) == (1, 1, 0)


def test_idempotent_initiation_reserves_once(stack):
    user = stack.create_funded_user("100.00")
    key = uuid.uuid4().hex
    answers = [
        stack.api().post(
            f"{stack.initiator_url}/initiate-payment",
            json={"user_id": user["id"], "amount": "60.00"},
            headers={"Idempotency-Key": key},
            timeout=10,
        )
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len({a.json()["id"] for a in answers}) == 1
    stack.wait_terminal([answers[0].json()["id"]])
    account = stack.api().get(f"{stack.initiator_url}/users/{user['id']}", timeout=10).json()["account"]
    assert account["balance"] == 4000
    assert stack.money(answers[0].json()["id"]).succeeded == 1


# Amount endings (gateway/README.md): 00 approve, 51/52 decline, 53 503 before execution, 55 lost
# response, 57 slow, 58 a 500 saved under the create key, 60 under the confirm key; "after_charge"
# injects a processor failure after the charge.
BURST_KINDS = [("00", None)] * 8 + [("51", None), ("52", None), ("53", None), ("55", None), ("57", None)]
BURST_KINDS += [("58", None), ("60", None)] + [("00", "after_charge")] * 2


def test_burst_of_concurrent_payments_keeps_every_invariant(stack, report_figures):
    rng = random.Random(20261126)
    users = [stack.create_funded_user("2000.00") for _ in range(10)]
    orders = []
    for index in range(200):
        ending, fault = rng.choice(BURST_KINDS)
        fields = {"metadata[simulate_failure]": fault} if fault else {}
        orders.append((users[index % len(users)]["id"], f"{rng.randint(1, 150)}.{ending}", fields))

    def submit(order):
        user_id, amount, fields = order
        response = stack.api().post(
            f"{stack.initiator_url}/initiate-payment",
            data={"user_id": user_id, "amount": amount, **fields},
            timeout=30,
        )
        return response.status_code, response.json()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(submit, orders))
    accepted = [body["id"] for status, body in answers if status == 202]
    refused = [(status, body["error"]["code"]) for status, body in answers if status != 202]
    assert all(code == "insufficient_funds" for _, code in refused), refused
    assert len(accepted) >= 150

    settled = stack.wait_terminal(accepted, timeout=240)
    settle_seconds = time.monotonic() - started
    report = check_invariants.check(stack.invariant_sources(), [user["id"] for user in users], deposits=stack.deposits)
    report_figures(
        f"[{stack.mode}] burst: {len(orders)} submitted, {len(accepted)} accepted, "
        f"{len(refused)} refused for funds; {dict(report.by_status)}; intents {report.intents_succeeded} succeeded, "
        f"refunds {report.refunds}, violations {len(report.violations)}; all settled in {settle_seconds:.1f}s"
    )
    assert report.violations == []
    assert report.payments == len(settled)
    assert report.by_status["completed"] > 0 and report.by_status["rolled_back"] > 0
