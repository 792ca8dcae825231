"""Inspection helpers against a real broker: records, partitioning, order, groups, waiting."""

from __future__ import annotations

import time

import pytest

from odradek.testing import (
    Record,
    assert_per_key_order,
    committed_offsets,
    consumer_lag,
    partition_for,
    read_records,
    wait_until,
)


def test_read_records_decodes_every_field(
    kafka_topic, kafka_producer_factory, bootstrap_servers
) -> None:
    topic = kafka_topic(partitions=2)
    producer = kafka_producer_factory()
    producer.produce(
        topic,
        key=b"k",
        value=b"v",
        partition=1,
        headers=[("trace", b"abc"), ("empty", None)],
        timestamp=1_700_000_000_123,
    )
    producer.produce(topic, value=None, partition=1)  # a tombstone without a key
    assert producer.flush(10) == 0

    records = read_records(bootstrap_servers, topic)

    assert records == [
        Record(topic, 1, 0, b"k", b"v", (("trace", b"abc"), ("empty", None)), 1_700_000_000_123, 1),
        Record(topic, 1, 1, None, None, (), records[1].timestamp_ms, 1),
    ]
    assert read_records(bootstrap_servers, topic, partitions=[0]) == []


def test_partition_for_agrees_with_librdkafka_murmur2_partitioner(
    kafka_topic, kafka_producer_factory, bootstrap_servers
) -> None:
    topic = kafka_topic(partitions=7)
    producer = kafka_producer_factory(partitioner="murmur2_random")
    keys = [f"order-{i}".encode() for i in range(60)]
    for key in keys:
        producer.produce(topic, key=key, value=key)
    assert producer.flush(10) == 0

    placed = {r.key: r.partition for r in read_records(bootstrap_servers, topic)}

    assert placed == {key: partition_for(key, 7) for key in keys}
    # librdkafka's own default (consistent_random, CRC32) is another rule: the helper would be
    # wrong for it, which this checks the test can see.
    assert any(placed[key] != crc32_partition(key, 7) for key in keys)


def crc32_partition(key: bytes, partitions: int) -> int:
    import zlib

    return zlib.crc32(key) % partitions


def test_per_key_order() -> None:
    def record(partition: int, offset: int, key: bytes, value: bytes) -> Record:
        return Record("t", partition, offset, key, value, (), 0, 1)

    log = [record(0, 0, b"a", b"1"), record(1, 0, b"b", b"1"), record(0, 1, b"a", b"2")]
    assert_per_key_order(log, [("a", "1"), ("b", "1"), ("a", "2")])

    with pytest.raises(AssertionError, match="key b'a'"):
        assert_per_key_order(log, [("a", "2"), ("a", "1")])
    with pytest.raises(AssertionError, match="partitions"):
        assert_per_key_order([*log, record(1, 1, b"a", b"3")], [("a", "1"), ("a", "2")])
    with pytest.raises(AssertionError, match="holds"):  # a duplicate breaks it too
        assert_per_key_order([*log, record(0, 2, b"a", b"2")], [("a", "1"), ("a", "2")])


def test_committed_offsets_and_lag(
    kafka_topic, kafka_producer_factory, kafka_consumer_factory, bootstrap_servers
) -> None:
    topic = kafka_topic(partitions=2)
    producer = kafka_producer_factory()
    for i in range(10):
        producer.produce(topic, value=b"%d" % i, partition=0)
    producer.produce(topic, value=b"other", partition=1)
    assert producer.flush(10) == 0
    consumer = kafka_consumer_factory(group="billing", topics=[topic])
    consumed = []
    while len(consumed) < 4:
        message = wait_until(lambda: consumer.poll(0.2), timeout=15)
        if message.partition() == 0:
            consumed.append(message)
    consumer.commit(message=consumed[-1], asynchronous=False)

    assert committed_offsets(bootstrap_servers, "billing") == {(topic, 0): 4}
    assert consumer_lag(bootstrap_servers, "billing") == {(topic, 0): 6, (topic, 1): 1}
    assert committed_offsets(bootstrap_servers, "nobody") == {}


def test_wait_until() -> None:
    started = time.monotonic()
    calls = []

    def ready() -> str | None:
        calls.append(1)
        return "yes" if len(calls) >= 3 else None

    assert wait_until(ready, timeout=5) == "yes"

    def broken() -> bool:
        raise ValueError("not yet")

    with pytest.raises(AssertionError, match=r"the thing after 0\.1 s") as raised:
        wait_until(broken, timeout=0.1, message="the thing")
    assert isinstance(raised.value.__cause__, ValueError)
    assert time.monotonic() - started < 2
