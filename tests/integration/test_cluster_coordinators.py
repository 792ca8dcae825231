"""Group coordinators spread over a cluster of three `odradek serve` processes.

The coordinator of a group is the leader of the group's `__consumer_offsets` partition: every
broker names the same one in FindCoordinator, the groups of one cluster land on different
brokers, a broker that does not coordinate a group answers NOT_COORDINATOR for it, and
confluent-kafka consumer groups whose coordinators sit on different brokers consume, commit and
resume where they committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from cluster_processes import (
    SESSION_TIMEOUT_MS,
    VOTERS,
    consume_as_group,
    create_topic,
    partitions_of,
    raw,
    start_cluster,
    wait_until,
)
from odradek.coordinator.group.records import group_partition

OFFSETS_TOPIC = "__consumer_offsets"
RECORDS = 300


def find_coordinator(port: int, group_id: str) -> tuple[int, int]:
    """(error code, coordinator node id) from FindCoordinator v3."""
    from kio.schema.find_coordinator.v3.request import FindCoordinatorRequest

    answer = raw(port, FindCoordinatorRequest(key=group_id, key_type=0))  # type: ignore[arg-type]
    return int(answer.error_code), int(answer.node_id)


def offset_fetch_error(port: int, group_id: str) -> int:
    from kio.schema.offset_fetch.v8 import request as kio

    answer = raw(
        port,
        kio.OffsetFetchRequest(
            groups=(kio.OffsetFetchRequestGroup(group_id=group_id, topics=None),),  # type: ignore[arg-type]
            require_stable=False,
        ),
    )
    return int(answer.groups[0].error_code)


def groups_led_by(broker: int, leaders: dict[int, int], count: int) -> list[str]:
    """`count` new group ids whose `__consumer_offsets` partition `broker` leads."""
    found: list[str] = []
    while len(found) < count:
        group = f"group-{uuid.uuid4().hex[:8]}"
        if leaders[group_partition(group, len(leaders))] == broker:
            found.append(group)
    return found


def test_groups_are_coordinated_by_the_leaders_of_their_partitions(
    unstarted_broker: Callable[..., Any],
) -> None:
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS)
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    port = nodes[VOTERS[0]].port
    # the first lookup creates __consumer_offsets and waits for its leaders
    wait_until(lambda: find_coordinator(port, "first")[0] == 0, "__consumer_offsets")
    offsets = partitions_of(port, OFFSETS_TOPIC)
    assert len(offsets) > 1
    leaders = {index: int(p.leader_id) for index, p in offsets.items()}
    assert set(leaders.values()) == set(VOTERS)  # the leaderships are spread
    # two groups per broker, picked by where Kafka's hash places them
    groups = [g for broker in VOTERS for g in groups_led_by(broker, leaders, count=2)]
    coordinators: dict[str, int] = {}
    for group in groups:
        answers = {find_coordinator(n.port, group) for n in nodes.values()}
        assert len(answers) == 1, answers
        ((error, coordinator),) = answers
        assert error == 0
        assert coordinator == leaders[group_partition(group, len(offsets))]
        coordinators[group] = coordinator
    assert set(coordinators.values()) == set(VOTERS)

    # a broker that does not coordinate a group says so
    for group, coordinator in coordinators.items():
        for node_id, node in nodes.items():
            error = offset_fetch_error(node.port, group)
            assert error == (0 if node_id == coordinator else 16), (group, node_id, error)

    # real consumer groups, coordinated by two different brokers
    create_topic(port, "events", partitions=3, replication=3)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(RECORDS):
        producer.produce("events", key=str(i).encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0
    first, second = (
        next(g for g in groups if coordinators[g] == VOTERS[0]),
        next(g for g in groups if coordinators[g] == VOTERS[1]),
    )
    for group in (first, second):
        values = consume_as_group(bootstrap, group, "events", RECORDS)
        assert sorted(values) == sorted(f"v{i}".encode() for i in range(RECORDS))
    # resumed at the committed offsets: only what is new
    for i in range(RECORDS, RECORDS + 10):
        producer.produce("events", key=str(i).encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0
    for group in (first, second):
        values = consume_as_group(bootstrap, group, "events", 10)
        assert sorted(values) == sorted(f"v{i}".encode() for i in range(RECORDS, RECORDS + 10))
