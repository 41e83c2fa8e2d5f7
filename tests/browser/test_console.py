"""The operator console in a real browser (Debian's Chromium) against the real stack."""

from __future__ import annotations

import re
import uuid

import requests
from console_pages import manage, sign_in
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


def charges(stack, payment_id: str) -> list[dict]:
    response = stack.gateway().get(f"{stack.gateway_url}/v1/charges", params={"reference": payment_id}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]


def test_staff_find_a_payment_and_see_its_saga_across_both_services_and_the_gateway(
    stack, staff_login, page, screenshot
):
    user = stack.create_funded_user()
    payment_id = initiate(stack, user["id"])
    stack.wait_terminal([payment_id])
    [charge] = charges(stack, payment_id)

    sign_in(page, stack, staff_login)
    expect(page.locator("h1")).to_have_text("Payments")
    page.fill("input[name=user]", str(user["id"]))
    page.click("form.filters button[type=submit]")
    page.click(f"a.payment-link:has-text('{payment_id}')")

    expect(page.locator("#payment-status")).to_have_text("completed")
    timeline = page.locator("#timeline")
    for step, service in (("RECEIVED", "processor"), ("CHARGED", "processor"), ("COMPLETED", "processor")):
        expect(timeline.locator("tr", has_text=step).locator(".service")).to_have_text(service)
    expect(timeline.locator("tr", has_text="CAPTURED").locator(".service")).to_have_text("initiator")
    expect(timeline).to_contain_text(f"charge {charge['id']}")
    expect(timeline).to_contain_text("payment.initiated published")
    expect(page.locator("#gateway-charges")).to_contain_text("succeeded")
    expect(page.locator("#problems")).to_have_count(0)
    screenshot("timeline")


def test_staff_settle_a_payment_that_needs_attention_and_its_hold_is_released(stack, staff_login, page, screenshot):
    user = stack.create_funded_user("100.00")
    # No processor: the payment stays pending. The gateway down: the reconciler cannot tell whether
    # it was charged, and with --older-than 0 the payment is already past twice the timeout.
    stack.stop("processor-worker")
    stack.stop("gateway")
    try:
        payment_id = initiate(stack, user["id"], "40.00")
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
    row.locator("input[name=reason]").fill("gateway back; no charge for this reference")
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
