"""The deploy walk's fake tools run under the lint tools' Python (python-hcl2 for the fake terraform)."""

from __future__ import annotations

import subprocess

import pytest
import walk


@pytest.fixture(scope="session", autouse=True)
def lint_tools() -> None:
    """Install (or confirm) .tools/: idempotent and quick when current, as tests/lint does."""
    subprocess.run(["bash", str(walk.REPO / "devtools" / "lint" / "install-tools.sh"), str(walk.REPO)], check=True)
