"""The group coordinator moves with the leadership of its `__consumer_offsets` partition.

Three `odradek serve` processes; `__consumer_offsets` is replicated three times like any topic.
SIGKILL the broker that coordinates a consumer group: the leadership of the group's partition
moves, the new leader loads it, and a consumer of the group resumes at the offsets committed
before the kill (not at the start).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from cluster_processes import (
    consume_as_group,
    create_topic,
    live_port,
    raw,
    start_cluster,
    wait_full_isr,
    wait_until,
)

OVERRIDES: dict[str, object] = {
    "default.replication.factor": 3,
    "min.insync.replicas": 2,
    "offsets.topic.replication.factor": 3,
}
SESSION_TIMEOUT_MS = 1500


def coordinator_of(nodes: dict[int, Any], key: str, key_type: int) -> int:
    """The coordinator a running broker names (-1 while there is none)."""
    from kio.schema.find_coordinator.v3.request import FindCoordinatorRequest

    try:
        answer = raw(live_port(nodes), FindCoordinatorRequest(key=key, key_type=key_type))  # type: ignore[arg-type]
    except OSError:
        return -1
    return int(answer.node_id) if int(answer.error_code) == 0 else -1


def test_a_group_resumes_at_its_commits_after_its_coordinator_dies(
    unstarted_broker: Callable[..., Any],
) -> None:
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS, OVERRIDES)
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    create_topic(live_port(nodes), "events", 1, 3)
    wait_full_isr(nodes, "events", 3)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(100):
        producer.produce("events", value=b"first-%d" % i)
    assert producer.flush(30) == 0
    group = f"group-{uuid.uuid4().hex[:6]}"
    assert len(consume_as_group(bootstrap, group, "events", 100)) == 100
    wait_full_isr(nodes, "__consumer_offsets", 3)

    coordinator = coordinator_of(nodes, group, 0)
    assert coordinator in nodes
    nodes[coordinator].kill()
    survivors = {i: n for i, n in nodes.items() if i != coordinator}
    wait_until(lambda: coordinator_of(survivors, group, 0) in survivors, "a new coordinator")
    for i in range(20):
        producer.produce("events", value=b"second-%d" % i)
    assert producer.flush(30) == 0
    # resumed at the committed offset: only the new records
    assert consume_as_group(bootstrap, group, "events", 20) == [b"second-%d" % i for i in range(20)]
