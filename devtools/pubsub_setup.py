"""Create BinPay's topics and subscriptions (idempotent), on the emulator or a real project.

    python devtools/pubsub_setup.py                       # pull subscriptions
    python devtools/pubsub_setup.py \
        --push-processor http://127.0.0.1:5000/pubsub/push \
        --push-initiator http://127.0.0.1:8000/pubsub/push   # push subscriptions

Names come from the same env vars the services read (docs/contracts.md). Running it again
changes nothing but the push endpoints, which it sets to what it was given (none = pull).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2, field_mask_pb2


@dataclass(frozen=True)
class Topology:
    project_id: str
    topic: str
    rollback_topic: str
    completion_topic: str
    dead_letter_topic: str
    subscription: str
    rollback_subscription: str
    completion_subscription: str
    dead_letter_subscription: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Topology:
        env = os.environ if env is None else env
        return cls(
            project_id=env.get("PROJECT_ID", "binpay-local"),
            topic=env.get("PUBSUB_TOPIC", "binpay-initiation"),
            rollback_topic=env.get("PUBSUB_ROLLBACK_TOPIC", "rollback"),
            completion_topic=env.get("PUBSUB_COMPLETION_TOPIC", "binpay-completion"),
            dead_letter_topic=env.get("PUBSUB_DEAD_LETTER_TOPIC", "binpay-dead-letter"),
            subscription=env.get("PUBSUB_SUBSCRIPTION", "initiator-sub"),
            rollback_subscription=env.get("PUBSUB_ROLLBACK_SUBSCRIPTION", "processor-sub"),
            completion_subscription=env.get("PUBSUB_COMPLETION_SUBSCRIPTION", "completion-sub"),
            dead_letter_subscription=env.get("PUBSUB_DEAD_LETTER_SUBSCRIPTION", "dead-letter-sub"),
        )


def ensure(
    topology: Topology,
    *,
    push_processor: str | None = None,
    push_initiator: str | None = None,
    max_delivery_attempts: int = 5,
    ack_deadline_seconds: int = 60,
) -> None:
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    project = topology.project_id
    for topic in (topology.topic, topology.rollback_topic, topology.completion_topic, topology.dead_letter_topic):
        try:
            publisher.create_topic(name=publisher.topic_path(project, topic))
        except exceptions.AlreadyExists:
            pass

    dead_letter_topic_path = publisher.topic_path(project, topology.dead_letter_topic)
    # (subscription, topic, push endpoint, dead-lettered?)
    plan = [
        (topology.subscription, topology.topic, push_processor, True),
        (topology.rollback_subscription, topology.rollback_topic, push_initiator, True),
        (topology.completion_subscription, topology.completion_topic, push_initiator, True),
        (topology.dead_letter_subscription, topology.dead_letter_topic, None, False),
    ]
    for name, topic, endpoint, dead_lettered in plan:
        path = subscriber.subscription_path(project, name)
        push_config = pubsub_v1.types.PushConfig(push_endpoint=endpoint) if endpoint else pubsub_v1.types.PushConfig()
        request = {
            "name": path,
            "topic": publisher.topic_path(project, topic),
            "ack_deadline_seconds": ack_deadline_seconds,
            "push_config": push_config,
            # The same retry policy on the emulator as in production: the fault suite must see the
            # redelivery timing production has (measured on the emulator, see the README).
            "retry_policy": {
                "minimum_backoff": duration_pb2.Duration(seconds=1),
                "maximum_backoff": duration_pb2.Duration(seconds=60),
            },
        }
        if dead_lettered:
            request["dead_letter_policy"] = {
                "dead_letter_topic": dead_letter_topic_path,
                "max_delivery_attempts": max_delivery_attempts,
            }
        try:
            subscriber.create_subscription(request=request)
        except exceptions.AlreadyExists:
            subscriber.modify_push_config(subscription=path, push_config=push_config)
            update = {key: value for key, value in request.items() if key not in ("name", "topic", "push_config")}
            subscriber.update_subscription(
                subscription={"name": path, **update},
                update_mask=field_mask_pb2.FieldMask(paths=list(update)),
            )
    subscriber.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--push-processor", help="push endpoint for the processor's subscription")
    parser.add_argument("--push-initiator", help="push endpoint for the initiator's outcome subscriptions")
    parser.add_argument("--max-delivery-attempts", type=int, default=5)
    parser.add_argument("--ack-deadline", type=int, default=60)
    args = parser.parse_args(argv)
    topology = Topology.from_env()
    ensure(
        topology,
        push_processor=args.push_processor,
        push_initiator=args.push_initiator,
        max_delivery_attempts=args.max_delivery_attempts,
        ack_deadline_seconds=args.ack_deadline,
    )
    print(
        f"pubsub ready in {topology.project_id}: topics {topology.topic}, {topology.rollback_topic}, "
        f"{topology.completion_topic}, {topology.dead_letter_topic}; subscriptions {topology.subscription}, "
        f"{topology.rollback_subscription}, {topology.completion_subscription}, {topology.dead_letter_subscription}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
