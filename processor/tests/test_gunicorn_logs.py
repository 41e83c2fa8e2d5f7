"""gunicorn's own lines are JSON with a severity, like the app's (Cloud Logging reads plain stderr as errors)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import PROCESSOR_DIR, devtools_emulators, stop_process_group, wait_http_ok
from test_processes import process_env


def test_every_gunicorn_line_is_json_with_a_severity(config, emulator_env, tmp_path):
    port = devtools_emulators.free_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [gunicorn, "-w", "1", "-b", f"127.0.0.1:{port}", "app:app"],
            cwd=PROCESSOR_DIR,
            env=process_env(config, emulator_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", server)
    finally:
        assert stop_process_group(server) == 0

    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    loggers = set()
    for line in lines:
        record = json.loads(line)  # a plain-text line fails here
        assert record["severity"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, record
        loggers.add(record["logger"])
    assert "gunicorn.error" in loggers, "gunicorn's start-up lines were not seen: nothing was checked"
