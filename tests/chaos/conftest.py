"""Fault-injection suite fixtures: PostgreSQL, the payment count, and the closing table (also .run/chaos/)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import emulators
import postgres
import pytest
from scenarios import MODES, QUICK_MODES, SCENARIO_RUNS, SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
RESULTS_FILE = ROOT / ".run" / "chaos" / "results.json"


def pytest_configure(config):
    quick = ", ".join(scenario.name for scenario in SCENARIOS if scenario.quick)
    config.addinivalue_line("markers", f"quick: `make test`'s pass, in {'/'.join(QUICK_MODES)} mode: {quick}")


def pytest_report_header(config):
    payments = config.getoption("--chaos-payments")
    return (
        f"chaos: {len(SCENARIOS)} scenarios, {SCENARIO_RUNS} runs in {'/'.join(MODES)} mode, {payments} payments in all"
    )


def pytest_addoption(parser):
    parser.addoption(
        "--chaos-payments",
        type=int,
        default=int(os.environ.get("CHAOS_PAYMENTS", "240")),
        help=f"payments across all {SCENARIO_RUNS} scenario runs (make chaos: 2000)",
    )


@pytest.fixture(scope="session")
def emulators_started():
    """The session's own emulators (a scenario freezes Firestore's process), or None when the caller's
    PUBSUB_/FIRESTORE_EMULATOR_HOST are set."""
    if os.environ.get("PUBSUB_EMULATOR_HOST") and os.environ.get("FIRESTORE_EMULATOR_HOST"):
        yield None
        return
    running = emulators.start()
    hosts = {k: v for k, v in running.env().items() if k.endswith("_HOST")}
    os.environ.update(hosts)
    try:
        yield running
    finally:
        for key in hosts:
            os.environ.pop(key, None)
        running.stop()


@pytest.fixture(scope="session")
def emulator_env(emulators_started) -> dict[str, str]:
    """As tests/conftest.py's, from the emulators this suite keeps a hand on."""
    if emulators_started is None:
        return {}
    return {k: v for k, v in emulators_started.env().items() if k.endswith("_HOST")}


@pytest.fixture(scope="session")
def firestore_emulator(emulators_started):
    """The Firestore emulator's process (the second one emulators.start launches), if ours."""
    return emulators_started.processes[1] if emulators_started else None


@pytest.fixture(scope="session")
def payments_per_scenario(request) -> int:
    return max(20, -(-request.config.getoption("--chaos-payments") // SCENARIO_RUNS))


@pytest.fixture(scope="session", autouse=True)
def postgresql():
    """The initiator runs on PostgreSQL, as in production: DATABASE_URL's server, else a throwaway one."""
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        yield os.environ["DATABASE_URL"]
        return
    server = postgres.start()
    os.environ["DATABASE_URL"] = server.url
    try:
        yield server.url
    finally:
        os.environ.pop("DATABASE_URL", None)
        server.stop()


class Results(list):
    """The closing table's rows, also written to RESULTS_FILE after every run (a stopped run keeps its rows)."""

    def append(self, row: dict) -> None:
        super().append(row)
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(self, indent=2) + "\n")


RESULTS: list[dict] = Results()


@pytest.fixture(scope="session")
def results() -> list[dict]:
    return RESULTS


COLUMNS = [
    ("scenario", 33),
    ("mode", 5),
    ("outcome", 8),
    ("payments", 9),
    ("completed", 10),
    ("rolled_back", 12),
    ("attention", 10),
    ("charges", 8),
    ("refunds", 8),
    ("kills", 6),
    ("in_flight", 10),
    ("relay_crash", 12),
    ("duplicates", 11),
    ("redeliver", 10),
    ("redriven", 9),
    ("gw_faults", 10),
    ("gw_slow", 8),
    ("late", 5),
    ("refunds_failed", 15),
    ("parked", 7),
    ("drain_s", 8),
    ("duration_s", 11),
    ("violations", 11),
    ("other_faults", 0),
]


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    terminalreporter.write_sep("=", "chaos scenarios")
    terminalreporter.write_line(" ".join(f"{name:>{width}}" for name, width in COLUMNS))
    for row in RESULTS:
        terminalreporter.write_line(" ".join(f"{row.get(name, '')!s:>{width}}" for name, width in COLUMNS))
    total = sum(row["payments"] for row in RESULTS)
    bad = sum(row["violations"] for row in RESULTS)
    failed = sum(row["outcome"] != "passed" for row in RESULTS)
    terminalreporter.write_line(f"total payments {total}, total violations {bad}, scenarios failed {failed}")
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(RESULTS, indent=2) + "\n")
    terminalreporter.write_line(f"written to {RESULTS_FILE.relative_to(ROOT)}")
