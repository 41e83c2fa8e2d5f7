"""`make lock`: every requirements file, locked with hashes, from the `.in` file beside it.

The `.in` files are what people edit: the direct dependencies, each pinned ==. This script resolves
each one with pip-compile (pip-tools, in the root .venv) into the `.txt` of the same name: every
package, dependencies included, pinned == with the sha256 of each of its files on the index. Images,
`make venv`, CI and the lint tools install the `.txt` files with `pip install --require-hashes`, so a
build gets exactly those files or fails.

A test requirements file is locked under the constraints of its runtime lock (its `.in` says
`-c requirements-runtime.txt`), and the root requirements-dev under those of every service, so the
versions tested are the versions shipped. Existing pins are kept unless a `.in` asks for another;
`make lock LOCK_ARGS=--upgrade` (or `--upgrade-package NAME`) moves them.

    python devtools/lock_requirements.py [--only PATH.in ...] [pip-compile options]

`devtools/lint/check_locks.py` (offline, in `make lint`) fails while a lock is stale or unhashed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# In order: a lock named in a later `.in` as a constraint (-c) is written before it.
SOURCES = (
    "initiator/requirements-runtime.in",
    "processor/requirements-runtime.in",
    "gateway/requirements-runtime.in",
    "initiator/requirements.in",
    "processor/requirements.in",
    "gateway/requirements.in",
    "requirements-dev.in",
    "devtools/lint/requirements.in",
    "devtools/lint/checkov-requirements.in",
    "devtools/audit-requirements.in",
)

PIP_COMPILE_OPTIONS = (
    "--quiet",
    "--generate-hashes",
    # pip and setuptools are pinned and hashed too: --require-hashes refuses anything unhashed.
    "--allow-unsafe",
    "--strip-extras",
    "--no-emit-index-url",
    "--no-emit-find-links",
    "--no-emit-trusted-host",
)


def lock_path(source: str) -> Path:
    return ROOT / Path(source).with_suffix(".txt")


def pip_compile() -> Path:
    tool = Path(sys.executable).with_name("pip-compile")
    if not tool.exists():
        raise SystemExit(f"lock: {tool} not found: run `make venv` first (pip-tools is in requirements-dev.in)")
    return tool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="these .in files (paths from the repository root)")
    args, extra = parser.parse_known_args(argv)
    unknown = set(args.only or ()) - set(SOURCES)
    if unknown:
        parser.error(f"not a locked source: {', '.join(sorted(unknown))}")
    tool = pip_compile()
    for source in SOURCES:
        if args.only is not None and source not in args.only:
            continue
        print(f"lock: {source} -> {lock_path(source).relative_to(ROOT)}", flush=True)
        # From the .in's folder, so its -r/-c paths and the lock's "via" comments read the same as the file.
        folder = (ROOT / source).parent
        result = subprocess.run(
            [
                str(tool),
                *PIP_COMPILE_OPTIONS,
                *extra,
                "--output-file",
                lock_path(source).name,
                Path(source).name,
            ],
            cwd=folder,
            # The lock's header names the command that wrote it.
            env={**os.environ, "CUSTOM_COMPILE_COMMAND": "make lock"},
            check=False,
        )
        if result.returncode != 0:
            print(f"lock: pip-compile failed for {source}", file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
