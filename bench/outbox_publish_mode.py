"""What publishing payment.initiated within the request costs (docs/deploy.md, "The outbox on Cloud Run").

    .venv/bin/python bench/outbox_publish_mode.py [--payments 300]

Runs the initiator twice on the same machine, real PostgreSQL (a throwaway server unless
DATABASE_URL points at one) and the Pub/Sub emulator: once publishing after the commit on a
background thread (the default), once within the request (OUTBOX_PUBLISH_IN_REQUEST=true, as on
Cloud Run). Each run posts the same number of payments one after the other (no concurrency, so the
figure is the request's own latency) with the outbox relay stopped, and reports the request latency
(p50/p90/p99) and how long after its commit each row was published (from the database). It asserts
nothing; the figures depend on the machine and on the emulator standing in for Pub/Sub.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "devtools"))

import emulators  # noqa: E402
import postgres  # noqa: E402
import psycopg  # noqa: E402
from stack import build_stack  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def measure(in_request: bool, payments: int, emulator_env: dict, workdir: Path) -> dict:
    stack = build_stack(
        "pull", emulator_env, workdir, extra_env={"OUTBOX_PUBLISH_IN_REQUEST": "true" if in_request else "false"}
    )
    try:
        stack.stop("initiator-relay")
        user = stack.create_funded_user("100000.00")
        api = stack.api()
        latencies, ids = [], []
        for _ in range(payments):
            started = time.perf_counter()
            response = api.post(
                f"{stack.initiator_url}/initiate-payment",
                json={"user_id": user["id"], "amount": "1.00"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                timeout=30,
            )
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        time.sleep(2)  # let a background publisher finish before reading the lags
        with psycopg.connect(stack.env["DATABASE_URL"]) as connection:
            rows = connection.execute(
                "SELECT EXTRACT(EPOCH FROM (published_at - created_at)) * 1000 FROM payments_outboxevent"
                " WHERE payment_id = ANY(%s::uuid[])",
                (ids,),
            ).fetchall()
        lags = [float(lag) for (lag,) in rows if lag is not None]
        return {
            "mode": "in request (Cloud Run)" if in_request else "background thread (default)",
            "p50": statistics.median(latencies),
            "p90": percentile(latencies, 0.9),
            "p99": percentile(latencies, 0.99),
            "published": f"{len(lags)}/{len(rows)}",
            "lag_p50": statistics.median(lags) if lags else float("nan"),
            "lag_p99": percentile(lags, 0.99) if lags else float("nan"),
        }
    finally:
        stack.stop_all()


def make_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=300)
    args = parser.parse_args()
    server = None
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        server = postgres.start()
        os.environ["DATABASE_URL"] = server.url
    running = emulators.start()
    os.environ.update({k: v for k, v in running.env().items() if k.endswith("_HOST")})
    try:
        with tempfile.TemporaryDirectory(prefix="binpay-outbox-bench-") as workdir:
            results = [
                measure(mode, args.payments, running.env(), make_dir(Path(workdir) / str(mode)))
                for mode in (False, True)
            ]
    finally:
        running.stop()
        if server:
            server.stop()
    print(
        f"{'publish':<30} {'POST p50 ms':>12} {'p90':>8} {'p99':>8} {'published':>10} {'lag p50 ms':>11} {'lag p99':>8}"
    )
    for r in results:
        print(
            f"{r['mode']:<30} {r['p50']:>12.1f} {r['p90']:>8.1f} {r['p99']:>8.1f} {r['published']:>10}"
            f" {r['lag_p50']:>11.1f} {r['lag_p99']:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
