"""`make bench`: BinPay's figures next to the machine's own limits, measured in one run.

    .venv/bin/python bench/bench.py [--payments 5000] [--backlog 5000] [--latency-seconds 30] ...

Starts the Pub/Sub and Firestore emulators and PostgreSQL (a throwaway server unless DATABASE_URL
points at one), then measures, in order:

1. ceilings: a bare Django view doing one PostgreSQL INSERT under the initiator's gunicorn
   settings (wrk, same body and connections as BinPay's), the Firestore emulator's write and
   transaction rates on distinct documents, the Pub/Sub emulator's publish and streaming-pull
   rates and one hop's latency;
2. on a pull-mode stack (devtools/stack.py): initiation alone with the processor worker stopped
   (wrk, `--backlog` payments), which leaves a backlog; the backlog's drain once the worker is
   back, with every process's RSS sampled before, during and after; end to end (`--payments`,
   completed sagas/s sustained between the 10th and 90th percentile of completions); open-loop
   latency POST -> COMPLETED at a constant `--latency-rate`; head-of-line (every 10th payment
   waits SANDBOX_LATENCY_MS=2500 at the gateway, the others' throughput);
3. on a push-mode stack: end to end.

Completion times are the initiator's own (payments.updated_at when the outcome is applied). It
prints one table and writes everything as JSON to .run/bench/<UTC time>.json. It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "devtools"))

import ceilings  # noqa: E402
import emulators  # noqa: E402
import load  # noqa: E402
import postgres  # noqa: E402
import profiles  # noqa: E402
import psycopg  # noqa: E402
from stack import Stack, build_stack  # noqa: E402

# Production gateway timeouts (the stack's test defaults cut a 2.5 s answer off at 2 s), and the
# head-of-line phase's slow answers: amounts ending in .57 wait SANDBOX_LATENCY_MS at the gateway.
BENCH_ENV = {"PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS": "10", "SANDBOX_LATENCY_MS": "2500"}
USERS = 50
TARGETS = {
    "initiation_ratio": 0.5,
    "end_to_end_per_s": 100.0,
    "latency_p50_ms": 200.0,
    "latency_p99_ms": 600.0,
    "head_of_line_ratio_of_target": 0.8,
    "rss_growth_pct": 20.0,
    "drain_per_s": 100.0,
}


class Database:
    """The stack's initiator database, read directly so that measuring adds no load to BinPay."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(url, autocommit=True)

    def now(self) -> datetime:
        return self.connection.execute("SELECT now()").fetchone()[0]

    def counts(self, since: datetime) -> tuple[int, int]:
        total, settled = self.connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE status <> 'pending') FROM payments_payment WHERE created_at >= %s",
            [since],
        ).fetchone()
        return total, settled

    def unpublished(self) -> int:
        return self.connection.execute(
            "SELECT count(*) FROM payments_outboxevent WHERE published_at IS NULL"
        ).fetchone()[0]

    def payments(self, since: datetime) -> list[dict]:
        rows = self.connection.execute(
            "SELECT id::text, amount, status, created_at, updated_at FROM payments_payment WHERE created_at >= %s",
            [since],
        ).fetchall()
        return [
            {
                "id": row[0],
                "amount": row[1],
                "status": row[2],
                "created": row[3].timestamp(),
                "done": row[4].timestamp(),
            }
            for row in rows
        ]

    def wait_settled(self, since: datetime, timeout: float, tick=None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            total, settled = self.counts(since)
            if tick:
                tick(total, settled)
            if total and settled == total:
                return True
            time.sleep(0.25)
        return False


def sustained_rate(times: list[float]) -> float | None:
    """Completions per second between the 10th and the 90th percentile completion (ramps left out)."""
    times = sorted(times)
    if len(times) < 10:
        return len(times) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    low, high = int(len(times) * 0.1), int(len(times) * 0.9) - 1
    return (high - low) / (times[high] - times[low]) if times[high] > times[low] else None


def completion_figures(payments: list[dict], started: float | None = None) -> dict:
    completed = [payment for payment in payments if payment["status"] == "completed"]
    done = sorted(payment["done"] for payment in completed)
    latencies = sorted((payment["done"] - payment["created"]) * 1000 for payment in completed)
    first = started if started is not None else min((payment["created"] for payment in payments), default=0)
    return {
        "payments": len(payments),
        "completed": len(completed),
        "not_completed": len(payments) - len(completed),
        "sustained_per_s": sustained_rate(done),
        "overall_per_s": len(done) / (done[-1] - first) if done and done[-1] > first else None,
        "created_to_completed_p50_ms": load.percentile(latencies, 50),
        "created_to_completed_p99_ms": load.percentile(latencies, 99),
    }


def process_pids(stack: Stack, running: emulators.Emulators, pg: postgres.Postgres | None) -> dict[str, int]:
    pids = {name: process.pid for name, process in stack.processes.items()}
    for label, process in zip(("pubsub-emulator", "firestore-emulator"), running.processes, strict=False):
        pids[label] = process.pid
    if pg is not None:
        pid_file = pg.data_dir / "data" / "postmaster.pid"
        if pid_file.exists():
            pids["postgres"] = int(pid_file.read_text().split()[0])
    return pids


def rss_all(pids: dict[str, int]) -> dict[str, float]:
    return {name: round(load.rss_mib(pid), 1) for name, pid in pids.items()}


def submit(stack: Stack, users: list[int], tmp: Path, count: int, slow_every: int = 0) -> dict:
    return load.run_wrk(
        f"{stack.initiator_url}/initiate-payment", stack.api_key, users, tmp=tmp, limit=count, slow_every=slow_every
    )


def pause_worker_on_new_subscription(stack: Stack) -> str:
    """Stop the pull worker and move its messages to a new subscription no stream has ever read.

    The Pub/Sub emulator (0.8.20) keeps routing part of a subscription's messages to a stream that
    was closed (a stopped worker) and redelivers them only after their ack deadline, again partly
    to the dead stream, until they are dead-lettered: a restarted worker saw messages only once a
    minute. A subscription no stream has read does not have this problem. Returns its name.
    """
    from google.cloud import pubsub_v1

    stack.stop("processor-worker")
    subscriber = pubsub_v1.SubscriberClient()
    project = stack.env["PROJECT_ID"]
    old_name = stack.env.get("PUBSUB_SUBSCRIPTION", "initiator-sub")
    old = subscriber.get_subscription(subscription=subscriber.subscription_path(project, old_name))
    new_name = f"{old_name}-bench-{int(time.time())}"
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(project, new_name),
            "topic": old.topic,
            "ack_deadline_seconds": old.ack_deadline_seconds,
            "dead_letter_policy": old.dead_letter_policy,
            "retry_policy": old.retry_policy,
        }
    )
    subscriber.delete_subscription(subscription=old.name)
    subscriber.close()
    return new_name


