"""Run docs/deploy.md's command blocks, in document order, against the fake platform (fakecloud).

Every ```bash block in docs/deploy.md carries a marker on the line before it:
`<!-- walk: PATH... -->` (the walks that run it) or `<!-- walk: none (why) -->`. A walk runs its
blocks in one bash session (`set -euo pipefail`, variables carry over as in a terminal), in a
throwaway copy of the repository (a git checkout: the image tag is its commit), with the fake
gcloud, kubectl, terraform, curl and sleep first on PATH. The placeholders a reader replaces are
replaced with the walk's values.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from fakecloud import cloud  # noqa: E402
from fakecloud.platform import empty_state  # noqa: E402

MARKER = re.compile(r"^<!-- walk: (.+?) -->$")
# What a reader fills in, and what the walk fills in instead.
READER_VALUES = {
    "your-gcp-project-id": "binpay-walk",
    "YOUR_BILLING_ACCOUNT": "0X0X0X-0X0X0X-0X0X0X",
    "OWNER/REPO": "binpay-org/binpay",
    "api.binpay.example.com": "api.walk.example.org",
    "sk_test_YOUR_KEY": "sk_test_walk51Lk3y",
    "whsec_YOUR_SECRET": "whsec_walkS1gn1ng",
}
# The walks, and the organisation policies their project is under.
PATHS = {
    "cloudrun": [],
    "cloudrun-org": [cloud.DRS, cloud.NO_DEFAULT_GRANTS],
    "gke-autopilot": [],
    "gke-standard": [cloud.DRS, cloud.NO_DEFAULT_GRANTS],
    "terraform": [],
}


@dataclass
class Block:
    number: int
    line: int
    walks: list[str]
    code: str


def blocks(text: str) -> list[Block]:
    """Every ```bash block (also indented, inside a list item), with the walks its marker names."""
    found, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        if lines[index].lstrip().startswith("```bash"):
            indent = len(lines[index]) - len(lines[index].lstrip())
            marker = MARKER.match(lines[index - 1].strip()) if index else None
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
            walks = marker.group(1).split() if marker else []
            code = "\n".join(line[indent:] for line in lines[index + 1 : end])
            found.append(Block(len(found) + 1, index + 1, walks, code))
            index = end
        index += 1
    return found


def blocks_of(path: str, text: str | None = None) -> list[Block]:
    text = text if text is not None else (REPO / "docs" / "deploy.md").read_text()
    return [block for block in blocks(text) if path in block.walks]


def fill(code: str) -> str:
    for placeholder, value in READER_VALUES.items():
        code = code.replace(placeholder, value)
    return code


def tools_python() -> str:
    return str(Path(os.environ.get("LINT_TOOLS_DIR", REPO / ".tools")) / "venv" / "bin" / "python")


def checkout(source: Path, target: Path) -> Path:
    """A git checkout of the working tree (tracked and new files), committed: `git rev-parse HEAD` works."""
    listed = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        relative = name.decode()
        origin = source / relative
        if origin.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / relative)
    git = ["git", "-C", str(target), "-c", "user.name=walk", "-c", "user.email=walk@example.org"]
    subprocess.run(["git", "init", "-q", str(target)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "walk"], check=True)
    return target


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    home: Path
    failed_block: int | None

    def state(self) -> dict:
        return json.loads((self.home / "state.json").read_text())

    def calls(self) -> list[dict]:
        path = self.home / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def refusals(self) -> list[dict]:
        return [call for call in self.calls() if call["rule"]]

    def last_refusal(self) -> dict | None:
        refused = self.refusals()
        return refused[-1] if refused else None


def run(
    path: str,
    workdir: Path,
    chosen: list[Block] | None = None,
    org_policies: list[str] | None = None,
    timeout: int = 900,
) -> Result:
    """Run one walk's blocks (or `chosen`) from an empty project; `workdir` gets the checkout and the fake's home."""
    repo = checkout(REPO, workdir / "repo") if not (workdir / "repo").exists() else workdir / "repo"
    home = workdir / "fakecloud"
    home.mkdir(exist_ok=True)
    state = empty_state()
    state["org_policies"] = PATHS[path] if org_policies is None else org_policies
    (home / "state.json").write_text(json.dumps(state))
    script = ["set -euo pipefail", "trap 'echo \"walk: block $WALK_BLOCK failed (line $LINENO)\" >&2' ERR"]
    for block in chosen if chosen is not None else blocks_of(path, (repo / "docs" / "deploy.md").read_text()):
        script += [
            f"WALK_BLOCK={block.number}",
            f"echo '### block {block.number} (docs/deploy.md:{block.line})' >&2",
            fill(block.code),
        ]
    env = {
        "PATH": f"{HERE / 'bin'}:{os.environ['PATH']}",
        "HOME": str(workdir),
        "FAKECLOUD_HOME": str(home),
        "FAKECLOUD_PYTHON": tools_python(),
        "PYTHONPATH": str(HERE),
        "LANG": "C.UTF-8",
    }
    process = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    failed = re.findall(r"walk: block (\d+) failed", process.stderr)
    return Result(process.returncode, process.stdout, process.stderr, home, int(failed[-1]) if failed else None)
