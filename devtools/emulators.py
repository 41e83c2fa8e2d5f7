"""Start and stop the Pub/Sub and Firestore emulators that ship with the Google Cloud SDK.

Standard library only, so every service's tests (each with its own virtualenv) can import it.

    python devtools/emulators.py [--pubsub-port 8085] [--firestore-port 8086] [--firestore-data DIR]

runs both in the foreground until SIGINT/SIGTERM and prints the env vars to export. With
--firestore-data (`make run`), Firestore starts from the export in DIR and exports into it again
on the way out, so the saga logs live as long as the database beside them (the Pub/Sub emulator
cannot persist; the outbox relay and the reconciler cover messages in flight at Ctrl-C). Tests use
``start()``, which picks free ports, and ``Emulators.stop()``. Each emulator runs in its own
process group: the SDK's launch scripts fork a Java process, and stopping only the wrapper
would leave the port taken.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PROJECT_ID = "binpay-local"


class PrerequisiteMissing(RuntimeError):
    """A tool the emulators need is not installed; the message says what to install."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sdk_platform_dir() -> Path:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise PrerequisiteMissing(
            "gcloud not found: install the Google Cloud SDK "
            "(https://cloud.google.com/sdk/docs/install), then "
            "`gcloud components install pubsub-emulator cloud-firestore-emulator beta`."
        )
    return Path(os.path.realpath(gcloud)).parent.parent / "platform"


def emulator_commands() -> tuple[Path, Path]:
    """Return the Pub/Sub and Firestore emulator launchers, or raise PrerequisiteMissing."""
    if shutil.which("java") is None:
        raise PrerequisiteMissing(
            "java not found: the emulators need a Java 11+ runtime (e.g. apt-get install openjdk-17-jre-headless)."
        )
    platform = _sdk_platform_dir()
    pubsub = platform / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    firestore = platform / "cloud-firestore-emulator" / "cloud_firestore_emulator"
    missing = [
        name
        for name, path in (("pubsub-emulator", pubsub), ("cloud-firestore-emulator", firestore))
        if not path.exists()
    ]
    if missing:
        raise PrerequisiteMissing(
            f"Google Cloud SDK component(s) missing: {', '.join(missing)}. "
            f"Install with `gcloud components install {' '.join(missing)}` "
            "(Debian/Ubuntu packages: google-cloud-cli-pubsub-emulator, google-cloud-cli-firestore-emulator)."
        )
    return pubsub, firestore


def _wait_http_ok(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"emulator exited with {process.returncode}; see {log_path}:\n{log_path.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s; see {log_path}")


def _stop_group(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
    # The Java child may outlive a wrapper that already exited.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class Emulators:
    project_id: str
    pubsub_host: str
    firestore_host: str
    log_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    firestore_data: Path | None = None

    def env(self) -> dict[str, str]:
        return {
            "PROJECT_ID": self.project_id,
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
        }

    def export_firestore(self) -> None:
        """Replace the export in `firestore_data` with the emulator's current documents."""
        fresh = self.firestore_data.with_name(self.firestore_data.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        body = {"database": f"projects/{self.project_id}/databases/(default)", "export_directory": str(fresh)}
        request = urllib.request.Request(
            f"http://{self.firestore_host}/emulator/v1/projects/{self.project_id}:export",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=60).close()
        shutil.rmtree(self.firestore_data, ignore_errors=True)
        fresh.rename(self.firestore_data)

    def stop(self) -> None:
        if self.firestore_data is not None and self.processes:
            try:
                self.export_firestore()
            except OSError as error:
                print(f"emulators: Firestore export to {self.firestore_data} failed: {error}", file=sys.stderr)
        for process in self.processes:
            _stop_group(process)
        self.processes.clear()


def latest_export(directory: Path | None) -> Path | None:
    """The metadata file of the Firestore export in `directory`, if there is one."""
    found = sorted(directory.glob("*/*.overall_export_metadata")) if directory and directory.is_dir() else []
    return found[-1] if found else None


def start(
    project_id: str = DEFAULT_PROJECT_ID,
    pubsub_port: int | None = None,
    firestore_port: int | None = None,
    log_dir: Path | None = None,
    timeout: float = 60,
    firestore_data: Path | None = None,
) -> Emulators:
    pubsub_cmd, firestore_cmd = emulator_commands()
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="binpay-emulators-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    pubsub_port = pubsub_port or free_port()
    firestore_port = firestore_port or free_port()
    emulators = Emulators(
        project_id, f"127.0.0.1:{pubsub_port}", f"127.0.0.1:{firestore_port}", log_dir, firestore_data=firestore_data
    )
    firestore_import = latest_export(firestore_data)
    launches = [
        ("pubsub", [str(pubsub_cmd), "--host=127.0.0.1", f"--port={pubsub_port}"], emulators.pubsub_host),
        (
            "firestore",
            [
                str(firestore_cmd),
                "start",
                "--host=127.0.0.1",
                f"--port={firestore_port}",
                f"--project_id={project_id}",
                *([f"--import-data={firestore_import}"] if firestore_import else []),
            ],
            emulators.firestore_host,
        ),
    ]
    try:
        started = []
        for name, command, host in launches:
            log_path = log_dir / f"{name}.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
                )
            emulators.processes.append(process)
            started.append((process, host, log_path))
        for process, host, log_path in started:
            _wait_http_ok(f"http://{host}/", process, log_path, timeout)
    except BaseException:
        emulators.stop()
        raise
    return emulators


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-id", default=os.environ.get("PROJECT_ID", DEFAULT_PROJECT_ID))
    parser.add_argument("--pubsub-port", type=int, default=int(os.environ.get("PUBSUB_EMULATOR_PORT", "8085")))
    parser.add_argument("--firestore-port", type=int, default=int(os.environ.get("FIRESTORE_EMULATOR_PORT", "8086")))
    parser.add_argument("--log-dir", type=Path, default=None)
    parser.add_argument("--firestore-data", type=Path, default=None, help="keep Firestore's documents here")
    parser.add_argument("--check", action="store_true", help="only check the prerequisites and exit")
    args = parser.parse_args(argv)
    try:
        emulator_commands()
        if args.check:
            return 0
        for port in (args.pubsub_port, args.firestore_port):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    print(f"emulators: port {port} is already in use (another `make run`?)", file=sys.stderr)
                    return 1
        emulators = start(
            args.project_id, args.pubsub_port, args.firestore_port, args.log_dir, firestore_data=args.firestore_data
        )
    except PrerequisiteMissing as error:
        print(f"emulators: {error}", file=sys.stderr)
        return 2
    stop_requested = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop_requested.append(True))
    print(
        f"emulators ready: PUBSUB_EMULATOR_HOST={emulators.pubsub_host} "
        f"FIRESTORE_EMULATOR_HOST={emulators.firestore_host} (logs in {emulators.log_dir})",
        flush=True,
    )
    try:
        while not stop_requested and all(p.poll() is None for p in emulators.processes):
            time.sleep(0.5)
    finally:
        emulators.stop()
    return 0 if stop_requested else 1


if __name__ == "__main__":
    sys.exit(main())