def resume_worker(stack: Stack, subscription: str, max_messages: int | None) -> None:
    command, cwd, extra_env = stack.commands["processor-worker"]
    env = {**extra_env, "PUBSUB_SUBSCRIPTION": subscription}
    if max_messages:
        env["PUBSUB_FLOW_CONTROL_MAX_MESSAGES"] = str(max_messages)
    stack.start("processor-worker", command, cwd, env)


def phase_initiation_and_backlog(stack, db, users, tmp, args, pids) -> tuple[dict, dict]:
    """Initiation alone (processor worker stopped), then the backlog it left, drained."""
    subscription = pause_worker_on_new_subscription(stack)
    since = db.now()
    cpu_before = cpu_all(pids)
    initiation = submit(stack, users, tmp, args.backlog)
    initiation["cpu_ms_per_payment"] = cpu_ms_per_payment(cpu_before, cpu_all(pids), max(initiation["requests"], 1))
    deadline = time.monotonic() + 120
    while db.unpublished() and time.monotonic() < deadline:
        time.sleep(0.5)
    total, _ = db.counts(since)
    before = rss_all({name: pid for name, pid in pids.items() if name != "processor-worker"})
    samples: list[tuple[int, dict[str, float]]] = []
    last_sample = [0.0]

    def sample(_total: int, settled: int) -> None:
        if time.monotonic() - last_sample[0] >= 1:
            last_sample[0] = time.monotonic()
            samples.append((settled, rss_all(pids)))

    drain_started = time.time()
    resume_worker(stack, subscription, args.worker_max_messages)
    pids["processor-worker"] = stack.processes["processor-worker"].pid
    settled_all = db.wait_settled(since, timeout=args.timeout, tick=sample)
    after = rss_all(pids)
    figures = completion_figures(db.payments(since), started=drain_started)
    # Steady state: the first sample after a tenth of the backlog is drained (the restarted worker is warm).
    steady = next((rss for settled, rss in samples if settled >= total * 0.1), after)
    peak = {name: max([rss.get(name, 0.0) for _, rss in samples] + [after.get(name, 0.0)]) for name in pids}
    growth = {
        name: round((max(peak[name], after[name]) / steady[name] - 1) * 100, 1) for name in pids if steady.get(name)
    }
    backlog = {
        **figures,
        "backlog": total,
        "drain_seconds": max(p["done"] for p in db.payments(since)) - drain_started if total else None,
        "all_settled": settled_all,
        "rss_before_mib": before,
        "rss_steady_mib": steady,
        "rss_peak_mib": peak,
        "rss_after_mib": after,
        "rss_growth_pct": growth,
    }
    backlog["drain_per_s"] = total / backlog["drain_seconds"] if backlog["drain_seconds"] else None
    return initiation, backlog


