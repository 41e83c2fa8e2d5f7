"""The processor's log lines, as its process writes them: JSON, with no secret in them."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from conftest import PROCESSOR_DIR
from test_processes import process_env

PROGRAM = """
import logging, os, sys
from binpay_processor import create_app
create_app()
log = logging.getLogger("binpay_processor.push")
key, token = os.environ["PAYMENT_GATEWAY_API_KEY"], sys.argv[1]
log.warning("gateway key %s", key)
log.warning("token refused: %s", token)
log.info("delivery", extra={"headers": {"Authorization": "Bearer " + key, "X-Serverless-Authorization": token}})
try:
    raise RuntimeError(f"token {token} with key {key}")
except RuntimeError:
    log.exception("failed")
"""


def test_no_secret_reaches_a_log_line(config, emulator_env):
    key = uuid.uuid4().hex
    # A Cloud Run-stripped OIDC token, as a push request carries it.
    token = "eyJhbGciOiJSUzI1NiJ9.eyJlbWFpbCI6InB1c2hAeC50ZXN0In0.SIGNATURE_REMOVED_BY_GOOGLE"
    env = process_env(config, emulator_env, PAYMENT_GATEWAY_API_KEY=key, LOG_LEVEL="INFO")

    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, token], cwd=PROCESSOR_DIR, env=env, capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["message"].split(" ", 1)[0] for line in lines] == ["gateway", "token", "delivery", "failed"]
    assert key not in run.stdout
    assert "eyJlbWFpbCI6InB1c2hAeC50ZXN0In0" not in run.stdout
