"""The benchmark script the README shows runs and prints every figure (small run: numbers, not speed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_saga_benchmark_prints_its_figures(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'bench.sqlite3'}"
    result = subprocess.run(
        [sys.executable, "bench/saga_throughput.py", "--payments", "20", "--concurrency", "4"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for figure in ("initiation:", "initiation latency ms: p50", "end to end: all settled", "rss initiator-web:"):
        assert figure in result.stdout, result.stdout