def cpu_all(pids: dict[str, int]) -> dict[str, float]:
    return {name: load.cpu_seconds(pid) for name, pid in pids.items()}


def cpu_ms_per_payment(before: dict[str, float], after: dict[str, float], payments: int) -> dict[str, float]:
    """CPU milliseconds each process spent per payment during a phase (two cores: 2,000 ms/s in all)."""
    return {name: round((after[name] - before[name]) * 1000 / payments, 2) for name in before if name in after}


def phase_end_to_end(stack, db, users, tmp, count, timeout, pids, slow_every=0) -> dict:
    since = db.now()
    cpu_before = cpu_all(pids)
    submitted = submit(stack, users, tmp, count, slow_every=slow_every)
    settled_all = db.wait_settled(since, timeout=timeout)
    payments = db.payments(since)
    figures = {"submit": submitted, "all_settled": settled_all, **completion_figures(payments)}
    figures["cpu_ms_per_payment"] = cpu_ms_per_payment(cpu_before, cpu_all(pids), max(len(payments), 1))
    if slow_every:
        others = [payment for payment in payments if payment["amount"] % 100 != 57]
        figures["others"] = completion_figures(others)
        figures["slow"] = completion_figures([payment for payment in payments if payment["amount"] % 100 == 57])
    return figures


def phase_latency(stack, db, users, args, pids) -> dict:
    since = db.now()
    cpu_before = cpu_all(pids)
    records = load.open_loop(
        f"{stack.initiator_url}/initiate-payment",
        stack.api_key,
        users,
        rate=args.latency_rate,
        seconds=args.latency_seconds,
    )
    settled_all = db.wait_settled(since, timeout=args.timeout)
    done = {payment["id"]: payment for payment in db.payments(since)}
    # Meant to be below saturation, so that the CPU per payment is the work's, not the cost of contending
    # for two cores; compare the cores used (docs/performance.md).
    cpu = cpu_ms_per_payment(cpu_before, cpu_all(pids), max(len(done), 1))
    latencies = sorted(
        (done[record["payment_id"]]["done"] - record["scheduled"]) * 1000
        for record in records
        if record["payment_id"] in done and done[record["payment_id"]]["status"] == "completed"
    )
    post = sorted(record["post_ms"] for record in records)
    return {
        "rate_per_s": args.latency_rate,
        "sent": len(records),
        "accepted": sum(1 for record in records if record["status"] == 202),
        "completed": len(latencies),
        "all_settled": settled_all,
        "p50_ms": load.percentile(latencies, 50),
        "p90_ms": load.percentile(latencies, 90),
        "p99_ms": load.percentile(latencies, 99),
        "max_ms": latencies[-1] if latencies else None,
        "post_p50_ms": load.percentile(post, 50),
        "post_p99_ms": load.percentile(post, 99),
        "cpu_ms_per_payment": cpu,
    }


def funded_users(stack: Stack) -> list[int]:
    return [stack.create_funded_user("100000.00")["id"] for _ in range(USERS)]


def ratio(value, reference):
    return value / reference if value is not None and reference else None


