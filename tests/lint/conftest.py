"""Fixtures for the lint tests: the installed validators and a throwaway copy of the artifacts.

Every test that breaks a file breaks it in a copy under tmp_path and runs the same
`devtools/lint/lint.sh --root COPY STEP` that `make lint` runs, so a validator that stops failing on
bad input (or a wrapper that swallows its exit status) fails a test here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from lint_support import ARTIFACTS, REPO, TOOLS, Tree


@pytest.fixture(scope="session")
def lint_tools() -> Path:
    """Install (or confirm) the validators once per session: idempotent and quick when current."""
    subprocess.run(["bash", str(REPO / "devtools" / "lint" / "install-tools.sh"), str(REPO)], check=True)
    return TOOLS


@pytest.fixture
def tree(tmp_path: Path, lint_tools: Path) -> Tree:
    """A copy of every deployment artifact (and a tiny clean Python package) under tmp_path."""
    for relative in ARTIFACTS:
        source = REPO / relative
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
        else:
            shutil.copy2(source, target)
    # The python step lints whatever of initiator/processor/gateway/devtools/tests exists; the copy
    # holds only the artifacts, plus this module, so ruff has one known-clean file to start from.
    (tmp_path / "tests").mkdir(exist_ok=True)
    shutil.copy2(REPO / "ruff.toml", tmp_path / "ruff.toml")
    (tmp_path / "tests" / "sample.py").write_text('"""A clean module."""\n\nANSWER = 42\n', encoding="utf-8")
    return Tree(tmp_path)
