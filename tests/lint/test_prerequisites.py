"""`make test` and `make run` on a machine that lacks system prerequisites: one message at once.

The prerequisites are hidden for real: the commands run with a PATH that holds every program of
this machine's PATH except the hidden ones.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from lint_support import REPO

INSTALL = "sudo bash devtools/prerequisites.sh --install"


def path_without(tmp_path: Path, *hidden: str) -> str:
    """A PATH with a link to every program on this PATH except `hidden`."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for program in Path(directory).glob("*") if Path(directory).is_dir() else []:
            link = folder / program.name
            if program.name not in hidden and not link.exists() and os.access(program, os.X_OK):
                link.symlink_to(program)
    return str(folder)


def make(target: str, path: str) -> subprocess.CompletedProcess:
    # A stand-in for the suites' interpreter: if make went on past its check, it stops at once here
    # instead of running the suites for a quarter of an hour.
    env = {**os.environ, "PATH": path, "BINPAY_PREREQUISITES": "check"}
    return subprocess.run(
        ["make", "--no-print-directory", target, "VENV_PYTHON=false"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def listed(output: str) -> list[str]:
    return re.findall(r"^  - (\S+)", output, re.MULTILINE)


def test_make_test_names_every_missing_prerequisite_before_it_runs_anything(tmp_path):
    result = make("test", path_without(tmp_path, "wrk", "spin"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert listed(result.stderr) == ["wrk", "spin"], result.stderr
    assert f"{INSTALL} test" in result.stderr
    assert "=====" not in result.stdout  # no suite started


def test_make_run_names_every_missing_prerequisite_before_it_starts_anything(tmp_path):
    result = make("run", path_without(tmp_path, "java", "curl"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert listed(result.stderr) == ["curl", "java"], result.stderr
    assert f"{INSTALL} run" in result.stderr


def test_the_readme_lists_every_prerequisite():
    table = subprocess.run(
        ["bash", "devtools/prerequisites.sh", "--list"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    names = [line.split("\t")[0] for line in table.splitlines()]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("Prerequisites") : readme.index("```bash\nmake run")]
    assert names and [name for name in names if name.lower() not in paragraph.lower()] == []