def build_table(result: dict) -> list[dict]:
    c, p = result["ceilings"], result["phases"]
    bare = c["bare_django_insert"]
    initiation = p["initiation"]
    hop_p50, hop_p99 = c["pubsub"]["hop_p50_ms"], c["pubsub"]["hop_p99_ms"]
    pull = p["end_to_end_pull"]["sustained_per_s"]
    rows = [
        (
            "initiation req/s (processors stopped)",
            initiation["req_per_s"],
            "bare Django INSERT req/s",
            bare["req_per_s"],
            f">= {TARGETS['initiation_ratio']} x",
        ),
        ("initiation p50 ms", initiation["p50_ms"], "bare Django INSERT p50 ms", bare["p50_ms"], ""),
        ("initiation p99 ms", initiation["p99_ms"], "bare Django INSERT p99 ms", bare["p99_ms"], ""),
        (
            "end to end pull, sagas/s",
            pull,
            "Firestore emulator transactions/s",
            c["firestore"]["transactions_per_s"],
            f">= {TARGETS['end_to_end_per_s']:.0f}/s",
        ),
        (
            "end to end push, sagas/s",
            p["end_to_end_push"]["sustained_per_s"],
            "Firestore emulator transactions/s",
            c["firestore"]["transactions_per_s"],
            f">= {TARGETS['end_to_end_per_s']:.0f}/s",
        ),
        (
            f"POST->COMPLETED p50 ms @ {p['latency']['rate_per_s']:g}/s open loop",
            p["latency"]["p50_ms"],
            "2 Pub/Sub hops p50 ms",
            2 * hop_p50 if hop_p50 else None,
            f"<= {TARGETS['latency_p50_ms']:.0f} ms",
        ),
        (
            f"POST->COMPLETED p99 ms @ {p['latency']['rate_per_s']:g}/s open loop",
            p["latency"]["p99_ms"],
            "2 Pub/Sub hops p99 ms",
            2 * hop_p99 if hop_p99 else None,
            f"<= {TARGETS['latency_p99_ms']:.0f} ms",
        ),
        (
            "head-of-line: other 90% sagas/s",
            p["head_of_line"]["others"]["sustained_per_s"],
            "end to end pull sagas/s",
            pull,
            f">= {TARGETS['head_of_line_ratio_of_target'] * TARGETS['end_to_end_per_s']:.0f}/s",
        ),
        (
            "backlog drain sagas/s",
            p["backlog"]["drain_per_s"],
            "end to end pull sagas/s",
            pull,
            f">= {TARGETS['drain_per_s']:.0f}/s",
        ),
    ]
    growth = p["backlog"]["rss_growth_pct"]
    infrastructure = ("pubsub-emulator", "firestore-emulator", "postgres")
    for label, names in (
        ("BinPay", [name for name in growth if name not in infrastructure]),
        ("emulators, PostgreSQL", [name for name in growth if name in infrastructure]),
    ):
        worst = max(names, key=growth.get) if names else None
        rows.append(
            (
                f"backlog max RSS growth %, {label} ({worst})",
                growth.get(worst),
                "",
                None,
                f"<= {TARGETS['rss_growth_pct']:.0f}%" if label == "BinPay" else "",
            )
        )
    rows += [
        ("ceiling: bare Django INSERT req/s", bare["req_per_s"], "", None, ""),
        ("ceiling: Firestore writes/s", c["firestore"]["writes_per_s"], "", None, ""),
        ("ceiling: Firestore transactions/s", c["firestore"]["transactions_per_s"], "", None, ""),
        ("ceiling: Pub/Sub publish msg/s", c["pubsub"]["publish_per_s"], "", None, ""),
        ("ceiling: Pub/Sub streaming pull msg/s", c["pubsub"]["streaming_pull_per_s"], "", None, ""),
        (f"ceiling: Pub/Sub hop p50/p99 ms @ {c['pubsub']['hop_rate_per_s']:g}/s", hop_p50, "p99", hop_p99, ""),
    ]
    return [
        {
            "what": what,
            "binpay": value,
            "compared_with": ref_name,
            "reference": ref,
            "ratio": ratio(value, ref),
            "target": target,
        }
        for what, value, ref_name, ref, target in rows
    ]


