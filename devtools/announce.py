"""The `ready` process of `make run`: waits for every service, prints what to try, then idles.

It stays up because honcho stops the whole system when any process exits.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from wait_ready import wait

STATE_DIR = Path(os.environ.get("BINPAY_STATE_DIR") or Path(__file__).resolve().parent.parent / ".run" / "local")


def main() -> int:
    initiator = os.environ["INITIATOR_URL"]
    processor = os.environ["PROCESSOR_URL"]
    gateway = os.environ["PAYMENT_GATEWAY_URL"]
    pending = wait([f"{initiator}/readyz", f"{processor}/readyz", f"{gateway}/healthz"], timeout=120)
    if pending:
        print(f"BinPay did not become ready: {' '.join(pending)} (see the logs above)", file=sys.stderr, flush=True)
        return 1
    key = os.environ["BINPAY_DEMO_API_KEY"]
    console_password = (STATE_DIR / "console-password").read_text().strip()
    print(
        f"""
================================ BinPay is up ================================
Pay USD 100.00 from the demo user (user_id=1):

  curl -X POST -H "Authorization: Bearer {key}" -d "user_id=1&amount=100.00" {initiator}/initiate-payment

Watch it (use the "id" from the answer):
  curl -H "Authorization: Bearer {key}" {initiator}/payments/<id>     # status + Firestore saga log
  curl {processor}/transactions/<id>                                   # the processor's saga log
  curl -H "Authorization: Bearer {key}" {initiator}/users/1            # balance and held funds
Failure demos: amount=100.51 (gateway decline), add -d "metadata[simulate_failure]=after_charge"
(processor fails after the charge: refunded, rolled back). API docs: {initiator}/openapi.json

Operator console: {initiator}/console/   sign in as operator / {console_password}
Ctrl-C stops everything.
==============================================================================
""",
        flush=True,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sys.exit(0))
    signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
