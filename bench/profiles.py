"""Sampling profiles of BinPay's processes during a bench phase (py-spy, attached by pid).

`bench.py --profile DIR` records, during the end-to-end pull phase, the initiator web (its
gunicorn workers), the processor worker, the initiator consumer and the sandbox gateway (the
provider's model, on the same cores), and writes for each the raw
collapsed stacks (DIR/<process>.txt, loadable by flamegraph tools and speedscope) and a summary of
where the Python CPU went (DIR/summary.txt; only samples of the thread holding the GIL): the busiest
leaf functions and BinPay's own functions by inclusive samples.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
PROFILED = ("initiator-web", "processor-worker", "initiator-consumer", "processor-web", "gateway")
OWN_CODE = ("binpay_processor/", "payments/", "core/", "accounts/", "sandbox_gateway/")


def start(pids: dict[str, int], out_dir: Path) -> list[tuple[str, subprocess.Popen]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    recorders = []
    for name in PROFILED:
        if name not in pids:
            continue
        command = [str(PY_SPY), "record", "--pid", str(pids[name]), "--subprocesses", "--nonblocking", "--gil"]
        command += ["--rate", "50", "--format", "raw", "--output", str(out_dir / f"{name}.txt")]
        log = open(out_dir / f"{name}.py-spy.log", "wb")  # noqa: SIM115 - handed to the process
        recorders.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)))
    return recorders


def stop(recorders: list[tuple[str, subprocess.Popen]], out_dir: Path) -> None:
    for _, recorder in recorders:
        recorder.send_signal(signal.SIGINT)
    for _, recorder in recorders:
        try:
            recorder.wait(60)
        except subprocess.TimeoutExpired:
            recorder.kill()
    with open(out_dir / "summary.txt", "w") as summary:
        for name, _ in recorders:
            summary.write(summarise(name, out_dir / f"{name}.txt"))


def summarise(name: str, path: Path, top: int = 25) -> str:
    if not path.exists():
        return f"== {name}: no profile\n"
    leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        leaf[frames[-1]] += samples
        for frame in set(frames):
            if any(part in frame for part in OWN_CODE):
                inclusive[frame] += samples
    lines = [f"== {name}: {total} samples (GIL held, 50/s)", "-- busiest leaf frames"]
    lines += [f"{count / total:6.1%}  {frame}" for frame, count in leaf.most_common(top)]
    lines.append("-- BinPay's own frames, inclusive")
    lines += [f"{count / total:6.1%}  {frame}" for frame, count in inclusive.most_common(top)]
    return "\n".join(lines) + "\n\n"
