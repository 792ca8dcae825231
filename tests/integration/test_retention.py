"""Records leave the log: DeleteRecords through confluent-kafka's AdminClient and kafka-python's
admin client moves the log start offset, and a consumer below it resets by its
auto.offset.reset (OFFSET_OUT_OF_RANGE); retention by
time deletes expired segments in the background and the log start offset follows; bad offsets
and compacted topics get Kafka's errors.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from kafka_helpers import (
    TIMEOUT_S,
    admin,
    consume_all,
    create_topic,
    produce,
    unique_topic,
    watermarks,
)

from odradek.common.errors import ErrorCode

BROKER_OVERRIDES = {"log.retention.check.interval.ms": 200}


def delete_records(bootstrap: str, topic: str, partition: int, offset: int) -> int:
    client = admin(bootstrap)  # must outlive its future
    (future,) = client.delete_records([TopicPartition(topic, partition, offset)]).values()
    low_watermark: int = future.result(TIMEOUT_S).low_watermark
    return low_watermark


def test_delete_records_moves_the_log_start_and_consumers_start_there(broker) -> None:
    topic = unique_topic("delete-records")
    create_topic(broker.bootstrap, topic, 2)
    produce(
        broker.bootstrap,
        topic,
        [{"value": b"v%d" % i, "partition": i % 2} for i in range(40)],
    ).ok()
    assert delete_records(broker.bootstrap, topic, 0, 15) == 15
    assert watermarks(broker.bootstrap, topic, 0) == (15, 20)
    assert delete_records(broker.bootstrap, topic, 0, 10) == 15  # below the start: no change
    assert delete_records(broker.bootstrap, topic, 1, -1) == 20  # -1: up to the high watermark
    # A consumer starting from the beginning starts at the new log start offset.
    records = consume_all(broker.bootstrap, topic, partitions=(0, 1))
    assert [(r.partition, r.offset) for r in records] == [(0, o) for o in range(15, 20)]


def test_delete_records_refuses_bad_offsets_and_compacted_topics(broker) -> None:
    topic = unique_topic("delete-records-bad")
    compacted = unique_topic("delete-records-compacted")
    create_topic(broker.bootstrap, topic, 1)
    create_topic(broker.bootstrap, compacted, 1, **{"cleanup.policy": "compact"})
    produce(broker.bootstrap, topic, [{"value": b"v", "partition": 0}] * 3).ok()
    produce(broker.bootstrap, compacted, [{"key": b"k", "value": b"v", "partition": 0}]).ok()
    for name, offset, error in (
        (topic, 4, ErrorCode.OFFSET_OUT_OF_RANGE),
        (compacted, 1, ErrorCode.POLICY_VIOLATION),
    ):
        with pytest.raises(KafkaException) as raised:
            delete_records(broker.bootstrap, name, 0, offset)
        assert raised.value.args[0].code() == error
    assert watermarks(broker.bootstrap, topic, 0) == (0, 3)


def test_kafka_python_deletes_records_too(broker) -> None:
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KafkaTopicPartition

    topic = unique_topic("delete-records-kp")
    create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, [{"value": b"v", "partition": 0}] * 5).ok()
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        result = client.delete_records({KafkaTopicPartition(topic, 0): 3})
    finally:
        client.close()
    assert [info["low_watermark"] for info in result.values()] == [3], result
    assert watermarks(broker.bootstrap, topic, 0) == (3, 5)


def test_retention_by_time_deletes_old_segments_in_the_background(broker) -> None:
    topic = unique_topic("retention-time")
    create_topic(broker.bootstrap, topic, 1, **{"retention.ms": "3600000", "segment.bytes": "2000"})
    day_ago = int(time.time() * 1000) - 24 * 3_600_000
    old = [{"value": b"x" * 200, "partition": 0, "timestamp": day_ago} for _ in range(20)]
    produce(broker.bootstrap, topic, old, **{"batch.num.messages": 1}).ok()  # one per batch
    deadline = time.monotonic() + TIMEOUT_S
    while watermarks(broker.bootstrap, topic, 0) != (20, 20):
        assert time.monotonic() < deadline, watermarks(broker.bootstrap, topic, 0)
        time.sleep(0.1)
    # New records (timestamped now) stay, and the log goes on from where it was.
    produce(broker.bootstrap, topic, [{"value": b"new", "partition": 0}] * 3).ok()
    time.sleep(0.5)  # two retention checks
    assert watermarks(broker.bootstrap, topic, 0) == (20, 23)
    assert [r.value for r in consume_all(broker.bootstrap, topic)] == [b"new"] * 3


@pytest.mark.parametrize(("reset", "first"), [("earliest", 15), ("latest", None)])
def test_a_consumer_below_the_log_start_resets_by_its_policy(
    broker, reset: str, first: int | None
) -> None:
    from confluent_kafka import Consumer

    topic = unique_topic(f"below-start-{reset}")
    create_topic(broker.bootstrap, topic, 1)
    produce(
        broker.bootstrap, topic, [{"value": b"v%d" % i, "partition": 0} for i in range(20)]
    ).ok()
    delete_records(broker.bootstrap, topic, 0, 15)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": unique_topic("below-start-group"),
            "auto.offset.reset": reset,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 2)])  # below the log start: out of range
        offsets: list[int] = []
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                break
            offsets.append(msg.offset())
    finally:
        consumer.close()
    assert offsets == ([] if first is None else list(range(first, 20)))
