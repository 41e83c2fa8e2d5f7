"""`make test`: every suite against real components, with one summary at the end.

Starts a throwaway PostgreSQL for the suites that need it (each suite starts its own emulators),
runs the suites in order, fails when any suite fails or runs no test, and prints a table plus a
closing `N passed, N failed` line.

    python devtools/run_tests.py                 # everything
    python devtools/run_tests.py --only e2e lint  # some suites
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import postgres

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Outcome:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    exit_code: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.failed == 0 and self.passed > 0


@dataclass
class Suite:
    name: str
    cwd: str
    command: list[str]
    runner: str  # "pytest", "django" or "command"
    needs_postgres: bool = False


def suites(python: str) -> list[Suite]:
    pytest = [python, "-m", "pytest", "-p", "no:cacheprovider"]
    django = [python, "manage.py", "test", "--noinput", "-v", "1"]
    return [
        Suite(
            "lint", ".", ["bash", "-c", "bash devtools/lint/install-tools.sh && bash devtools/lint/lint.sh"], "command"
        ),
        Suite("lint-tests", ".", [*pytest, "tests/lint"], "pytest"),
        Suite("common", "common", pytest, "pytest"),
        Suite("protocol", "protocol", pytest, "pytest"),
        Suite("gateway", "gateway", pytest, "pytest"),
        Suite("provider", ".", [*pytest, "tests/provider"], "pytest"),
        Suite("processor", "processor", pytest, "pytest"),
        Suite("initiator-sqlite", "initiator", django, "django"),
        Suite("initiator-postgres", "initiator", django, "django", needs_postgres=True),
        Suite("e2e", ".", [*pytest, "tests/e2e"], "pytest", needs_postgres=True),
        Suite("browser", ".", [*pytest, "tests/browser"], "pytest", needs_postgres=True),
        # docs/deploy.md run against the fake Google Cloud (every walk, steps out of order), the
        # deploy files' rules, and the outbox on Cloud Run on the real stack.
        Suite("deploy", ".", [*pytest, "tests/deploy"], "pytest", needs_postgres=True),
        # The fault suite's smaller run, 20 payments a scenario: the runs tests/chaos/scenarios.py marks
        # quick (kills and outages wait out redeliveries and timeouts: `make chaos`).
        Suite(
            "chaos",
            ".",
            [*pytest, "tests/chaos", "--chaos-payments=160", "-m", "quick"],
            "pytest",
            needs_postgres=True,
        ),
    ]


def _pytest_counts(junit: Path) -> tuple[int, int, int]:
    if not junit.exists():
        return 0, 0, 0
    root = ElementTree.parse(junit).getroot()  # noqa: S314 - our own pytest junit file
    total = failed = skipped = 0
    for suite in root.iter("testsuite"):
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def _django_counts(output: str) -> tuple[int, int, int]:
    ran = re.search(r"^Ran (\d+) tests? in", output, re.MULTILINE)
    total = int(ran.group(1)) if ran else 0
    summary = re.search(r"^(OK|FAILED)(?: \((.*)\))?$", output, re.MULTILINE)
    details = dict(re.findall(r"(\w+)=(\d+)", summary.group(2) or "")) if summary else {}
    failed = int(details.get("failures", 0)) + int(details.get("errors", 0))
    skipped = int(details.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def run_suite(suite: Suite, env: dict[str, str], workdir: Path) -> Outcome:
    command = list(suite.command)
    junit = workdir / f"{suite.name}.xml"
    if suite.runner == "pytest":
        command += [f"--junitxml={junit}"]
    print(f"\n===== {suite.name}: {' '.join(command)} (in {suite.cwd})", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT / suite.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    captured = []
    for line in process.stdout:
        sys.stdout.write(line)
        captured.append(line)
    exit_code = process.wait()
    outcome = Outcome(exit_code=exit_code, seconds=time.monotonic() - started)
    if suite.runner == "pytest":
        outcome.passed, outcome.failed, outcome.skipped = _pytest_counts(junit)
    elif suite.runner == "django":
        outcome.passed, outcome.failed, outcome.skipped = _django_counts("".join(captured))
    else:
        outcome.passed, outcome.failed = (1, 0) if exit_code == 0 else (0, 1)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="suite names to run")
    args = parser.parse_args(argv)
    python = str(ROOT / ".venv" / "bin" / "python")
    selected = [s for s in suites(python) if not args.only or s.name in args.only]
    unknown = set(args.only or []) - {s.name for s in suites(python)}
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")

    env = dict(os.environ)
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    server = postgres.start() if any(s.needs_postgres for s in selected) else None
    results: list[tuple[Suite, Outcome]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="binpay-tests-") as workdir:
            for suite in selected:
                suite_env = dict(env)
                if suite.needs_postgres:
                    suite_env["DATABASE_URL"] = server.url
                results.append((suite, run_suite(suite, suite_env, Path(workdir))))
    finally:
        if server:
            server.stop()

    print("\n===== summary")
    print(f"{'suite':<20} {'passed':>7} {'failed':>7} {'skipped':>8} {'seconds':>8}  result")
    for suite, outcome in results:
        verdict = "ok" if outcome.ok else ("NO TESTS RAN" if outcome.passed == 0 and not outcome.failed else "FAILED")
        print(
            f"{suite.name:<20} {outcome.passed:>7} {outcome.failed:>7} {outcome.skipped:>8} "
            f"{outcome.seconds:>8.1f}  {verdict}"
        )
    passed = sum(o.passed for _, o in results)
    failed = sum(o.failed for _, o in results) + sum(1 for _, o in results if not o.ok and o.failed == 0)
    print(f"{passed} passed, {failed} failed")
    return 0 if all(o.ok for _, o in results) else 1


if __name__ == "__main__":
    sys.exit(main())
