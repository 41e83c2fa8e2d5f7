"""The timings every scenario runs with, and the stack settings that carry them."""

from __future__ import annotations

# Kills end like production. A killed worker's messages come back once their ack deadline lapses:
# 10 s on the subscription, but a streaming-pull client extends it (~60 s) while it holds them, and
# a message can go to a worker that is killed in turn; a killed worker's lease lapses after
# LEASE_SECONDS. The processor stops retrying an ambiguous gateway after SAGA_TIMEOUT, and the
# reconciler settles a payment only after PAYMENT_TIMEOUT, which such redeliveries always beat.
LEASE_SECONDS = 60
# Push mode as deployed on Cloud Run: the request timeout leaves room to wait out a killed delivery's
# lease (60 s) and then handle (55 s) and publish (10 s); Pub/Sub waits longer than that for the answer.
PUSH_REQUEST_TIMEOUT = 130
ACK_DEADLINES = {"pull": 10, "push": 140}
SAGA_TIMEOUT = 240
PAYMENT_TIMEOUT = 300
REDRIVE_AFTER = 60
# How long the test waits for every payment to settle.
SETTLE_TIMEOUT = PAYMENT_TIMEOUT + 300


def stack_settings(mode: str) -> dict[str, str]:
    """The stack's environment in every scenario; the gateway adapter, a scenario and its faults add to it."""
    env = {
        "PAYMENT_TIMEOUT_SECONDS": str(PAYMENT_TIMEOUT),
        # The emulator does not deliver again some messages a killed worker held (README): the
        # reconciler publishes those again once no lease holds them, as it would a dead-lettered one.
        "PAYMENT_REDRIVE_AFTER_SECONDS": str(REDRIVE_AFTER),
        # The emulator goes on dispatching to a killed worker's stream (measured: 7 to 12 of 20 messages
        # published after the kill reached the new worker): each such message comes back after the
        # workers' lease-extension bound, so the shortest bound Pub/Sub allows.
        "PUBSUB_MAX_LEASE_EXTENSION_SECONDS": "10",
        "SAGA_TIMEOUT_SECONDS": str(SAGA_TIMEOUT),
        # One delivery's worst case here is 5 provider calls, each 3 connects of 1 s + a 2 s read
        # (gateway_faults.SETTINGS), plus 5 s of Firestore = 30 s: the lease outlives it (the
        # processor refuses to start otherwise), and a killed worker's lease lapses soon after.
        "LEASE_SECONDS": str(LEASE_SECONDS),
        # A payment the provider left unsettled (parked needs_attention(gateway_unreachable) among them) is
        # retried soon once the provider answers again: nothing needs a person at the end of a run.
        "RECONCILE_BACKOFF_SECONDS": "2",
        "RECONCILE_BACKOFF_MAX_SECONDS": "10",
    }
    if mode == "push":
        env["PUSH_REQUEST_TIMEOUT_SECONDS"] = str(PUSH_REQUEST_TIMEOUT)
    return env