def print_table(rows: list[dict]) -> None:
    def fmt(value) -> str:
        if value is None:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"

    header = ("what", "BinPay", "compared with (same run)", "value", "ratio", "target")
    lines = [
        (
            row["what"],
            fmt(row["binpay"]),
            row["compared_with"],
            fmt(row["reference"]),
            "-"
            if row["ratio"] is None or not row["compared_with"] or row["compared_with"] == "p99"
            else f"{row['ratio']:.2f}",
            row["target"],
        )
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    print(" | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for line in lines:
        print(" | ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=5000, help="end-to-end payments per mode")
    parser.add_argument("--backlog", type=int, default=5000, help="payments initiated with the processor stopped")
    parser.add_argument("--hol-payments", type=int, default=2000, help="head-of-line payments (10%% slow)")
    parser.add_argument("--latency-rate", type=float, default=20.0, help="open-loop payments/s")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--wrk-seconds", type=float, default=15.0, help="duration of the bare Django run")
    parser.add_argument("--firestore-ops", type=int, default=2000, help="writes (transactions: half)")
    parser.add_argument("--pubsub-messages", type=int, default=10000)
    parser.add_argument(
        "--worker-max-messages",
        type=int,
        default=None,
        help="the pull worker's PUBSUB_FLOW_CONTROL_MAX_MESSAGES from the backlog phase on (default: the processor's)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="longest wait for a phase to settle, s")
    parser.add_argument("--modes", default="pull,push", help="stacks to run: pull (every phase), push (end to end)")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the processes during end to end pull; write to this folder"
    )
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default .run/bench/<time>.json)")
    args = parser.parse_args()

    started = datetime.now(UTC)
    result: dict = {
        "started_at": started.isoformat(),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
        "settings": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "stack_env": BENCH_ENV,
        "ceilings": {},
        "phases": {},
    }
    modes = args.modes.split(",")
    running = emulators.start()
    hosts = {key: value for key, value in running.env().items() if key.endswith("_HOST")}
    os.environ.update(hosts)
    pg = None
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pg = postgres.start()
        os.environ["DATABASE_URL"] = pg.url
    server_url = os.environ["DATABASE_URL"]
    try:
        with tempfile.TemporaryDirectory(prefix="binpay-bench-") as tmp_name:
            tmp = Path(tmp_name)
            if "pull" in modes:
                run_pull(result, args, running, pg, server_url, hosts, tmp)
            if "push" in modes:
                run_push(result, args, running, pg, hosts, tmp)
    finally:
        running.stop()
        if pg is not None:
            pg.stop()
    result["seconds"] = (datetime.now(UTC) - started).total_seconds()
    result["phases"].setdefault("end_to_end_push", {"sustained_per_s": None})
    if "pull" in modes:
        result["table"] = build_table(result)
        print_table(result["table"])
    for phase in ("initiation", "end_to_end_pull", "latency", "end_to_end_push"):
        cpu = result["phases"].get(phase, {}).get("cpu_ms_per_payment")
        if cpu:
            busiest = sorted(cpu.items(), key=lambda item: -item[1])
            print(f"CPU ms per payment, {phase}: " + ", ".join(f"{name} {ms:.1f}" for name, ms in busiest if ms >= 0.1))
    output = args.output or ROOT / ".run" / "bench" / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str))
    print(f"\n{result['seconds']:.0f} s; everything measured is in {output}")
    return 0


def run_pull(result, args, running, pg, server_url, hosts, tmp) -> None:
    (tmp / "pull").mkdir()
    stack = build_stack("pull", hosts, tmp / "pull", extra_env=BENCH_ENV)
    try:
        users = funded_users(stack)
        print("ceilings ...", flush=True)
        flags = ceilings.initiator_gunicorn_flags(stack.commands["initiator-web"][0])
        result["ceilings"]["bare_django_insert"] = {
            **ceilings.bare_django_insert(
                server_url, tmp, flags, int(os.environ.get("DB_CONN_MAX_AGE", "60")), users, args.wrk_seconds, stack.env
            ),
            "gunicorn": flags,
        }
        result["ceilings"]["firestore"] = ceilings.firestore_rates(
            stack.env["PROJECT_ID"], args.firestore_ops, args.firestore_ops // 2
        )
        result["ceilings"]["pubsub"] = ceilings.pubsub_rates(
            stack.env["PROJECT_ID"], args.pubsub_messages, hop_messages=100, hop_rate=args.latency_rate
        )
        db = Database(stack.env["DATABASE_URL"])
        pids = process_pids(stack, running, pg)
        print("initiation and backlog ...", flush=True)
        result["phases"]["initiation"], result["phases"]["backlog"] = phase_initiation_and_backlog(
            stack, db, users, tmp, args, pids
        )
        print("end to end (pull) ...", flush=True)
        pids = process_pids(stack, running, pg)
        recorders = profiles.start(pids, args.profile) if args.profile else []
        result["phases"]["end_to_end_pull"] = phase_end_to_end(stack, db, users, tmp, args.payments, args.timeout, pids)
        if recorders:
            profiles.stop(recorders, args.profile)
        print("latency (open loop) ...", flush=True)
        result["phases"]["latency"] = phase_latency(stack, db, users, args, pids)
        print("head-of-line ...", flush=True)
        result["phases"]["head_of_line"] = phase_end_to_end(
            stack, db, users, tmp, args.hol_payments, args.timeout, pids, slow_every=10
        )
        result["dead_processes_pull"] = stack.dead()
    finally:
        stack.stop_all()


def run_push(result, args, running, pg, hosts, tmp) -> None:
    (tmp / "push").mkdir()
    stack = build_stack("push", hosts, tmp / "push", extra_env=BENCH_ENV)
    try:
        users = funded_users(stack)
        db = Database(stack.env["DATABASE_URL"])
        print("end to end (push) ...", flush=True)
        pids = process_pids(stack, running, pg)
        result["phases"]["end_to_end_push"] = phase_end_to_end(stack, db, users, tmp, args.payments, args.timeout, pids)
        result["dead_processes_push"] = stack.dead()
    finally:
        stack.stop_all()


if __name__ == "__main__":
    sys.exit(main())
