"""The operator console in a real browser (Debian's Chromium) against the real stack."""

from __future__ import annotations

import re
import uuid

import requests
from binpay_common.gateway import PaymentRef
from binpay_common.saga_log import PROCESSOR, SagaLog, Step
from console_pages import manage, sign_in
from google.cloud import firestore
from playwright.sync_api import expect
from wait_ready import wait


def initiate(stack, user_id: int, amount: str = "25.00") -> str:
    response = stack.api().post(
        f"{stack.initiator_url}/initiate-payment",
        json={"user_id": user_id, "amount": amount},
        headers={"Idempotency-Key": uuid.uuid4().hex},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def intent_of(stack, payment_id: str):
    [intent] = stack.provider().search_intents(payment_id)
    return intent


def log_intent_of_a_dead_processor(stack, payment_id: str, user_id: int, amount: int) -> None:
    """What a processor delivery leaves when it dies after creating the payment's intent: RECEIVED and
    INTENT_CREATED in the saga log, its lease lapsed."""
    intent = stack.provider().create_intent(PaymentRef(payment_id, amount, "USD", "pm_card_visa"))
    log = SagaLog(firestore.Client(project=stack.env["PROJECT_ID"]), "transactions", 60, PROCESSOR)
    fields = {"payment_id": payment_id, "user_id": user_id, "amount": amount, "currency": "USD"}
    created = Step("INTENT_CREATED", {"intent_id": intent.id}, {"intent_id": intent.id})
    log.claim_delivery(fields, "dead-processor", [Step("RECEIVED"), created])
    log.release(payment_id, "dead-processor")


def test_staff_find_a_payment_and_see_its_saga_across_both_services_and_the_provider(
    stack, staff_login, page, screenshot
):
    user = stack.create_funded_user()
    payment_id = initiate(stack, user["id"])
    stack.wait_terminal([payment_id])
    intent = intent_of(stack, payment_id)

    sign_in(page, stack, staff_login)
    expect(page.locator("h1")).to_have_text("Payments")
    page.fill("input[name=user]", str(user["id"]))
    page.click("form.filters button[type=submit]")
    page.click(f"a.payment-link:has-text('{payment_id}')")

    expect(page.locator("#payment-status")).to_have_text("completed")
    timeline = page.locator("#timeline")
    for step in ("RECEIVED", "INTENT_CREATED", "CHARGED", "COMPLETED"):
        expect(timeline.locator("tr", has_text=step).locator(".service")).to_have_text("processor")
    expect(timeline.locator("tr", has_text="CAPTURED").locator(".service")).to_have_text("initiator")
    expect(timeline).to_contain_text(f"intent {intent.id}")
    expect(timeline).to_contain_text("payment.initiated published")
    expect(page.locator("#provider-intents")).to_contain_text("succeeded")
    expect(page.locator("#problems")).to_have_count(0)
    screenshot("timeline")


def test_staff_settle_a_payment_that_needs_attention_and_its_hold_is_released(stack, staff_login, page, screenshot):
    user = stack.create_funded_user("100.00")
    # The processor died after creating the intent; the provider is down: the reconciler cannot tell
    # whether the intent took the money, and with --older-than 0 the payment is already past twice the timeout.
    stack.stop("processor-worker")
    payment_id = initiate(stack, user["id"], "40.00")
    log_intent_of_a_dead_processor(stack, payment_id, user["id"], 4000)
    stack.stop("gateway")
    try:
        summary = manage(stack, "reconcile", "--older-than", "0")
        assert '"needs_attention": 1' in summary, summary
    finally:
        stack.restart("gateway")
        assert not wait([f"{stack.gateway_url}/healthz"], 30)
    held = stack.api().get(f"{stack.initiator_url}/users/{user['id']}", timeout=10).json()["account"]["held"]
    assert held == 4000

    sign_in(page, stack, staff_login)
    page.click("nav >> text=Needs attention")
    row = page.locator("#attention tr", has_text=payment_id)
    expect(row).to_contain_text("gateway_unreachable")
    screenshot("queue")
    row.locator("select[name=action]").select_option("release")
    row.locator("input[name=reason]").fill("provider back; the intent never took the money")
    row.locator("button[type=submit]").click()

    expect(page.locator(".message.success")).to_contain_text("released")
    page.goto(f"{stack.initiator_url}/console/payments/{payment_id}/")
    expect(page.locator("#payment-status")).to_have_text("rolled_back")
    expect(page.locator("#account-held")).to_have_text("0.00 USD")
    expect(page.locator("#timeline tr", has_text="COMPENSATED")).to_contain_text("operator")
    screenshot("settled")
    account = stack.api().get(f"{stack.initiator_url}/users/{user['id']}", timeout=10).json()["account"]
    assert (account["held"], account["balance"]) == (0, 10000)
    stack.restart("processor-worker")


def test_a_signed_in_user_who_is_not_staff_is_refused(stack, customer_login, page, screenshot):
    sign_in(page, stack, customer_login)
    expect(page.locator("body")).to_contain_text(re.compile("403|Forbidden"))
    screenshot("refused")
    response = requests.get(f"{stack.initiator_url}/console/", allow_redirects=False, timeout=10)
    assert response.status_code == 302
