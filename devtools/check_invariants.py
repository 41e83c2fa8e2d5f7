"""Check BinPay's saga invariants (ARCHITECTURE.md §6) across the three sources of truth.

Reads the initiator's API (users, accounts, deposits, payments), the Firestore saga log and the
sandbox gateway's ledger, and reports counts by final state, charges, refunds and every
violation. A library (``collect``/``check``) the tests call, and a command:

    python devtools/check_invariants.py [--user ID ...]    # defaults fit `make run`

It prints a table and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests
from google.cloud import firestore

TERMINAL = {"completed", "rolled_back", "needs_attention"}
# Which saga-log step may follow which (docs/contracts.md). None is the empty log. Besides the
# processor's own path, the initiator may settle a payment whose processor stopped part-way: the
# reconciler (capture when a charge stands, else compensate) or a dead letter (needs attention).
# A charge without a refund is never followed by COMPENSATED.
NEXT_STEPS = {
    None: {"RECEIVED", "COMPENSATED", "CAPTURED", "NEEDS_ATTENTION"},
    "RECEIVED": {"CHARGED", "CHARGE_DECLINED", "FAILED", "COMPENSATED", "CAPTURED", "NEEDS_ATTENTION"},
    "CHARGED": {"COMPLETED", "REFUNDED", "CAPTURED", "NEEDS_ATTENTION"},
    "CHARGE_DECLINED": {"FAILED", "COMPENSATED", "NEEDS_ATTENTION"},
    "COMPLETED": {"CAPTURED", "NEEDS_ATTENTION"},
    "FAILED": {"COMPENSATED", "NEEDS_ATTENTION"},
    "REFUNDED": {"COMPENSATED", "NEEDS_ATTENTION"},
    "NEEDS_ATTENTION": {"CAPTURED", "COMPENSATED"},
    "CAPTURED": set(),
    "COMPENSATED": set(),
}
LAST_STEP_FOR_STATUS = {"completed": "CAPTURED", "rolled_back": "COMPENSATED", "needs_attention": "NEEDS_ATTENTION"}


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
    charges: int = 0
    refunds: int = 0
    violations: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [("payments", self.payments)]
        rows += [(f"  {status}", count) for status, count in sorted(self.by_status.items())]
        rows += [("gateway charges", self.charges), ("gateway refunds", self.refunds)]
        rows += [("violations", len(self.violations))]
        lines = [f"{name:<24}{value:>8}" for name, value in rows]
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


def _saga_steps(db: firestore.Client, collection: str, payment_id: str) -> list[dict]:
    steps = db.collection(collection).document(payment_id).collection("steps").stream()
    return sorted((step.to_dict() | {"id": step.id} for step in steps), key=lambda step: step.get("seq", 0))


def check_saga_log(payment: dict, steps: list[dict]) -> list[str]:
    problems = []
    pid = payment["id"]
    names = [step.get("step") for step in steps]
    if [step.get("seq") for step in steps] != list(range(1, len(steps) + 1)):
        problems.append(f"{pid}: saga log seq not 1..n: {[s.get('seq') for s in steps]}")
    for step in steps:
        expected_id = f"{step.get('seq', 0):02d}-{step.get('step')}"
        if step["id"] != expected_id:
            problems.append(f"{pid}: step document {step['id']} should be {expected_id}")
    if len(set(names)) != len(names):
        problems.append(f"{pid}: a step is logged twice: {names}")
    previous = None
    for name in names:
        if name not in NEXT_STEPS.get(previous, set()):
            problems.append(f"{pid}: step {name} cannot follow {previous}: {names}")
            break
        previous = name
    expected_last = LAST_STEP_FOR_STATUS.get(payment["status"])
    if expected_last and (not names or names[-1] != expected_last):
        problems.append(f"{pid}: status {payment['status']} but the saga log ends {names[-1:] or 'empty'}")
    return problems


def check_gateway(payment: dict, ledger: dict | None) -> list[str]:
    pid, status = payment["id"], payment["status"]
    charged = (ledger or {}).get("charges_succeeded", 0)
    refunds = (ledger or {}).get("refunds", 0)
    problems = []
    if charged > 1:
        problems.append(f"{pid}: {charged} successful charges at the gateway")
    if status == "completed" and (charged != 1 or refunds):
        problems.append(f"{pid}: completed with {charged} charges and {refunds} refunds")
    if status == "rolled_back" and refunds < charged:
        problems.append(f"{pid}: rolled back but {charged - refunds} charge(s) stand unrefunded")
    if status == "completed" and ledger and ledger.get("amount_charged") != payment["amount"]:
        problems.append(f"{pid}: charged {ledger.get('amount_charged')} for a payment of {payment['amount']}")
    return problems


def check_account(user: dict, deposits: list[dict], payments: list[dict]) -> list[str]:
    account = user["account"]
    deposited = sum(d["amount"] for d in deposits)
    completed = sum(p["amount"] for p in payments if p["status"] == "completed")
    # A payment that needs attention keeps its hold until someone settles it.
    holding = sum(p["amount"] for p in payments if p["status"] in ("pending", "needs_attention"))
    problems = []
    if account["balance"] != deposited - completed:
        problems.append(
            f"user {user['id']}: balance {account['balance']} != deposits {deposited} - completed {completed}"
        )
    if account["held"] != holding:
        problems.append(f"user {user['id']}: held {account['held']} != pending holds {holding}")
    if account["available"] < 0 or account["available"] != account["balance"] - account["held"]:
        problems.append(f"user {user['id']}: available {account['available']} is wrong or negative")
    return problems


def check(sources: Sources, user_ids: list[int] | None = None, require_terminal: bool = True) -> Report:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sources.api_key}"
    gateway = requests.Session()
    gateway.headers["Authorization"] = f"Bearer {sources.gateway_api_key}"
    db = firestore.Client(project=sources.project_id)
    report = Report()
    base = sources.initiator_url.rstrip("/")
    if user_ids is None:
        user_ids = [user["id"] for user in _pages(session, f"{base}/users")]
    ledger_rows = gateway.get(f"{sources.gateway_url.rstrip('/')}/v1/ledger", timeout=30)
    ledger_rows.raise_for_status()
    ledger = {row["reference"]: row for row in ledger_rows.json()["data"]}
    for user_id in user_ids:
        user = session.get(f"{base}/users/{user_id}", timeout=30)
        user.raise_for_status()
        payments = _pages(session, f"{base}/users/{user_id}/payments")
        deposits = _pages(session, f"{base}/users/{user_id}/deposits")
        report.violations += check_account(user.json(), deposits, payments)
        for payment in payments:
            report.payments += 1
            report.by_status[payment["status"]] += 1
            entry = ledger.get(payment["id"])
            report.charges += (entry or {}).get("charges_succeeded", 0)
            report.refunds += (entry or {}).get("refunds", 0)
            if require_terminal and payment["status"] not in TERMINAL:
                report.violations.append(f"{payment['id']}: still {payment['status']}")
                continue
            report.violations += check_gateway(payment, entry)
            if payment["status"] in TERMINAL:
                report.violations += check_saga_log(payment, _saga_steps(db, sources.collection, payment["id"]))
    return report


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
    except requests.RequestException as error:
        print(f"check_invariants: cannot read a source: {error}", file=sys.stderr)
        return 2
    print(report.table())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
