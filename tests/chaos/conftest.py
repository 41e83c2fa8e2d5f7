"""Fault-injection suite fixtures: the payment count option and the closing table."""

from __future__ import annotations

import os

import pytest

RESULTS: list[dict] = []


def pytest_addoption(parser):
    parser.addoption(
        "--chaos-payments",
        type=int,
        default=int(os.environ.get("CHAOS_PAYMENTS", "240")),
        help="payments across all scenarios (make chaos: 1000+)",
    )


@pytest.fixture(scope="session")
def payments_per_scenario(request) -> int:
    scenarios = 8
    return max(20, -(-request.config.getoption("--chaos-payments") // scenarios))


@pytest.fixture(scope="session")
def results() -> list[dict]:
    return RESULTS


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    columns = [
        ("scenario", 26),
        ("payments", 9),
        ("completed", 10),
        ("rolled_back", 12),
        ("attention", 10),
        ("charges", 8),
        ("refunds", 8),
        ("redeliveries", 13),
        ("drain_s", 8),
        ("violations", 11),
    ]
    terminalreporter.write_sep("=", "chaos scenarios")
    terminalreporter.write_line("".join(f"{name:>{width}}" for name, width in columns))
    for row in RESULTS:
        terminalreporter.write_line("".join(f"{row[name]!s:>{width}}" for name, width in columns))
    total = sum(row["payments"] for row in RESULTS)
    bad = sum(row["violations"] for row in RESULTS)
    terminalreporter.write_line(f"total payments {total}, total violations {bad}")
