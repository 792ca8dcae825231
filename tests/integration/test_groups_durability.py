"""Committed offsets survive a broker restart, after SIGKILL as after a clean stop: a group
consumer commits synchronously (one partition with commit metadata), a standalone consumer
commits without group management, a third group is deleted and a fourth loses one partition's
offset through OffsetDelete; after the restart every acknowledged commit is there, with its
metadata, deletions stay deleted, and a new group member resumes exactly after the last commit.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from kafka import KafkaAdminClient
from kafka import TopicPartition as KpTopicPartition
from kafka_helpers import TIMEOUT_S, admin, create_topic, produce, unique_topic

PARTITIONS = 4


def group_consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )


def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], tuple[int, str]]:
    client = admin(bootstrap)  # must outlive its future
    future = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    result = future.result(TIMEOUT_S)
    return {
        (tp.topic, tp.partition): (tp.offset, tp.metadata or "")
        for tp in result.topic_partitions
        if tp.offset >= 0
    }


def consume_committing(bootstrap: str, group: str, topic: str, count: int) -> list[bytes]:
    """A group member processes `count` records, committing each synchronously, and leaves."""
    c = group_consumer(bootstrap, group)
    c.subscribe([topic])
    keys: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(keys) < count:
            assert time.monotonic() < deadline, f"read {len(keys)} of {count}"
            msg = c.poll(0.1)
            if msg is None or msg.error() is not None:
                continue
            keys.append(msg.key())
            c.commit(message=msg, asynchronous=False)
    finally:
        c.close()
    return keys


@pytest.mark.parametrize("restart", ["kill", "stop"])
def test_committed_offsets_survive_a_restart(fresh_broker, restart: str) -> None:
    bootstrap = fresh_broker.bootstrap
    topic = unique_topic(f"durable-{restart}")
    create_topic(bootstrap, topic, PARTITIONS)
    keys = [f"durable-{i}".encode() for i in range(80)]
    produce(
        bootstrap,
        topic,
        [{"key": k, "value": b"v", "partition": i % PARTITIONS} for i, k in enumerate(keys)],
    ).ok()

    # A consumer group processes part of the topic, committing record by record, then commits
    # one partition once more with metadata.
    group = unique_topic("durable-group")
    processed = consume_committing(bootstrap, group, topic, 37)
    before = committed_offsets(bootstrap, group)
    assert sum(offset for offset, _ in before.values()) == 37
    (_, partition), (offset, _) = min(before.items())
    c = group_consumer(bootstrap, group)
    try:
        tp = TopicPartition(topic, partition, offset, metadata="checkpoint")
        (done,) = c.commit(offsets=[tp], asynchronous=False)
        assert done.error is None
    finally:
        c.close()
    before[(topic, partition)] = (offset, "checkpoint")
    assert committed_offsets(bootstrap, group) == before

    # A standalone consumer (no group membership: generation -1) commits explicit offsets.
    standalone = unique_topic("durable-standalone")
    c = group_consumer(bootstrap, standalone)
    try:
        wanted = [TopicPartition(topic, p, 5 + p) for p in range(PARTITIONS)]
        c.assign(wanted)
        assert all(tp.error is None for tp in c.commit(offsets=wanted, asynchronous=False))
    finally:
        c.close()
    standalone_before = {(topic, p): (5 + p, "") for p in range(PARTITIONS)}
    assert committed_offsets(bootstrap, standalone) == standalone_before

    # A deleted group, and a group that lost one partition's offset through OffsetDelete.
    deleted = unique_topic("durable-deleted")
    trimmed = unique_topic("durable-trimmed")
    for g in (deleted, trimmed):
        c = group_consumer(bootstrap, g)
        try:
            offsets = [TopicPartition(topic, p, 10) for p in range(PARTITIONS)]
            assert all(tp.error is None for tp in c.commit(offsets=offsets, asynchronous=False))
        finally:
            c.close()
    client = admin(bootstrap)
    client.delete_consumer_groups([deleted])[deleted].result(TIMEOUT_S)
    # (confluent-kafka has no OffsetDelete; kafka-python's admin client sends it.)
    kp_admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        errors = kp_admin.delete_group_offsets(trimmed, [KpTopicPartition(topic, 1)])
        assert [e.errno for e in errors.values()] == [0], errors
    finally:
        kp_admin.close()
    trimmed_before = {(topic, p): (10, "") for p in range(PARTITIONS) if p != 1}
    assert committed_offsets(bootstrap, trimmed) == trimmed_before

    if restart == "kill":
        fresh_broker.kill()
    else:
        assert fresh_broker.stop() == 0
    fresh_broker.start()

    assert committed_offsets(bootstrap, group) == before
    assert committed_offsets(bootstrap, standalone) == standalone_before
    assert committed_offsets(bootstrap, trimmed) == trimmed_before
    # The deleted group stays deleted: it has no offsets, and describing it finds nothing.
    assert committed_offsets(bootstrap, deleted) == {}
    client = admin(bootstrap)
    listed = client.list_consumer_groups(request_timeout=10).result(TIMEOUT_S)
    names = {g.group_id for g in listed.valid}
    assert {group, standalone, trimmed} <= names
    assert deleted not in names
    with pytest.raises(KafkaException, match="GROUP_ID_NOT_FOUND"):
        client.delete_consumer_groups([deleted])[deleted].result(TIMEOUT_S)

    # A new member of the group picks up exactly after the last commit.
    c = group_consumer(bootstrap, group)
    try:
        positions = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], 10)
        no_commit = -1001  # librdkafka's OFFSET_INVALID
        assert {tp.partition: tp.offset for tp in positions} == {
            p: before.get((topic, p), (no_commit, ""))[0] for p in range(PARTITIONS)
        }
    finally:
        c.close()
    rest = consume_committing(bootstrap, group, topic, len(keys) - len(processed))
    assert not set(rest) & set(processed)
    assert sorted(rest + processed) == sorted(keys)


def test_a_live_group_member_rides_through_a_broker_kill(fresh_broker) -> None:
    """The coordinator reloads the group from `__consumer_offsets`: a member that keeps polling
    across the restart carries on, nothing is delivered twice, every commit lands."""
    bootstrap = fresh_broker.bootstrap
    topic = unique_topic("durable-live")
    group = unique_topic("durable-live-group")
    create_topic(bootstrap, topic, PARTITIONS)
    before = [f"before-{i}".encode() for i in range(20)]
    after = [f"after-{i}".encode() for i in range(20)]

    def records(keys: list[bytes]) -> list[dict[str, object]]:
        return [{"key": k, "value": b"v", "partition": i % PARTITIONS} for i, k in enumerate(keys)]

    c = group_consumer(bootstrap, group)
    c.subscribe([topic])
    seen: list[bytes] = []
    failed_commits: list[str] = []

    def poll_until(count: int) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while len(seen) < count:
            assert time.monotonic() < deadline, f"read {len(seen)} of {count}"
            msg = c.poll(0.1)
            if msg is None or msg.error() is not None:
                continue
            seen.append(msg.key())
            try:
                c.commit(message=msg, asynchronous=False)
            except KafkaException as exc:  # the coordinator may be loading: commit again later
                failed_commits.append(str(exc))

    try:
        produce(bootstrap, topic, records(before)).ok()
        poll_until(len(before))
        fresh_broker.kill()
        fresh_broker.start()
        produce(bootstrap, topic, records(after)).ok()
        poll_until(len(before) + len(after))
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # a redelivery would show up now
            msg = c.poll(0.1)
            if msg is not None and msg.error() is None:
                seen.append(msg.key())
        if failed_commits:
            c.commit(asynchronous=False)  # the positions of everything consumed
    finally:
        c.close()
    assert sorted(seen) == sorted(before + after), "a record was delivered twice or never"
    assert committed_offsets(bootstrap, group) == {(topic, p): (10, "") for p in range(PARTITIONS)}
