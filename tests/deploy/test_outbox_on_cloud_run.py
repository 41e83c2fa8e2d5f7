"""With request-based billing Cloud Run takes the CPU away once a response is sent
(https://cloud.google.com/run/docs/tips/general#avoid_background_activities). The initiator runs
here with the environment deploy/cloudrun/initiator.yaml gives it, on the real PostgreSQL and
Pub/Sub emulator; the moment its response arrives, every process of the web server is stopped
(SIGSTOP: no CPU at all, the limit of "disabled or severely limited"). payment.initiated must have
been published by then, because nothing else on Cloud Run publishes until the relay's next run.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
import yaml
from stack import build_stack

REPO = Path(__file__).resolve().parents[2]


def cloud_run_outbox_env() -> dict[str, str]:
    """The outbox settings the Cloud Run initiator is deployed with (its YAML's plain env values)."""
    service = yaml.safe_load((REPO / "deploy" / "cloudrun" / "initiator.yaml").read_text())
    env = service["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in env if "value" in e and e["name"].startswith("OUTBOX_")}


def group_states(pgid: int) -> dict[int, str]:
    """The scheduler state (R, S, T, ...) of every process in a process group."""
    states = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                states[int(entry.name)] = fields[0]
    return states


@pytest.fixture
def cloud_run_initiator(emulator_env, tmp_path):
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.fail(
            "needs DATABASE_URL on PostgreSQL (SKIP LOCKED): run it through devtools/run_tests.py --only deploy"
        )
    stack = build_stack("pull", emulator_env, tmp_path, extra_env=cloud_run_outbox_env())
    # Only the web process may publish: on Cloud Run the relay is a job that runs every few minutes.
    stack.stop("initiator-relay")
    yield stack
    web = stack.processes.get("initiator-web")
    if web is not None and web.poll() is None:
        os.killpg(web.pid, signal.SIGCONT)
    stack.stop_all()


def test_payment_initiated_is_published_before_the_response_on_cloud_run(cloud_run_initiator):
    stack = cloud_run_initiator
    user = stack.create_funded_user("50.00")
    response = stack.api().post(
        f"{stack.initiator_url}/initiate-payment",
        json={"user_id": user["id"], "amount": "10.00"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
        timeout=10,
    )
    web = stack.processes["initiator-web"]
    os.killpg(web.pid, signal.SIGSTOP)  # Cloud Run's request-based billing, after the response
    assert response.status_code == 202, response.text
    states = group_states(web.pid)
    assert states and set(states.values()) == {"T"}, f"the web server was not stopped: {states}"

    with psycopg.connect(stack.env["DATABASE_URL"]) as connection:
        published = connection.execute(
            "SELECT event_type, published_at FROM payments_outboxevent WHERE payment_id = %s",
            (response.json()["id"],),
        ).fetchall()
    assert published and all(at is not None for _, at in published), (
        f"payment.initiated still unpublished when the response arrived: {published}"
        " (a background thread would publish it, and Cloud Run throttles it)"
    )

    os.killpg(web.pid, signal.SIGCONT)
    assert requests.get(f"{stack.initiator_url}/healthz", timeout=10).status_code == 200
