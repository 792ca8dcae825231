"""kafka-python against Odradek: create a topic, produce keyed records with headers in every
codec, read them back with assign + seek, and look offsets up by time."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka_helpers import CODEC_IDS, java_partition, segment_batches, unique_topic

CODECS = (None, "gzip", "snappy", "lz4", "zstd")
PARTITIONS = 3


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        client.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
            wait_for_metadata=True,
        )
        with pytest.raises(TopicAlreadyExistsError):
            client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        client.close()


def read_all(bootstrap: str, topic: str, partitions: int, expected: int) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        assert len(records) == expected, f"read {len(records)} of {expected}"
        return records
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_round_trip(broker, codec) -> None:
    topic = unique_topic(f"kafka-python-{codec or 'none'}")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    base_ts = int(time.time() * 1000) - 10_000
    # Idempotence off: this test is about codecs; the default (idempotent) producer has its own.
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        compression_type=codec,
        acks="all",
        enable_idempotence=False,
    )
    sent = []
    try:
        for i in range(40):
            key = f"user-{i % 9}".encode()
            value = f"event {i} from kafka-python ".encode() * 10
            headers = [("seq", str(i).encode()), ("client", b"kafka-python")]
            future = producer.send(
                topic, key=key, value=value, headers=headers, timestamp_ms=base_ts + i
            )
            sent.append((key, value, headers, base_ts + i, future))
        producer.flush(30)
        metas = [f.get(timeout=30) for *_, f in sent]
    finally:
        producer.close(10)

    next_offset = dict.fromkeys(range(PARTITIONS), 0)
    for (key, *_), meta in zip(sent, metas, strict=True):
        assert meta.partition == java_partition(key, PARTITIONS)
        assert meta.offset == next_offset[meta.partition]
        next_offset[meta.partition] += 1

    records = read_all(broker.bootstrap, topic, PARTITIONS, len(sent))
    by_position = {(r.partition, r.offset): r for r in records}
    for (key, value, headers, ts, _), meta in zip(sent, metas, strict=True):
        got = by_position[(meta.partition, meta.offset)]
        assert (got.key, got.value, list(got.headers)) == (key, value, headers)
        assert (got.timestamp, got.timestamp_type) == (ts, 0)  # 0: CreateTime
    for p in range(PARTITIONS):
        assert [r.offset for r in records if r.partition == p] == list(range(next_offset[p]))

    stored = {
        b.codec_id for p in range(PARTITIONS) for b in segment_batches(broker.data_dir, topic, p)
    }
    assert stored == {CODEC_IDS[codec or "none"]}


def test_default_producer_is_idempotent_and_works(broker, topic) -> None:
    """kafka-python 3 (like the Java client) defaults to acks=all with idempotence, which needs
    InitProducerId; a user who changes nothing must be able to produce."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        futures = [producer.send(topic, key=b"k", value=f"v{i}".encode()) for i in range(10)]
        producer.flush(30)
        assert [f.get(30).offset for f in futures] == list(range(10))
    finally:
        producer.close(10)
    assert [r.value for r in read_all(broker.bootstrap, topic, 1, 10)] == [
        f"v{i}".encode() for i in range(10)
    ]


def test_offsets_by_time_and_end_offsets(broker, topic) -> None:
    create_topic(broker.bootstrap, topic, 1)
    base_ts = 1_650_000_000_000
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=1)
    try:
        futures = [
            producer.send(
                topic, value=f"t{i}".encode(), partition=0, timestamp_ms=base_ts + 100 * i
            )
            for i in range(20)
        ]
        producer.flush(30)
        assert [f.get(30).offset for f in futures] == list(range(20))
    finally:
        producer.close(10)

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        tp = TopicPartition(topic, 0)
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: 20}
        found = consumer.offsets_for_times({tp: base_ts + 550})[tp]
        assert (found.offset, found.timestamp) == (6, base_ts + 600)
        assert consumer.offsets_for_times({tp: base_ts + 10_000})[tp] is None
    finally:
        consumer.close()
