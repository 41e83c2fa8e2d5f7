"""End-to-end fixtures: one real BinPay stack per delivery mode (devtools/stack.py)."""

from __future__ import annotations

import pytest
from stack import build_stack


@pytest.fixture(scope="session", params=["pull", "push"])
def stack(request, emulator_env, tmp_path_factory):
    built = build_stack(request.param, emulator_env, tmp_path_factory.mktemp(f"stack-{request.param}"))
    yield built
    dead = built.dead()
    built.stop_all()
    assert not dead, f"processes died during the run: {dead}"


BURST_FIGURES: list[str] = []


@pytest.fixture
def report_figures():
    """Lines a test wants shown at the end of the run (e.g. the burst's counts)."""
    return BURST_FIGURES.append


def pytest_terminal_summary(terminalreporter):
    if BURST_FIGURES:
        terminalreporter.write_sep("=", "burst figures")
        for line in BURST_FIGURES:
            terminalreporter.write_line(line)
