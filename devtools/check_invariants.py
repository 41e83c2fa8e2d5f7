"""Check BinPay's money and saga invariants across the three sources of truth.

Reads the initiator's API (users, accounts, payments; deposits unless the caller passes its own
record), the Firestore saga log and the sandbox gateway's whole ledger, and reports counts by
final state, charges, refunds and every violation:

- the gateway: a completed payment holds exactly its amount in one standing charge; a rolled-back
  one holds nothing (refunded amount == charged amount); no standing charge on a reference that
  is no payment;
- the saga log: only the paths in contracts/saga-log/steps.json, ending as the final status
  requires; every charge id it names (CHARGED / REFUNDED detail, the document's charge_id, the
  payment's) is one of the gateway's charges for the payment, and a completed payment's is the
  standing one;
- the accounts: balance == deposits - completed payments, held == open holds.

A library (``check`` and the per-source checks the tests call) and a command:

    python devtools/check_invariants.py [--user ID ...]    # defaults fit `make run`

It prints a table and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from google.cloud import firestore
from saga_paths import SagaPaths, load_saga_paths

TERMINAL = {"completed", "rolled_back", "needs_attention"}
PATHS = load_saga_paths()
NO_CHARGES = {"charges_succeeded": 0, "charges_failed": 0, "refunds": 0, "amount_charged": 0, "amount_refunded": 0}


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
    amount_charged: int = 0
    amount_refunded: int = 0
    violations: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [("payments", self.payments)]
        rows += [(f"  {status}", count) for status, count in sorted(self.by_status.items())]
        rows += [("gateway charges", self.charges), ("gateway refunds", self.refunds)]
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


def _saga(db: firestore.Client, collection: str, payment_id: str) -> tuple[dict, list[dict]]:
    document = db.collection(collection).document(payment_id)
    snapshot = document.get()
    steps = (step.to_dict() | {"id": step.id} for step in document.collection("steps").stream())
    return (snapshot.to_dict() or {}) if snapshot.exists else {}, sorted(steps, key=lambda step: step.get("seq", 0))


def standing(entry: dict) -> int:
    """What the gateway still holds for one ledger row: charged minus refunded, in minor units."""
    return entry["amount_charged"] - entry["amount_refunded"]


def check_saga_log(payment: dict, steps: list[dict], paths: SagaPaths = PATHS) -> list[str]:
    """Numbering, step documents and the legal paths (contracts/saga-log/steps.json)."""
    pid = payment["id"]
    problems = []
    if [step.get("seq") for step in steps] != list(range(1, len(steps) + 1)):
        problems.append(f"{pid}: saga log seq not 1..n: {[s.get('seq') for s in steps]}")
    for step in steps:
        expected_id = f"{step.get('seq', 0):02d}-{step.get('step')}"
        if step["id"] != expected_id:
            problems.append(f"{pid}: step document {step['id']} should be {expected_id}")
    logged = [(step.get("service"), (step.get("detail") or {}).get("source"), step.get("step")) for step in steps]
    problems += [f"{pid}: {problem}" for problem in paths.check_steps(payment["status"], logged)]
    return problems


def check_gateway(payment: dict, entry: dict | None) -> list[str]:
    """The gateway's money for one payment, by amount (the ledger row for its reference)."""
    pid, status, amount = payment["id"], payment["status"], payment["amount"]
    entry = entry or NO_CHARGES
    held = standing(entry)
    problems = []
    if held > amount:
        problems.append(
            f"{pid}: the gateway holds {held} for a payment of {amount} ({entry['charges_succeeded']} charges)"
        )
    if status == "completed" and (held != amount or entry["charges_succeeded"] - entry["refunds"] != 1):
        problems.append(
            f"{pid}: completed but the gateway holds {held} of {amount} "
            f"({entry['charges_succeeded']} charges, {entry['refunds']} refunds)"
        )
    if status == "rolled_back" and held:
        problems.append(
            f"{pid}: rolled back but charged {entry['amount_charged']} and refunded {entry['amount_refunded']}"
        )
    return problems


