"""A throwaway PostgreSQL server for tests and local runs (standard library only).

    python devtools/postgres.py [--port 5432]

initialises a data directory in a temporary folder, serves it on 127.0.0.1 in the foreground
until SIGINT/SIGTERM, prints DATABASE_URL, and removes the folder on exit. ``initdb`` refuses
to run as root, so as root the server binaries run as the ``postgres`` user.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from emulators import PrerequisiteMissing, free_port


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PrerequisiteMissing("PostgreSQL server binaries not found: apt-get install postgresql")


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class Postgres:
    data_dir: Path
    port: int
    bindir: Path
    database: str = "binpay"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def stop(self) -> None:
        subprocess.run(
            _as_server_user(
                [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data_dir / "data"), "-m", "fast", "-w"]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start(port: int | None = None, database: str = "binpay") -> Postgres:
    bindir = _bindir()
    port = port or free_port()
    root = Path(tempfile.mkdtemp(prefix="binpay-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    postgres = Postgres(root, port, bindir, database)
    data = root / "data"
    run = lambda command: subprocess.run(_as_server_user(command), check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        run([str(bindir / "pg_ctl"), "start", "-D", str(data), "-w", "-l", str(root / "server.log"), "-o", options])
        run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database])
    except subprocess.CalledProcessError as error:
        postgres.stop()
        raise RuntimeError(f"PostgreSQL failed to start: {error.stderr or error.stdout}") from error
    except BaseException:
        postgres.stop()
        raise
    return postgres


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        postgres = start(args.port)
    except PrerequisiteMissing as error:
        print(f"postgres: {error}", file=sys.stderr)
        return 2
    stop_requested = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop_requested.append(True))
    print(f"postgres ready: DATABASE_URL={postgres.url}", flush=True)
    try:
        while not stop_requested:
            time.sleep(0.5)
    finally:
        postgres.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
