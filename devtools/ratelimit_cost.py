"""What one rate-limit check costs (core/ratelimit.py): the UPSERT of a request's two budgets, timed
in-process against the database of DATABASE_URL, next to a bare `SELECT 1` round trip on the same
connection. A measurement to read, not a test.

    cd initiator && DATABASE_URL=postgres://... ../.venv/bin/python ../devtools/ratelimit_cost.py [--requests 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "initiator"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binpay_initiator.settings")


def timed(work, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--keys", type=int, default=50, help="distinct API keys the requests spread over")
    args = parser.parse_args()

    import django

    django.setup()
    from core.ratelimit import Budget, check
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", "core", verbosity=0)
    budget = Budget(10**9, 1)
    rounds = iter(range(10**9))

    def one_check() -> None:
        n = next(rounds)
        check([("ip:read:bench", budget), (f"key:read:bench-{n % args.keys}", budget)])

    def round_trip() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    timed(one_check, 200)  # warm up: rows exist, plans cached
    checks, trips = timed(one_check, args.requests), timed(round_trip, args.requests)
    print(f"database: {connection.vendor}; {args.requests} requests over {args.keys} keys and one address")
    for name, samples in (("rate-limit check (2 budgets, 1 UPSERT)", checks), ("SELECT 1 round trip", trips)):
        ordered = sorted(samples)
        print(
            f"{name:<40} median {statistics.median(samples):7.0f} µs   p99 {ordered[int(len(ordered) * 0.99)]:7.0f} µs"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM core_ratelimitbucket WHERE bucket LIKE %s OR bucket LIKE %s",
            ["ip:read:bench", "key:read:bench-%"],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