def check_charge_ids(payment: dict, document: dict, steps: list[dict], charges: list[dict]) -> list[str]:
    """Every charge id the saga log and the payment name is a charge the gateway made for this payment;
    a completed payment's is the standing one, of its amount and currency."""
    pid = payment["id"]
    by_id = {charge["id"]: charge for charge in charges}
    succeeded = {charge_id for charge_id, charge in by_id.items() if charge.get("status") == "succeeded"}
    named = [(f"step {step.get('step')}", (step.get("detail") or {}).get("charge_id")) for step in steps]
    named = [(where, charge_id) for where, charge_id in named if where in ("step CHARGED", "step REFUNDED")]
    problems = []
    for where, charge_id in named:
        if charge_id and charge_id not in succeeded:
            problems.append(f"{pid}: {where} names charge {charge_id}, not a succeeded charge for this payment")
    # The document and the payment keep the charge id they learnt first: a decline's failed charge too.
    recorded = [("saga document", document.get("charge_id")), ("payment", payment.get("charge_id"))]
    for where, charge_id in recorded:
        if charge_id and charge_id not in by_id:
            problems.append(f"{pid}: {where} names charge {charge_id}, not a charge the gateway made for this payment")
    named += recorded
    for step in steps:
        if step.get("step") == "CHARGED" and not (step.get("detail") or {}).get("charge_id"):
            problems.append(f"{pid}: step CHARGED without a charge_id")
    if payment["status"] == "completed":
        standing_ids = [cid for cid in succeeded if not by_id[cid].get("refunded")]
        charged_ids = {cid for where, cid in named if cid}
        if len(standing_ids) != 1 or charged_ids != set(standing_ids):
            problems.append(f"{pid}: completed with charge ids {sorted(charged_ids)}, gateway stands {standing_ids}")
        for charge_id in standing_ids:
            charge = by_id[charge_id]
            if (charge.get("amount"), charge.get("currency")) != (payment["amount"], payment["currency"]):
                problems.append(
                    f"{pid}: charge {charge_id} is {charge.get('amount')} {charge.get('currency')}, "
                    f"the payment {payment['amount']} {payment['currency']}"
                )
    return problems


def check_ledger_references(
    ledger: list[dict], known_payments: set[str], is_payment: Callable[[str], bool] = lambda reference: False
) -> list[str]:
    """A standing charge whose reference is no known payment (asks `is_payment` about references that
    belong to payments outside the checked users)."""
    return [
        f"charge of {standing(row)} stands on reference {row['reference']}, which is no payment"
        for row in ledger
        if standing(row) and row["reference"] not in known_payments and not is_payment(row["reference"])
    ]


def check_account(user: dict, deposited: int, payments: list[dict]) -> list[str]:
    account = user["account"]
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


def check(
    sources: Sources,
    user_ids: list[int] | None = None,
    require_terminal: bool = True,
    deposits: dict[int, int] | None = None,
) -> Report:
    """Check the given users (default: all) against the whole gateway ledger.

    `deposits` is the caller's own record of what each user deposited, in minor units; without it
    the initiator's deposit list is believed.
    """
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sources.api_key}"
    gateway = requests.Session()
    gateway.headers["Authorization"] = f"Bearer {sources.gateway_api_key}"
    gateway_url = sources.gateway_url.rstrip("/")
    db = firestore.Client(project=sources.project_id)
    report = Report()
    base = sources.initiator_url.rstrip("/")
    if user_ids is None:
        user_ids = [user["id"] for user in _pages(session, f"{base}/users")]
    answer = gateway.get(f"{gateway_url}/v1/ledger", timeout=30)
    answer.raise_for_status()
    ledger_rows = answer.json()["data"]
    ledger = {row["reference"]: row for row in ledger_rows}
    known: set[str] = set()
    for user_id in user_ids:
        user = session.get(f"{base}/users/{user_id}", timeout=30)
        user.raise_for_status()
        payments = _pages(session, f"{base}/users/{user_id}/payments")
        if deposits is None:
            deposited = sum(d["amount"] for d in _pages(session, f"{base}/users/{user_id}/deposits"))
        else:
            deposited = deposits[user_id]
        report.violations += check_account(user.json(), deposited, payments)
        for payment in payments:
            known.add(payment["id"])
            report.payments += 1
            report.by_status[payment["status"]] += 1
            entry = ledger.get(payment["id"])
            if entry:
                report.charges += entry["charges_succeeded"]
                report.refunds += entry["refunds"]
            if require_terminal and payment["status"] not in TERMINAL:
                report.violations.append(f"{payment['id']}: still {payment['status']}")
                continue
            report.violations += check_gateway(payment, entry)
            document, steps = _saga(db, sources.collection, payment["id"])
            report.violations += check_saga_log(payment, steps)
            charges: list[dict] = []
            if entry or document.get("charge_id") or payment.get("charge_id"):
                listed = gateway.get(f"{gateway_url}/v1/charges", params={"reference": payment["id"]}, timeout=30)
                listed.raise_for_status()
                charges = listed.json()["data"]
            report.violations += check_charge_ids(payment, document, steps, charges)

    def is_payment(reference: str) -> bool:
        return session.get(f"{base}/payments/{reference}", timeout=30).status_code == 200

    report.violations += check_ledger_references(ledger_rows, known, is_payment)
    report.amount_charged = sum(row["amount_charged"] for row in ledger_rows)
    report.amount_refunded = sum(row["amount_refunded"] for row in ledger_rows)
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
