"""The subscriptions devtools/pubsub_setup.py makes, on the real emulator: production's retry policy
and dead-letter policy on every subscription that has one in production.

Whether the emulator then redelivers a SIGKILLed subscriber's messages promptly is its own matter:
measured here it is erratic (README, "Emulator behaviours we measured"), so no test relies on it."""

from __future__ import annotations

import secrets

import pubsub_setup
from google.cloud import pubsub_v1


def test_every_saga_subscription_gets_the_production_retry_and_dead_letter_policies(emulator_env):
    topology = pubsub_setup.Topology.from_env({"PROJECT_ID": f"binpay-setup-{secrets.token_hex(3)}"})
    pubsub_setup.ensure(topology, ack_deadline_seconds=10)
    subscriber = pubsub_v1.SubscriberClient()
    dead_letter_topic = pubsub_v1.PublisherClient.topic_path(topology.project_id, topology.dead_letter_topic)
    try:
        for name in (topology.subscription, topology.rollback_subscription, topology.completion_subscription):
            subscription = subscriber.get_subscription(
                subscription=subscriber.subscription_path(topology.project_id, name)
            )
            policy = subscription.retry_policy
            assert (policy.minimum_backoff.seconds, policy.maximum_backoff.seconds) == (1, 60), name
            assert subscription.dead_letter_policy.dead_letter_topic == dead_letter_topic, name
            assert subscription.dead_letter_policy.max_delivery_attempts == 5, name
            assert subscription.ack_deadline_seconds == 10, name
    finally:
        subscriber.close()
