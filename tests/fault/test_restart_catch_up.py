"""A restarted broker answers clients only once it has caught up with the metadata log.

Three `odradek serve` nodes (broker,controller). Broker 3 is SIGKILLed; while it is down a topic
is created. The active controller is then paused (SIGSTOP), so the restarted broker cannot learn
the new metadata until the two remaining voters have elected a new leader: a window of a second
or more in which its image is what it had on disk, without the topic. The first Metadata request
the restarted broker answers (sent over a socket the moment it listens) must list the topic, and
so must librdkafka clients that know only that broker: the broker holds client requests until
the controller says it has caught up.

Negative control (by hand): with `held_until_caught_up` returning False, the first answer lacks
the topic and this test fails.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from confluent_kafka.admin import AdminClient

from cluster_processes import (
    active_controller,
    create_topic,
    listed_brokers,
    metadata,
    start_cluster,
    wait_until,
)

SESSION_TIMEOUT_MS = 1500
TOPIC = "created-while-down"


def topics_seen_by(bootstrap: str) -> tuple[str, set[str]]:
    """A fresh librdkafka client's Metadata answer: the broker that gave it, its topics."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    cluster = admin.list_topics(timeout=30)
    return str(cluster.orig_broker_name), set(cluster.topics)


def test_a_restarted_broker_lists_topics_created_while_it_was_down(
    unstarted_broker: Callable[..., Any],
) -> None:
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS)
    controller = active_controller(nodes)
    victim = next(i for i in nodes if i != controller)
    survivor = next(i for i in nodes if i not in (controller, victim))
    nodes[victim].kill()
    create_topic(nodes[survivor].port, TOPIC, 3, 2)
    wait_until(lambda: victim not in listed_brokers(nodes[survivor].port), "the victim fenced")
    nodes[controller].proc.send_signal(signal.SIGSTOP)
    try:
        nodes[victim].start()
        first = {t.name for t in metadata(nodes[victim].port).topics}
        answers = [topics_seen_by(nodes[victim].bootstrap) for _ in range(3)]
    finally:
        nodes[controller].proc.send_signal(signal.SIGCONT)
    assert TOPIC in first
    for _, topics in answers:  # librdkafka may ask any broker it has learnt of
        assert TOPIC in topics
