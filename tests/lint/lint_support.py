"""Shared helpers of the lint tests: paths, the artifact list and a throwaway tree to break."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT = REPO / "devtools" / "lint" / "lint.sh"
TOOLS = Path(os.environ.get("LINT_TOOLS_DIR", REPO / ".tools"))

# What each lint step reads, relative to the repository root.
ARTIFACTS = [
    "initiator/Dockerfile",
    "processor/Dockerfile",
    "gateway/Dockerfile",
    "docker-compose.yml",
    "k8s",
    "deploy",
    "terraform",
    ".github",
    "devtools/lint/lint.sh",
    "devtools/lint/install-tools.sh",
    "contracts",
    "monitoring",
    "common",
    "devtools/sync_common.py",
    "initiator/binpay_common",
    "processor/binpay_common",
    # The requirements locks and their sources (devtools/lock_requirements.py SOURCES).
    *(
        f"{stem}.{suffix}"
        for stem in (
            "initiator/requirements-runtime",
            "processor/requirements-runtime",
            "gateway/requirements-runtime",
            "initiator/requirements",
            "processor/requirements",
            "gateway/requirements",
            "requirements-dev",
            "devtools/lint/requirements",
            "devtools/lint/checkov-requirements",
            "devtools/audit-requirements",
        )
        for suffix in ("in", "txt")
    ),
]


@dataclass
class Tree:
    root: Path

    def path(self, relative: str) -> Path:
        return self.root / relative

    def read(self, relative: str) -> str:
        return self.path(relative).read_text(encoding="utf-8")

    def write(self, relative: str, text: str) -> None:
        self.path(relative).parent.mkdir(parents=True, exist_ok=True)
        self.path(relative).write_text(text, encoding="utf-8")

    def replace(self, relative: str, old: str, new: str) -> None:
        text = self.read(relative)
        assert old in text, f"{old!r} not in {relative}: the test's mutation no longer applies"
        self.write(relative, text.replace(old, new, 1))

    def lint(self, *steps: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(LINT), "--root", str(self.root), "--tools", str(TOOLS), *steps],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
