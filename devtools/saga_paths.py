"""The saga log's legal paths (contracts/saga-log/steps.json), as the step table the invariant rules take.

The per-payment rules are initiator/payments/invariants.py (plain Python, no Django), imported from
initiator/; the initiator's own runtime uses its mirror of the table (STEP_TABLE there), this
loads the contract file itself:

    paths = load_saga_paths()
    problems = invariants.check_saga_log(payment, steps, paths)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS_FILE = ROOT / "contracts" / "saga-log" / "steps.json"
if str(ROOT / "initiator") not in sys.path:
    # Appended, not prepended: the initiator's top-level packages never shadow anything else.
    sys.path.append(str(ROOT / "initiator"))

from payments import invariants  # noqa: E402  (needs initiator/ on sys.path)
from payments.invariants import SagaPaths  # noqa: E402


def load_saga_paths(path: Path = STEPS_FILE) -> SagaPaths:
    return SagaPaths.from_table(json.loads(Path(path).read_text()))


__all__ = ["SagaPaths", "invariants", "load_saga_paths"]
