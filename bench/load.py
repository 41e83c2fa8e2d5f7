"""Load generation and measurement helpers: wrk (closed loop), an open-loop client, processes, RSS."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "post_payments.lua"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def start_process(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as output:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_http(url: str, expect_status: int = 200, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == expect_status:
                    return
        except urllib.error.HTTPError as error:
            if error.code == expect_status:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer {expect_status} within {timeout}s")


def run_wrk(
    url: str,
    api_key: str,
    users: list[int],
    *,
    tmp: Path,
    seconds: float | None = None,
    limit: int | None = None,
    slow_every: int = 0,
    connections: int = 16,
    threads: int = 2,
    timeout: float = 1800,
) -> dict:
    """Closed-loop POSTs with wrk: for `seconds`, or until about `limit` responses (split over the threads).

    Returns wrk's totals: requests, seconds, req_per_s, errors, latency p50/p90/p99 in ms.
    """
    done_dir = tmp / f"wrk-{uuid.uuid4().hex[:8]}"
    done_dir.mkdir()
    per_thread = math.ceil(limit / threads) if limit else 0
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{int(seconds) if seconds else 36000}s",
        "--timeout",
        "30s",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        api_key,
        str(per_thread),
        str(slow_every),
        str(done_dir),
        *[str(user) for user in users],
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if limit:
        deadline = time.monotonic() + timeout
        while process.poll() is None and len(list(done_dir.iterdir())) < threads and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            # wrk sleeps for its whole -d even when every thread stopped; SIGINT ends it and prints the totals.
            process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=timeout)
    line = next((line for line in output.splitlines() if line.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no totals:\n{output}")
    totals = json.loads(line.removeprefix("BENCH_JSON "))
    duration = totals["duration_us"] / 1e6
    return {
        "requests": totals["requests"],
        "seconds": duration,
        "req_per_s": totals["requests"] / duration,
        "errors": {key: totals[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts")},
        "non_2xx": totals["non_2xx_3xx"],
        "p50_ms": totals["p50_us"] / 1000,
        "p90_ms": totals["p90_us"] / 1000,
        "p99_ms": totals["p99_us"] / 1000,
        "connections": connections,
    }


def open_loop(url: str, api_key: str, users: list[int], *, rate: float, seconds: float) -> list[dict]:
    """POST at a constant rate whatever the server does (no coordinated omission).

    Each record: the scheduled send time (wall clock), the POST's own latency, the status and the
    payment id. A request that cannot be sent on time still counts from its scheduled time.
    """
    local = threading.local()
    records: list[dict] = []

    def send(index: int, scheduled: float) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {api_key}"
        record = {"scheduled": scheduled, "status": None, "payment_id": None}
        try:
            response = session.post(url, data={"user_id": users[index % len(users)], "amount": "1.00"}, timeout=30)
            record["status"] = response.status_code
            if response.status_code == 202:
                record["payment_id"] = response.json()["id"]
        except requests.RequestException as error:
            record["error"] = str(error)
        record["post_ms"] = (time.time() - scheduled) * 1000
        records.append(record)

    count = int(rate * seconds)
    started = time.time() + 0.2
    with ThreadPoolExecutor(64) as pool:
        for index in range(count):
            scheduled = started + index / rate
            delay = scheduled - time.time()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, index, scheduled)
    return records


def _tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants, in seconds.

    Live descendants count their own time; exited ones count in their parent's children's time once
    reaped (PostgreSQL backends of closed connections, for instance).
    """
    ticks = 0
    for current in _tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (gunicorn workers, the emulators' JVM), MiB."""
    total = 0
    for current in _tree(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total / 1024
