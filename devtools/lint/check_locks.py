"""Every requirements lock is complete, hashed and current, checked offline (`make lint`, step "locks").

For each `.in` that devtools/lock_requirements.py locks, its `.txt` must exist, say it was written by
`make lock`, pin every package == with at least one sha256 hash (what `pip install --require-hashes`
needs), and pin each direct requirement of the `.in` (and of the `.in` files it includes) at the
version the `.in` names. A `.in` changed without `make lock`, or a line added to a lock by hand,
fails here. Whether a pinned version is known to be vulnerable is the CI audit job's question
(pip-audit, network), not this one's.

    python devtools/lint/check_locks.py [--root DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lock_requirements import SOURCES  # noqa: E402 - devtools/ is not a package

_PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(text: str) -> list[str]:
    """Lines with their `\\` continuations joined, comments and blank lines dropped."""
    joined, lines = "", []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        joined += line
        if joined.strip():
            lines.append(joined.strip())
        joined = ""
    return lines


def direct_requirements(path: Path) -> dict[str, str]:
    """name -> version of the `.in`'s own pins and those of the `.in` files it includes (-r)."""
    found: dict[str, str] = {}
    for line in logical_lines(path.read_text()):
        if line.startswith(("-r ", "--requirement ")):
            found.update(direct_requirements(path.parent / line.split(None, 1)[1]))
        elif line.startswith("-"):
            continue  # -c constraints, options
        else:
            match = _PINNED.match(line)
            found[normalized(match.group(1)) if match else line] = match.group(2) if match else ""
    return found


def lock_problems(source: Path, lock: Path, name: str) -> list[str]:
    """What is wrong with `lock` (shown as `name`), the lock of `source`."""
    if not lock.exists():
        return [f"{name}: missing; run `make lock`"]
    text = lock.read_text()
    problems = []
    if "make lock" not in text[:600]:
        problems.append(f"{name}: not written by `make lock`")
    pinned: dict[str, str] = {}
    for line in logical_lines(text):
        match = _PINNED.match(line)
        if not match:
            problems.append(f"{name}: not a pinned requirement: {line[:80]}")
            continue
        pinned[normalized(match.group(1))] = match.group(2)
        options = line[match.end() :].split()
        if not options or not all(_HASH.fullmatch(option) for option in options):
            problems.append(f"{name}: {match.group(1)} must carry sha256 hashes and nothing else")
    for package, version in direct_requirements(source).items():
        if not version:
            problems.append(f"{source.name}: {package} is not pinned == (the .in pins every direct requirement)")
        elif pinned.get(package) != version:
            problems.append(
                f"{name}: {package} is {pinned.get(package, 'missing')}, {source.name} says {version}: run `make lock`"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args(argv)
    problems = []
    for relative in SOURCES:
        source = args.root / relative
        if not source.exists():
            problems.append(f"{relative}: missing")
            continue
        lock = source.with_suffix(".txt")
        problems += lock_problems(source, lock, lock.relative_to(args.root).as_posix())
    for problem in problems:
        print(f"locks: {problem}", file=sys.stderr)
    if not problems:
        print(f"locks: {len(SOURCES)} locks complete, hashed and current")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
