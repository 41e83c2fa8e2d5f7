"""The saga log's legal paths (contracts/saga-log/steps.json) and a check of one log against them.

Standard library only, so any service or tool can import it (or copy it with the JSON file):

    paths = load_saga_paths()
    problems = paths.check_steps("completed", [("processor", None, "RECEIVED"), ...])
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

STEPS_FILE = Path(__file__).resolve().parent.parent / "contracts" / "saga-log" / "steps.json"


@dataclass(frozen=True)
class SagaPaths:
    writers: dict[str, dict[str, frozenset[str] | None]]
    next_steps: dict[str | None, frozenset[str]]
    final_status: dict[str, dict]

    def last_steps(self, status: str) -> frozenset[str]:
        """The steps a log may end with once the payment has `status` (empty for an unsettled one)."""
        return frozenset(self.final_status.get(status, {}).get("last_step", ()))

    def check_steps(self, status: str, steps: list[tuple[str | None, str | None, str]]) -> list[str]:
        """Problems with a log of (service, detail.source, step) in order, for a payment in `status`."""
        problems = []
        names = [name for _, _, name in steps]
        for service, source, name in steps:
            allowed = self.writers.get(name)
            if allowed is None:
                problems.append(f"unknown step {name}")
            elif service not in allowed:
                problems.append(f"step {name} written by {service}, not by {' or '.join(sorted(allowed))}")
            elif allowed[service] is not None and source not in allowed[service]:
                problems.append(
                    f"step {name} written by {service} from source {source}, not {sorted(allowed[service])}"
                )
        if len(set(names)) != len(names):
            problems.append(f"a step is logged twice: {names}")
        previous = None
        for name in names:
            if name not in self.next_steps.get(previous, frozenset()):
                problems.append(f"step {name} cannot follow {previous}: {names}")
                break
            previous = name
        rules = self.final_status.get(status)
        if rules is None:
            return problems
        last = names[-1] if names else None
        if last not in rules.get("last_step", ()):
            problems.append(f"status {status} but the saga log ends {last or 'empty'}: {names}")
        for required in rules.get("requires", ()):
            if required not in names:
                problems.append(f"status {status} without {required}: {names}")
        earlier = rules.get("last_step_after", {}).get(last)
        if earlier and earlier not in names[:-1]:
            problems.append(f"status {status} ends {last} without {earlier} before it: {names}")
        for step, one_of in rules.get("before_one_of", {}).items():
            if step in names and not set(one_of) & set(names[: names.index(step)]):
                problems.append(f"{step} without one of {', '.join(one_of)} before it: {names}")
        return problems


def load_saga_paths(path: Path = STEPS_FILE) -> SagaPaths:
    data = json.loads(Path(path).read_text())
    writers = {
        name: {service: None if sources is None else frozenset(sources) for service, sources in spec["writers"].items()}
        for name, spec in data["steps"].items()
    }
    next_steps = {(name or None): frozenset(following) for name, following in data["next_steps"].items()}
    return SagaPaths(writers=writers, next_steps=next_steps, final_status=data["final_status"])
