"""aiokafka against Odradek: create a topic, produce keyed records with headers in every codec,
read them back with assign + seek, and look offsets up by time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from kafka_helpers import CODEC_IDS, java_partition, segment_batches, unique_topic

CODECS = (None, "gzip", "snappy", "lz4", "zstd")
PARTITIONS = 3


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    try:
        response = await client.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
        errors = [(t[0], t[1]) for t in response.topic_errors]
        assert errors == [(topic, 0)], errors
    finally:
        await client.close()


async def read_all(bootstrap: str, topic: str, partitions: int, expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while len(records) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        assert len(records) == expected, f"read {len(records)} of {expected}"
        return records
    finally:
        await consumer.stop()


async def round_trip(bootstrap: str, topic: str, codec: str | None) -> None:
    await create_topic(bootstrap, topic, PARTITIONS)
    base_ts = int(time.time() * 1000) - 10_000
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all")
    await producer.start()
    sent = []
    try:
        for i in range(40):
            key = f"account-{i % 11}".encode()
            value = f"event {i} from aiokafka ".encode() * 10
            headers = [("seq", str(i).encode()), ("client", b"aiokafka")]
            future = await producer.send(
                topic, value=value, key=key, headers=headers, timestamp_ms=base_ts + i
            )
            sent.append((key, value, headers, base_ts + i, future))
        metas = [await f for *_, f in sent]
    finally:
        await producer.stop()

    next_offset = dict.fromkeys(range(PARTITIONS), 0)
    for (key, *_), meta in zip(sent, metas, strict=True):
        assert meta.partition == java_partition(key, PARTITIONS)
        assert meta.offset == next_offset[meta.partition]
        next_offset[meta.partition] += 1

    records = await read_all(bootstrap, topic, PARTITIONS, len(sent))
    by_position = {(r.partition, r.offset): r for r in records}
    for (key, value, headers, ts, _), meta in zip(sent, metas, strict=True):
        got = by_position[(meta.partition, meta.offset)]
        assert (got.key, got.value, list(got.headers)) == (key, value, headers)
        assert (got.timestamp, got.timestamp_type) == (ts, 0)  # 0: CreateTime
    for p in range(PARTITIONS):
        assert [r.offset for r in records if r.partition == p] == list(range(next_offset[p]))


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_round_trip(broker, codec) -> None:
    topic = unique_topic(f"aiokafka-{codec or 'none'}")
    asyncio.run(round_trip(broker.bootstrap, topic, codec))
    stored = {
        b.codec_id for p in range(PARTITIONS) for b in segment_batches(broker.data_dir, topic, p)
    }
    assert stored == {CODEC_IDS[codec or "none"]}


async def offsets_by_time(bootstrap: str, topic: str) -> None:
    await create_topic(bootstrap, topic, 1)
    base_ts = 1_600_000_000_000
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    try:
        for i in range(15):
            meta = await producer.send_and_wait(
                topic, f"t{i}".encode(), partition=0, timestamp_ms=base_ts + 10 * i
            )
            assert meta.offset == i
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        assert await consumer.beginning_offsets([tp]) == {tp: 0}
        assert await consumer.end_offsets([tp]) == {tp: 15}
        found = (await consumer.offsets_for_times({tp: base_ts + 71}))[tp]
        assert (found.offset, found.timestamp) == (8, base_ts + 80)
        assert (await consumer.offsets_for_times({tp: base_ts + 1000}))[tp] is None
    finally:
        await consumer.stop()


def test_offsets_by_time(broker, topic) -> None:
    asyncio.run(offsets_by_time(broker.bootstrap, topic))
