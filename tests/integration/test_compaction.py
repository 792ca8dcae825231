"""Log compaction seen through confluent-kafka: a topic with cleanup.policy=compact, written with
many versions of each key and some tombstones, is cleaned by the broker's cleaner thread until a
consumer reading from the beginning sees little more than the latest record of each key, with
the same latest values as before; a keyless record is refused with INVALID_RECORD; and
`__consumer_offsets` is compacted while a group keeps committing, and a restart still restores
the last committed offsets.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, TopicPartition
from kafka_helpers import (
    TIMEOUT_S,
    consume_all,
    create_topic,
    produce,
    segment_batches,
    unique_topic,
)

CLEANER = {
    "log.cleaner.backoff.ms": 50,
    "log.segment.delete.delay.ms": 0,
    "log.retention.check.interval.ms": 200,
}
COMPACTED = {
    "cleanup.policy": "compact",
    "segment.bytes": "4096",
    "min.cleanable.dirty.ratio": "0.01",
}
WAIT_S = 60.0


def view(records: list) -> dict[bytes | None, bytes | None]:
    latest: dict[bytes | None, bytes | None] = {}
    for record in records:
        latest[record.key] = record.value
    return latest


def test_a_compacted_topic_is_cleaned_to_the_latest_value_of_each_key(broker_factory) -> None:
    broker = broker_factory(overrides=CLEANER)
    topic = unique_topic("compacted")
    create_topic(broker.bootstrap, topic, 1, **COMPACTED)
    writes = [
        {"key": b"key-%d" % (i % 20), "value": b"version %d of key %d" % (i // 20, i % 20)}
        for i in range(2000)
    ]
    writes += [{"key": b"key-%d" % k, "value": None} for k in range(5)]  # tombstones
    writes += [{"key": b"filler", "value": b"x" * 100} for _ in range(60)]
    small_batches = {"batch.size": 1024}
    produce(broker.bootstrap, topic, [{**w, "partition": 0} for w in writes], **small_batches).ok()
    expected = view(consume_all(broker.bootstrap, topic))
    assert len(expected) == 21 and expected[b"key-0"] is None
    deadline = time.monotonic() + WAIT_S
    while True:
        seen = consume_all(broker.bootstrap, topic)
        if len(seen) < 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(seen) < 200, f"still {len(seen)} of {len(writes)} records after {WAIT_S} s"
    assert view(seen) == expected
    offsets = [r.offset for r in seen]
    assert offsets == sorted(set(offsets))


def test_a_compacted_topic_refuses_a_record_without_a_key(broker_factory) -> None:
    broker = broker_factory(overrides=CLEANER)
    topic = unique_topic("compacted-keyless")
    create_topic(broker.bootstrap, topic, 1, **COMPACTED)
    result = produce(broker.bootstrap, topic, [{"value": b"no key", "partition": 0}])
    assert [e.code() for e in result.errors] == [KafkaError.INVALID_RECORD]
    produce(broker.bootstrap, topic, [{"key": b"k", "value": b"v", "partition": 0}]).ok()


def offsets_records(data_dir, partitions: int) -> int:
    return sum(
        h.last_offset_delta + 1
        for p in range(partitions)
        for h in segment_batches(data_dir, "__consumer_offsets", p)
    )


def test_consumer_offsets_are_compacted_and_a_restart_restores_the_last_commits(
    broker_factory,
) -> None:
    broker = broker_factory(
        overrides={
            **CLEANER,
            "offsets.topic.num.partitions": 1,
            "offsets.topic.segment.bytes": 8192,
            "log.cleaner.min.cleanable.ratio": 0.01,
        }
    )
    topic = unique_topic("offsets-compaction")
    create_topic(broker.bootstrap, topic, 3)
    group = unique_topic("compacting-group")
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    last: list[TopicPartition] = []
    try:
        for round_number in range(600):
            last = [TopicPartition(topic, p, round_number * 10 + p) for p in range(3)]
            consumer.commit(offsets=last, asynchronous=False)
        commits = 600
        deadline = time.monotonic() + WAIT_S
        while offsets_records(broker.data_dir, 1) >= commits and time.monotonic() < deadline:
            consumer.commit(offsets=last, asynchronous=False)
            time.sleep(0.5)
        assert offsets_records(broker.data_dir, 1) < commits
    finally:
        consumer.close()
    broker.restart()
    reader = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        committed = reader.committed([TopicPartition(topic, p) for p in range(3)], TIMEOUT_S)
    finally:
        reader.close()
    assert [(tp.partition, tp.offset) for tp in committed] == [
        (tp.partition, tp.offset) for tp in last
    ]
