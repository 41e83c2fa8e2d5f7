"""The subscriptions devtools/pubsub_setup.py makes, on the real emulator: production's retry policy,
and a SIGKILLed subscriber's messages come back to the next one (the fault suite relies on both)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

import pubsub_setup
from google.cloud import pubsub_v1

# Receives every message, acknowledges none, says so, and waits to be killed.
HOLDER = """
import sys, threading
from google.cloud import pubsub_v1
received = []
def hold(message):
    received.append(message.message_id)
    if len(received) == int(sys.argv[2]):
        print("holding", flush=True)
pubsub_v1.SubscriberClient().subscribe(sys.argv[1], hold)
threading.Event().wait()
"""


def test_a_killed_subscribers_messages_come_back_under_the_production_retry_policy(emulator_env):
    topology = pubsub_setup.Topology.from_env({"PROJECT_ID": f"binpay-setup-{secrets.token_hex(3)}"})
    pubsub_setup.ensure(topology, ack_deadline_seconds=10)
    subscriber = pubsub_v1.SubscriberClient()
    publisher = pubsub_v1.PublisherClient()
    path = subscriber.subscription_path(topology.project_id, topology.subscription)
    policy = subscriber.get_subscription(subscription=path).retry_policy
    assert (policy.minimum_backoff.seconds, policy.maximum_backoff.seconds) == (1, 60)

    topic = publisher.topic_path(topology.project_id, topology.topic)
    sent = {publisher.publish(topic, f"m{index}".encode()).result(timeout=30) for index in range(5)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, path, str(len(sent))],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()

    back: set[str] = set()

    def take(message):
        back.add(message.message_id)
        message.ack()

    streaming = subscriber.subscribe(path, take)
    deadline = time.monotonic() + 180  # a bound on the wait, not an assertion on timing
    while back != sent and time.monotonic() < deadline:
        time.sleep(0.5)
    streaming.cancel()
    subscriber.close()
    assert back == sent
