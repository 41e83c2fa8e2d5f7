"""The saga log's steps and their legal orders: contracts/saga-log/steps.json, read once, in code.

Both services write steps with these names; the invariant checker, the operator console and the
services' contract tests judge a log with `check_saga_log` against the same table.

A step's identity is its name; a step about an intent other than the payment's own (the sweeper's
late finds) is identified as NAME:<intent_id> (docs/protocol.md §3), so it can be logged beside the
payment's own step of that name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .contracts import load_json

RECEIVED = "RECEIVED"
INTENT_CREATED = "INTENT_CREATED"
CHARGED = "CHARGED"
CHARGE_DECLINED = "CHARGE_DECLINED"
CANCEL_REQUESTED = "CANCEL_REQUESTED"
CHARGE_CANCELED = "CHARGE_CANCELED"
REFUND_REQUESTED = "REFUND_REQUESTED"
REFUNDED = "REFUNDED"
REFUND_FAILED = "REFUND_FAILED"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CAPTURED = "CAPTURED"
COMPENSATED = "COMPENSATED"
NEEDS_ATTENTION = "NEEDS_ATTENTION"

# The processor's verdicts: an outcome event follows each (REFUNDED is one only when the processor writes it).
PROCESSOR_OUTCOMES = frozenset({COMPLETED, FAILED})
SETTLEMENTS = frozenset({CAPTURED, COMPENSATED, NEEDS_ATTENTION})

STEPS_FILE = "saga-log/steps.json"


def identity(step: str, intent_id: str | None = None, own_intent_id: str | None = None) -> str:
    """The step's identity in `steps_done`: its name, or NAME:<intent_id> for another intent than the payment's."""
    if intent_id is None or own_intent_id is None or intent_id == own_intent_id:
        return step
    return f"{step}:{intent_id}"


def name_of(step_identity: str) -> str:
    return step_identity.split(":", 1)[0]


def step_document_id(seq: int, step: str) -> str:
    """The step document's id: two-digit seq and step name (contracts/saga-log/step.schema.json)."""
    return f"{seq:02d}-{step}"


@dataclass(frozen=True)
class LoggedStep:
    """One step as the checks see it: who wrote it, from where, and its identity."""

    service: str | None
    source: str | None
    identity: str

    @property
    def name(self) -> str:
        return name_of(self.identity)


@dataclass(frozen=True)
class SagaPaths:
    """steps.json as data: writers per step, legal next steps, resolutions of write-aheads, final-status rules."""

    writers: dict[str, dict[str, frozenset[str] | None]]
    next_steps: dict[str | None, frozenset[str]]
    resolved_by: dict[str, frozenset[str]]
    final_status: dict[str, dict]

    @classmethod
    def from_table(cls, table: Mapping) -> SagaPaths:
        writers = {
            name: {
                service: None if sources is None else frozenset(sources) for service, sources in spec["writers"].items()
            }
            for name, spec in table["steps"].items()
        }
        return cls(
            writers=writers,
            next_steps={(name or None): frozenset(following) for name, following in table["next_steps"].items()},
            resolved_by={name: frozenset(by) for name, by in table.get("resolved_by", {}).items()},
            final_status=dict(table["final_status"]),
        )

    def check(self, status: str, steps: Sequence[LoggedStep]) -> list[str]:
        """Problems with a log (in order) of a payment in `status`; [] when it is legal."""
        problems = []
        identities = [step.identity for step in steps]
        names = [step.name for step in steps]
        for step in steps:
            allowed = self.writers.get(step.name)
            if allowed is None:
                problems.append(f"unknown step {step.identity}")
            elif step.service not in allowed:
                problems.append(f"step {step.name} written by {step.service}, not by {' or '.join(sorted(allowed))}")
            elif allowed[step.service] is not None and step.source not in allowed[step.service]:
                problems.append(
                    f"step {step.name} written by {step.service} from source {step.source}, "
                    f"not {sorted(allowed[step.service])}"
                )
        if len(set(identities)) != len(identities):
            problems.append(f"a step is logged twice: {identities}")
        previous = None
        for name in names:
            if name not in self.next_steps.get(previous, frozenset()):
                problems.append(f"step {name} cannot follow {previous}: {identities}")
                break
            previous = name
        rules = self.final_status.get(status)
        if rules is not None:
            problems += self._check_final(status, rules, identities)
        return problems

    def _check_final(self, status: str, rules: Mapping, identities: list[str]) -> list[str]:
        settled_by = rules["settled_by"]
        if settled_by not in identities:
            return [f"status {status} but the saga log has no {settled_by}: {identities}"]
        before = identities[: identities.index(settled_by)]
        problems = []
        for required in rules.get("requires", ()):
            if required not in before:
                problems.append(f"status {status} without {required} before {settled_by}: {identities}")
        for present, one_of in rules.get("requires_when", {}).items():
            if present in before and not set(one_of) & set(before):
                problems.append(
                    f"{settled_by} after {present} without one of {', '.join(one_of)} before it: {identities}"
                )
        for forbidden in rules.get("not_before_settlement", ()):
            if forbidden in before:
                problems.append(f"status {status} but {forbidden} came before {settled_by}: {identities}")
        if status != "needs_attention":
            problems += self._unresolved(identities)
        return problems

    def _unresolved(self, identities: list[str]) -> list[str]:
        """Write-ahead steps no result followed: a call that may still land."""
        problems = []
        for index, step_identity in enumerate(identities):
            name, _, suffix = step_identity.partition(":")
            resolutions = self.resolved_by.get(name)
            if resolutions is None:
                continue
            later = {identities[i] for i in range(index + 1, len(identities))}
            if not {f"{r}:{suffix}" if suffix else r for r in resolutions} & later:
                problems.append(f"{step_identity} was never resolved ({' or '.join(sorted(resolutions))})")
        return problems


PATHS = SagaPaths.from_table(load_json(STEPS_FILE))
STEP_NAMES = frozenset(PATHS.writers)


def logged_steps(steps: Sequence[Mapping], own_intent_id: str | None) -> list[LoggedStep]:
    """Step documents (step, service, detail) in seq order, as the checks see them."""
    return [
        LoggedStep(
            service=step.get("service"),
            source=(step.get("detail") or {}).get("source"),
            identity=identity(step.get("step"), (step.get("detail") or {}).get("intent_id"), own_intent_id),
        )
        for step in steps
    ]


def check_saga_log(
    payment: Mapping, document: Mapping, steps: Sequence[Mapping], paths: SagaPaths = PATHS
) -> list[str]:
    """Numbering, step documents and the legal paths of a payment's log, one sentence per problem.

    `payment`: "id" and "status"; `document`: the saga-log document (for its intent_id); `steps`: the
    step documents in seq order ("step", "seq", "service", "detail" and, when known, "id").
    """
    pid = payment["id"]
    problems = []
    if [step.get("seq") for step in steps] != list(range(1, len(steps) + 1)):
        problems.append(f"{pid}: saga log seq not 1..n: {[s.get('seq') for s in steps]}")
    for step in steps:
        expected_id = step_document_id(step.get("seq") or 0, step.get("step"))
        if step.get("id") not in (None, expected_id):
            problems.append(f"{pid}: step document {step['id']} should be {expected_id}")
    logged = logged_steps(steps, document.get("intent_id"))
    done = list(document.get("steps_done") or [])
    if document and done != [step.identity for step in logged]:
        problems.append(f"{pid}: steps_done {done} differs from the step documents {[s.identity for s in logged]}")
    problems += [f"{pid}: {problem}" for problem in paths.check(payment["status"], logged)]
    return problems
