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

The per-payment rules are initiator/payments/invariants.py (the operator console's too), given
the step table of contracts/saga-log/steps.json; this module fetches what they judge, scans the
whole ledger for charges on no payment, and reports. A library (``check`` and the per-source
checks the tests call) and a command:

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
from saga_paths import SagaPaths, invariants, load_saga_paths

# The per-payment rules are the initiator's (initiator/payments/invariants.py, the console's too);
# this module fetches what they judge and scans the whole ledger.
check_account = invariants.check_account
check_charge_ids = invariants.check_charge_ids
check_gateway = invariants.check_gateway
standing = invariants.standing
PATHS = load_saga_paths()


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


def check_saga_log(payment: dict, steps: list[dict], paths: SagaPaths = PATHS) -> list[str]:
    """The per-payment rule against contracts/saga-log/steps.json itself (not the initiator's mirror)."""
    return invariants.check_saga_log(payment, steps, paths)


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
            if require_terminal and payment["status"] not in invariants.TERMINAL_STATUSES:
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
