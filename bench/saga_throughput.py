"""Benchmark: initiation throughput and end-to-end saga throughput of a real local stack.

    .venv/bin/python bench/saga_throughput.py [--payments 1000] [--concurrency 32] [--mode pull|push]

Starts the emulators and a stack (devtools/stack.py; PostgreSQL when DATABASE_URL points at a
server, else SQLite), submits approved payments from N threads, and prints: initiation
requests/s and latency percentiles, the time until every saga is settled (payments/s end to
end), and the resident memory of each process afterwards. It prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "devtools"))

import emulators  # noqa: E402
from stack import build_stack  # noqa: E402


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (gunicorn workers), in MiB."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        pids += [int(child) for child in children]
    return total / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--mode", choices=("pull", "push"), default="pull")
    args = parser.parse_args()

    running = emulators.start()
    hosts = {k: v for k, v in running.env().items() if k.endswith("_HOST")}
    os.environ.update(hosts)
    with tempfile.TemporaryDirectory(prefix="binpay-bench-") as tmp:
        stack = build_stack(args.mode, hosts, Path(tmp))
        try:
            users = [stack.create_funded_user("100000.00") for _ in range(20)]
            session = stack.api()

            def submit(index: int) -> tuple[float, str]:
                started = time.perf_counter()
                response = session.post(
                    f"{stack.initiator_url}/initiate-payment",
                    data={"user_id": users[index % len(users)]["id"], "amount": f"{1 + index % 90}.00"},
                    timeout=30,
                )
                response.raise_for_status()
                return time.perf_counter() - started, response.json()["id"]

            started = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                results = list(pool.map(submit, range(args.payments)))
            submitted = time.perf_counter() - started
            stack.wait_terminal([payment_id for _, payment_id in results], timeout=1800)
            settled = time.perf_counter() - started

            latencies = sorted(latency * 1000 for latency, _ in results)
            database = "PostgreSQL" if stack.env["DATABASE_URL"].startswith("postgres") else "SQLite"
            print(f"mode {args.mode}, {database}, {args.payments} payments, {args.concurrency} client threads")
            print(f"initiation: {args.payments / submitted:.0f} req/s over {submitted:.1f} s")
            print(
                f"initiation latency ms: p50 {statistics.median(latencies):.1f}, "
                f"p95 {latencies[int(len(latencies) * 0.95) - 1]:.1f}, p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f}"
            )
            print(f"end to end: all settled after {settled:.1f} s = {args.payments / settled:.1f} payments/s")
            for name, process in stack.processes.items():
                print(f"rss {name}: {rss_mib(process.pid):.0f} MiB")
        finally:
            stack.stop_all()
            running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
