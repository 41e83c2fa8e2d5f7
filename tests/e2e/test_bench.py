"""`make bench` runs end to end and reports every figure (a tiny run: the figures exist, not their size)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--payments", "30", "--backlog", "30", "--hol-payments", "30", "--latency-seconds", "2", "--wrk-seconds", "2"]


def test_the_benchmark_prints_its_table_and_writes_it_as_json(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "bench/bench.py",
            *TINY,
            "--firestore-ops",
            "40",
            "--pubsub-messages",
            "100",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for row in (
        "initiation req/s",
        "end to end pull, sagas/s",
        "end to end push, sagas/s",
        "POST->COMPLETED p99 ms",
        "head-of-line: other 90% sagas/s",
        "backlog drain sagas/s",
        "ceiling: bare Django INSERT req/s",
    ):
        assert row in result.stdout, result.stdout
    table = json.loads(output.read_text())["table"]
    assert all(row["binpay"] is not None for row in table), table
