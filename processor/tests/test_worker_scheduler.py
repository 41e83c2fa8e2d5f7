"""The pull worker runs every message flow control lets in at once: slow gateway calls hold their
callback threads, and the client's default scheduler has only 10 whatever the flow control."""

from __future__ import annotations

import threading
import time

from binpay_processor.config import Settings
from binpay_processor.worker import subscribe

IN_FLIGHT = 12  # more than the client's default 10 callback threads


def test_every_message_flow_control_lets_in_gets_its_own_callback_thread(clients, topics):
    # Each callback holds its thread until all IN_FLIGHT are held at once, as slow charges would.
    all_held = threading.Barrier(IN_FLIGHT, timeout=60)
    held_together, broken = [], []

    def slow_callback(message) -> None:
        try:
            all_held.wait()
            held_together.append(message.message_id)
        except threading.BrokenBarrierError:
            broken.append(message.message_id)
        message.ack()

    publisher = clients.publisher
    topic = publisher.topic_path(topics.project_id, topics.initiation)
    for index in range(IN_FLIGHT):
        publisher.publish(topic, b"{}", n=str(index)).result(timeout=30)

    streaming_pull = subscribe(
        clients.subscriber,
        topics.subscription_path(topics.initiation),
        slow_callback,
        IN_FLIGHT,
        Settings.from_env(environ={}).pubsub_max_lease_extension_seconds,
    )
    try:
        # Every callback returns within the barrier's timeout, held together or broken.
        deadline = time.monotonic() + 120
        while len(held_together) + len(broken) < IN_FLIGHT and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        streaming_pull.cancel()
        streaming_pull.result(timeout=60)

    assert broken == []
    assert len(held_together) == IN_FLIGHT


def test_what_a_killed_worker_held_comes_back_after_the_lease_extension_bound(clients, topics):
    """The streaming-pull client asks for a 60 s stream ack deadline by default, and later for the p99
    of its ack latency (up to 600 s; a worker that waits out leases has a long one): that is how long
    the messages of a worker killed mid-saga stay invisible. The worker bounds it."""
    settings = Settings.from_env(environ={"PUBSUB_MAX_LEASE_EXTENSION_SECONDS": "10"})
    streaming_pull = subscribe(
        clients.subscriber,
        topics.subscription_path(topics.initiation),
        lambda message: message.ack(),
        settings.pubsub_flow_control_max_messages,
        settings.pubsub_max_lease_extension_seconds,
    )
    try:
        manager = streaming_pull._StreamingPullFuture__manager  # the client's lease manager: no public accessor
        assert manager.flow_control.max_duration_per_lease_extension == 10
        assert manager.ack_deadline == 10
    finally:
        streaming_pull.cancel()
        streaming_pull.result(timeout=60)
