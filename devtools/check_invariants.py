"""Check BinPay's money and saga invariants across the three sources of truth.

Reads the initiator's API (users, accounts, payments; deposits unless the caller passes its own
record), the Firestore saga log and the payment provider through the gateway port, and reports
counts by final state, intents, refunds and every violation:

- the provider: for every intent the saga log names (read by id — the log is the index, never a
  search), what it holds: a completed payment has exactly its amount standing in its own intent, a
  rolled-back one nothing (a refund that failed is surfaced, not a violation); and, scanning every
  intent of the account created since the oldest checked payment, no money stands in an intent no
  saga log names;
- the saga log: only the paths in contracts/saga-log/steps.json, ending as the final status
  requires, every announced call resolved; every intent and charge id it names is the provider's;
- the accounts: balance == deposits - completed payments, held == open holds.

The rules are binpay_common.invariants and binpay_common.steps (the operator console runs the same
ones on one payment); this module fetches what they judge and reports. A library (``check``, which
the tests call) and a command:

    python devtools/check_invariants.py [--user ID ...]    # defaults fit `make run`

It prints a table and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests
from binpay_common import invariants, steps
from binpay_common.gateway import GatewayError, Intent
from binpay_common.gateway.stripe_api import StripeGateway
from binpay_common.saga_log import INITIATOR, SagaLog
from google.cloud import firestore


@dataclass
class Sources:
    initiator_url: str
    api_key: str
    gateway_url: str
    gateway_api_key: str
    project_id: str
    collection: str = "transactions"


@dataclass
class Report:
    payments: int = 0
    by_status: collections.Counter = field(default_factory=collections.Counter)
    intents: int = 0
    intents_succeeded: int = 0
    refunds: int = 0
    refunds_failed: int = 0
    amount_charged: int = 0
    amount_refunded: int = 0
    violations: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [("payments", self.payments)]
        rows += [(f"  {status}", count) for status, count in sorted(self.by_status.items())]
        rows += [("intents", self.intents), ("  succeeded", self.intents_succeeded)]
        rows += [("refunds", self.refunds), ("  failed (surfaced)", self.refunds_failed)]
        rows += [("amount charged", self.amount_charged), ("amount refunded", self.amount_refunded)]
        rows += [("violations", len(self.violations))]
        lines = [f"{name:<24}{value:>12}" for name, value in rows]
        lines += [f"  - {violation}" for violation in self.violations[:50]]
        if len(self.violations) > 50:
            lines.append(f"  ... and {len(self.violations) - 50} more")
        return "\n".join(lines)


def _pages(session: requests.Session, url: str) -> list[dict]:
    items: list[dict] = []
    params: dict[str, object] = {"limit": 100}
    while True:
        response = session.get(url, params=params, timeout=30)
        response.raise_for_status()
        body = response.json()
        items += body["data"]
        if not body.get("has_more") or not body["data"]:
            return items
        params["starting_after"] = body["data"][-1]["id"]


def check(
    sources: Sources,
    user_ids: list[int] | None = None,
    require_terminal: bool = True,
    deposits: dict[int, int] | None = None,
) -> Report:
    """Check the given users (default: all) and every intent of the provider account since their first payment.

    `deposits` is the caller's own record of what each user deposited, in minor units; without it
    the initiator's deposit list is believed.
    """
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sources.api_key}"
    gateway = StripeGateway(
        api_base=sources.gateway_url, api_key=sources.gateway_api_key, connect_timeout=5, read_timeout=30
    )
    saga_log = SagaLog(firestore.Client(project=sources.project_id), sources.collection, 0, INITIATOR)
    report = Report()
    base = sources.initiator_url.rstrip("/")
    if user_ids is None:
        user_ids = [user["id"] for user in _pages(session, f"{base}/users")]
    named: set[str] = set()
    checked: set[str] = set()
    first_created: float | None = None
    for user_id in user_ids:
        user = session.get(f"{base}/users/{user_id}", timeout=30)
        user.raise_for_status()
        payments = _pages(session, f"{base}/users/{user_id}/payments")
        if deposits is None:
            deposited = sum(d["amount"] for d in _pages(session, f"{base}/users/{user_id}/deposits"))
        else:
            deposited = deposits[user_id]
        report.violations += invariants.check_account(user.json(), deposited, payments)
        for payment in payments:
            report.payments += 1
            report.by_status[payment["status"]] += 1
            checked.add(payment["id"])
            created = datetime.fromisoformat(payment["created_at"].replace("Z", "+00:00")).timestamp()
            first_created = created if first_created is None else min(first_created, created)
            if require_terminal and payment["status"] not in invariants.TERMINAL_STATUSES:
                report.violations.append(f"{payment['id']}: still {payment['status']}")
                continue
            found = saga_log.read_with_steps(payment["id"])
            document, steps_read = found or ({}, [])
            report.violations += steps.check_saga_log(payment, document, steps_read)
            intent_ids = _named_intents(document, steps_read)
            named.update(intent_ids)
            intents = [gateway.retrieve_intent(intent_id) for intent_id in intent_ids]
            refunds = {intent.id: gateway.refunds_of(intent.id) for intent in intents}
            _count(report, intents, refunds)
            # A refund failure the sweeper surfaced (REFUND_FAILED, as the console's refund_failed_at) is
            # for a person to settle, not a violation; the API does not expose the flag, the log has it.
            surfaced = any(step.get("step") == steps.REFUND_FAILED for step in steps_read)
            checked_payment = {**payment, "refund_failed": surfaced}
            report.violations += invariants.check_provider(checked_payment, document.get("intent_id"), intents, refunds)
            report.violations += invariants.check_charge_ids(payment, steps_read, intents)
    if first_created is not None:
        report.violations += _unnamed_money(gateway, int(first_created), named, checked, base, session)
    return report


def _named_intents(document: dict, steps_read: list[dict]) -> list[str]:
    named = [document["intent_id"]] if document.get("intent_id") else []
    for step in steps_read:
        intent_id = (step.get("detail") or {}).get("intent_id")
        if intent_id and intent_id not in named:
            named.append(intent_id)
    return named


def _count(report: Report, intents: list[Intent], refunds: dict) -> None:
    report.intents += len(intents)
    report.intents_succeeded += sum(1 for intent in intents if intent.captured)
    report.amount_charged += sum(intent.captured for intent in intents)
    for given in refunds.values():
        report.refunds += len(given)
        report.refunds_failed += sum(1 for refund in given if refund.status == "failed")
        report.amount_refunded += sum(refund.amount for refund in given if refund.gives_money_back)


def _unnamed_money(
    gateway: StripeGateway, since: int, named: set[str], checked: set[str], base: str, session
) -> list[str]:
    """Money standing in an intent no saga log of the checked payments names (the account scan).

    An intent whose metadata names a payment of another user is that payment's check's business.
    """
    problems = []
    for intent in gateway.list_intents(created_gte=since - 60):
        if intent.id in named or not intent.captured:
            continue
        other_payment = intent.payment_id and intent.payment_id not in checked
        if other_payment and session.get(f"{base}/payments/{intent.payment_id}", timeout=30).status_code == 200:
            continue
        held = invariants.standing(intent, gateway.refunds_of(intent.id))
        if held:
            problems.append(f"intent {intent.id} holds {held} {intent.currency} and no saga log names it")
    return problems


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parent.parent
    key_file = root / ".run" / "local" / "api-key"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--initiator-url", default=os.environ.get("INITIATOR_URL", "http://127.0.0.1:8000"))
    parser.add_argument(
        "--api-key",
        default=os.environ.get("BINPAY_API_KEY") or (key_file.read_text().strip() if key_file.exists() else None),
    )
    parser.add_argument("--gateway-url", default=os.environ.get("PAYMENT_GATEWAY_URL", "http://127.0.0.1:8090"))
    parser.add_argument("--gateway-api-key", default=os.environ.get("PAYMENT_GATEWAY_API_KEY", "sk_test_sandbox"))
    parser.add_argument("--project-id", default=os.environ.get("PROJECT_ID", "binpay-local"))
    parser.add_argument("--collection", default=os.environ.get("FIRESTORE_COLLECTION", "transactions"))
    parser.add_argument("--user", type=int, action="append", help="check only these users (default: all)")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("no API key: pass --api-key or set BINPAY_API_KEY (make run keeps one in .run/local/api-key)")
    os.environ.setdefault("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8086")
    sources = Sources(
        args.initiator_url, args.api_key, args.gateway_url, args.gateway_api_key, args.project_id, args.collection
    )
    try:
        report = check(sources, args.user)
    except (requests.RequestException, GatewayError) as error:
        print(f"check_invariants: cannot read a source: {error}", file=sys.stderr)
        return 2
    print(report.table())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
