"""Check the settlement protocol's model (settlement.pml) with spin.

Generates and runs a verifier for every property of the main model, for every variant (each
must produce a counterexample) and for every probe (each shows the main model reaches a path it
should), prints a results table, and prints each counterexample as a timeline: one line per
step with the actor, its action, the provider, the saga log and the database.

    python protocol/check.py                  # everything; exit status 1 on any unexpected result
    python protocol/check.py --only property-3 variant-f1
    python protocol/check.py --list

Needs spin (6.5) and a C compiler. protocol/README.md explains the model and the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

MODEL = Path(__file__).resolve().parent / "settlement.pml"

SAFETY, LIVENESS = "safety", "liveness"
# pan's hash table and search-depth bound: the main model needs about 3.2 million states and a
# depth of 1,300; a depth bound the search hits is reported as an error (never silently cut).
HASH_BITS = "-w24"
MAX_DEPTH = "-m100000"


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    defines: tuple[str, ...]
    kind: str = SAFETY
    expect_violation: bool = False
    shortest: bool = False  # breadth-first: the shortest counterexample (for readable trails)
    probes: tuple[int, ...] = ()  # probes the search must reach (PROBES build); the others it must not


PROPERTIES = (
    Check("property-1", "at quiescence no rolled-back payment has money standing", ("-DPROP=1",)),
    Check("property-2", "at most one charge stands for a payment", ("-DPROP=2",)),
    Check(
        "property-3",
        "the hold is captured or released once; a completed payment's charge stands unrefunded",
        ("-DPROP=3",),
    ),
    Check("property-4", "every payment terminates once the provider answers", ("-DLIVENESS",), LIVENESS),
    Check("property-5", "at quiescence the saga log agrees with the database", ("-DPROP=5",)),
)

VARIANTS = (
    Check(
        "variant-as-written",
        "docs/protocol.md as written: a settlement is not fenced by the claim (property 3)",
        ("-DPROP=3", "-DNO_DB_FENCE"),
        expect_violation=True,
        shortest=True,
    ),
    Check(
        "variant-unordered-registration",
        "the fix with unordered claim tokens: the last registration wins (property 3)",
        ("-DPROP=3", "-DUNORDERED_REGISTRATION"),
        expect_violation=True,
        shortest=True,
    ),
    Check(
        "variant-f1",
        "F1: the operator refunds and releases without the claim (property 3)",
        ("-DPROP=3", "-DF1_NO_CLAIM"),
        expect_violation=True,
        shortest=True,
    ),
    Check(
        "variant-f2",
        "F2: the processor refunds without logging REFUND_REQUESTED first (property 3)",
        ("-DPROP=3", "-DNO_REFUND_WRITE_AHEAD"),
        expect_violation=True,
        shortest=True,
    ),
    Check(
        "variant-list-as-proof",
        "a lookup showing no charge taken as proof, a confirm still in flight (property 1)",
        ("-DPROP=1", "-DLIST_AS_PROOF"),
        expect_violation=True,
        shortest=True,
    ),
    Check(
        "variant-confirm-before-logged",
        "an intent confirmed before its id is logged (property 2)",
        ("-DPROP=2", "-DCONFIRM_BEFORE_LOGGED"),
        expect_violation=True,
        shortest=True,
    ),
    Check(
        "variant-no-step-outbox",
        "F3: settlement steps written after the commit, not through the step outbox (property 5)",
        ("-DPROP=5", "-DNO_STEP_OUTBOX"),
        expect_violation=True,
        shortest=True,
    ),
    Check(
        "variant-refund-within-window",
        "the sweeper follows a pending refund only during its late-charge window (property 1)",
        ("-DPROP=1", "-DREFUND_WITHIN_WINDOW_ONLY"),
        expect_violation=True,
        shortest=True,
    ),
    Check(
        "variant-lease-never-lapses",
        "a dead holder's lease never lapses (property 4)",
        ("-DLIVENESS", "-DLEASE_NEVER_LAPSES"),
        LIVENESS,
        expect_violation=True,
    ),
)

# settlement.pml's probes, by number: paths the main model must reach, and one it must not
PROBE_TITLES = {
    1: "a payment completed by the outcome consumer",
    2: "a decline rolled back by the outcome consumer",
    3: "the reconciler cancels the intent and rolls back",
    4: "the reconciler finds the charge and captures it",
    5: "a failure after the charge: refunded, rolled back",
    6: "a refund that failed, surfaced as REFUND_FAILED",
    7: "an operator captures a needs_attention payment",
    8: "an operator refunds and releases a needs_attention payment",
    9: "a second intent, after the create key was pruned",
    10: "the reconciler finishes an open REFUND_REQUESTED and releases",
    12: "a settlement or a registration refused: a newer claim is on the row (the fix at work)",
    11: "(must stay unreached) the consumer's late-charge refund: payment.completed after a rollback",
}
PROBES = (
    Check(
        "probes",
        "the main model reaches probes 1-10 and 12, never probe 11",
        ("-DPROBES",),
        probes=(*range(1, 11), 12),
    ),
)

CHECKS = PROPERTIES + VARIANTS + PROBES


@dataclass
class Result:
    check: Check
    errors: int = 0
    states: int = 0
    transitions: int = 0
    depth: int = 0
    memory_mb: float = 0.0
    seconds: float = 0.0
    violation: str = ""
    events: list[Event] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    reached: tuple[int, ...] = ()
    output: str = ""

    @property
    def ok(self) -> bool:
        probes_ok = set(self.reached) == set(self.check.probes)
        return (self.errors > 0) == self.check.expect_violation and self.states > 0 and probes_ok

    @property
    def verdict(self) -> str:
        if self.check.probes:
            return "as expected" if self.ok else "PROBES DIFFER"
        if self.check.expect_violation:
            return "counterexample" if self.errors else "NO COUNTEREXAMPLE"
        return "holds" if not self.errors else "VIOLATED"


def _run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0 and command[0] != "./pan":
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def _number(pattern: str, text: str, cast=int):
    match = re.search(pattern, text)
    return cast(match.group(1)) if match else cast(0)


def run_check(check: Check, workdir: Path | None = None) -> Result:
    """Generate, compile and run one verifier; on a counterexample, replay it as a timeline."""
    for tool in ("spin", "cc"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} is not installed (Debian packages spin and gcc)")
    with tempfile.TemporaryDirectory(prefix=f"binpay-{check.name}-") as tmp:
        cwd = workdir or Path(tmp)
        model = cwd / MODEL.name
        shutil.copyfile(MODEL, model)
        _run(["spin", "-a", *check.defines, model.name], cwd)
        if check.kind == LIVENESS:
            cflags, pan = ["-DCOLLAPSE", "-DNFAIR=3"], ["-a", "-f"]
        elif check.shortest:
            cflags, pan = ["-DSAFETY", "-DBFS"], []
        else:
            cflags, pan = ["-DSAFETY", "-DCOLLAPSE"], []
        _run(["cc", "-O2", *cflags, "-o", "pan", "pan.c"], cwd)
        started = time.monotonic()
        output = _run(["./pan", HASH_BITS, MAX_DEPTH, *pan], cwd)
        result = Result(
            check=check,
            errors=_number(r"errors: (\d+)", output),
            states=_number(r"(\d+) states, stored", output),
            transitions=_number(r"(\d+) transitions", output),
            depth=_number(r"depth reached (\d+)", output),
            memory_mb=_number(r"([\d.]+)\s+total actual memory usage", output, float),
            seconds=time.monotonic() - started,
            reached=tuple(sorted(int(n) for n in re.findall(r"^PROBE (\d+) reached", output, re.MULTILINE))),
            output=output,
        )
        if "max search depth too small" in output:
            raise RuntimeError(f"{check.name}: pan's search depth bound was reached; raise MAX_DEPTH")
        result.violation = next((line.strip() for line in output.splitlines() if line.startswith("pan:1:")), "")
        if result.errors and (cwd / f"{model.name}.trail").exists():
            replay = _run(["spin", "-T", "-t", *check.defines, model.name], cwd)
            result.events = events(replay)
            result.timeline = timeline(result.events, replay)
        return result


# ------------------------------------------------------------------------------ the timeline

ACTORS = {
    0: "provider/time",
    1: "processor 1",
    2: "processor 2",
    3: "reconciler",
    4: "sweeper",
    5: "operator",
    6: "consumer",
}
INTENT = {0: "-", 1: "requires_confirmation", 2: "succeeded", 3: "requires_payment_method", 4: "canceled"}
REFUND = {0: "", 1: "refund pending", 2: "refunded", 3: "refund FAILED"}
STATUS = {0: "pending", 1: "completed", 2: "rolled_back", 3: "needs_attention"}
STEPS = (
    "RECEIVED",
    "INTENT_CREATED",
    "CHARGED",
    "CHARGE_DECLINED",
    "CANCEL_REQUESTED",
    "CHARGE_CANCELED",
    "REFUND_REQUESTED",
    "REFUNDED",
    "REFUND_FAILED",
    "COMPLETED",
    "FAILED",
    "CAPTURED",
    "COMPENSATED",
    "NEEDS_ATTENTION",
)
FIELDS = (
    "intent0 intent1 refund flc0 flc1 flx flr li steps owner fenced published status outbox "
    "settling_claim rec_seq opr_seq window_open refund_final hold_moves"
).split()


def _steps(bits: int) -> list[str]:
    return [name for i, name in enumerate(STEPS) if bits & (1 << i)]


def _provider(s: dict) -> str:
    intents = [f"#{i} {INTENT[s[f'intent{i}']]}" for i in (0, 1) if s[f"intent{i}"]]
    text = ", ".join(intents) or "no intent"
    if s["refund"]:
        text += f", {REFUND[s['refund']]}"
    flying = [name for key, name in (("flc0", "confirm #0"), ("flc1", "confirm #1")) if s[key]]
    flying += [name for key, name in (("flx", "cancel"), ("flr", "refund")) if s[key]]
    if flying:
        text += "; in flight: " + ", ".join(flying)
    return text


def _registered(s: dict) -> str:
    """Whose claim number payments.settling_claim holds (the model keeps the numbers' order only)."""
    seq = s["settling_claim"]
    if not seq:
        return ""
    holder = {s["rec_seq"]: "reconciler's claim", s["opr_seq"]: "operator's claim"}.get(seq, "an ended claim")
    return f", row: {holder}"


def _database(s: dict) -> str:
    text = STATUS[s["status"]] + _registered(s)
    if s["outbox"]:
        text += " (outbox: " + ", ".join(_steps(s["outbox"])) + ")"
    return text


@dataclass
class Event:
    actor: str
    action: str
    state: dict
    log: list[str]  # the saga log's steps in the order they were written

    @property
    def status(self) -> str:
        return STATUS[self.state["status"]]


def events(replay: str) -> list[Event]:
    """The model's "@@actor|action|state" lines of a `spin -t` replay, decoded."""
    found, order, previous_owner = [], [], 0
    for raw in replay.splitlines():
        if not raw.startswith("@@"):
            continue
        actor, action, values = raw[2:].split("|", 2)
        state = dict(zip(FIELDS, (int(v) for v in values.split()), strict=True))
        order += [step for step in _steps(state["steps"]) if step not in order]
        owner = state["owner"]
        if owner == int(actor) and previous_owner not in (0, owner):
            action += f" (the lease of {ACTORS[previous_owner]} lapsed)"
        previous_owner = owner
        log = [step for step in order if step in _steps(state["steps"])]
        found.append(Event(ACTORS[int(actor)], action, state, log))
    return found


def cycle_start(replay: str) -> int | None:
    """How many timeline events come before a liveness counterexample's cycle, if it has one."""
    seen = 0
    for raw in replay.splitlines():
        if "START OF CYCLE" in raw:
            return seen
        seen += raw.startswith("@@")
    return None


def timeline(found: list[Event], replay: str = "") -> list[str]:
    """One line per step: actor, action, provider, database, saga log (claim holder)."""
    lines = [f"{'#':>3}  {'actor':<14} {'action':<64} {'provider':<50} {'database':<64} saga log (claim holder)"]
    cycle = cycle_start(replay)
    for n, event in enumerate(found, start=1):
        if cycle == n - 1:
            lines.append("     --- from here the run repeats for ever ---")
        claim = ACTORS[event.state["owner"]] if event.state["owner"] else "none"
        lines.append(
            f"{n:>3}  {event.actor:<14} {event.action:<64} {_provider(event.state):<50} "
            f"{_database(event.state):<64} {', '.join(event.log) or '-'} ({claim})"
        )
    if cycle == len(found):
        lines.append("     --- from here nothing more happens, for ever: the payment never terminates ---")
    lines += [f"     {line.strip()}" for line in replay.splitlines() if line.startswith("spin: text of failed")]
    return lines


# ------------------------------------------------------------------------------ the command


def run_checks(checks: list[Check], jobs: int = 2) -> list[Result]:
    """Run the checks, `jobs` verifiers at a time; the results in the order of `checks`."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(run_check, checks))


def report(result: Result) -> str:
    check = result.check
    lines = [
        f"== {check.name}: {check.title}",
        f"   {result.verdict}: {result.states:,} states, {result.seconds:.1f} s",
    ]
    if check.probes:
        for n, title in PROBE_TITLES.items():
            lines.append(f"   probe {n:>2} {'reached' if n in result.reached else 'unreached':<9} {title}")
    if result.timeline:
        if result.violation:
            lines.append(f"   {result.violation}")
        lines += ["   " + line for line in result.timeline]
    return "\n".join(lines)


def table(results: list[Result]) -> list[str]:
    rows = [
        f"{'check':<32} {'result':<18} {'states':>11} {'transitions':>12} {'depth':>6} {'memory MB':>10} {'time s':>7}"
    ]
    for r in results:
        rows.append(
            f"{r.check.name:<32} {r.verdict:<18} {r.states:>11,} {r.transitions:>12,} {r.depth:>6} "
            f"{r.memory_mb:>10.1f} {r.seconds:>7.1f}"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="check names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--jobs", type=int, default=2, help="verifiers run side by side (default 2)")
    args = parser.parse_args(argv)
    if args.list:
        for check in CHECKS:
            print(f"{check.name:<32} {check.title}")
        return 0
    names = {c.name for c in CHECKS}
    unknown = set(args.only or []) - names
    if unknown:
        parser.error(f"unknown check(s): {', '.join(sorted(unknown))} (see --list)")
    selected = [c for c in CHECKS if not args.only or c.name in args.only]
    results = run_checks(selected, jobs=args.jobs)
    for result in results:
        print(report(result), flush=True)
    print()
    print("\n".join(table(results)))
    failed = [r.check.name for r in results if not r.ok]
    print(f"{len(results) - len(failed)} as expected, {len(failed)} not" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
