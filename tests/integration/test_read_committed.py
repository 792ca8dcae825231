"""read_committed consumers over real sockets: one transaction over 3 partitions of 2 topics is
committed and another aborted; read_committed consumers (confluent-kafka, kafka-python,
aiokafka) see exactly the committed and the non-transactional records, read_uncommitted ones
see everything. Open transactions hold read_committed readers (and ListOffsets latest) at the
last stable offset until their marker lands, which wakes a long-polling fetch.

Producers cannot write transaction markers, and the transaction coordinator is not what is
under test here: the batches and markers are appended straight into the partitions of an
in-process broker (`kafka_broker.node`), on its event loop, as the coordinator will append
its markers. The negative control shows the consumers' check is not blind: without the
aborted-transactions list in Fetch responses, a read_committed consumer returns the aborted
records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from kafka_helpers import consume_all, consumer
from test_groups_bad_input import Raw, entity

from odradek.protocol import records
from odradek.storage import log as storage_log
from odradek.storage.producer_state import AppendOrigin
from odradek.storage.txn_index import ControlRecordType, encode_end_transaction_marker

COMMITTING = 7001
ABORTING = 7002
LINGERING = 7003

Broker = Any


class Writer:
    """Appends batches into the partitions of an in-process broker, as its coordinator does."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.sequences: dict[tuple[str, int, int], int] = {}

    def _append(self, topic: str, partition: int, data: bytes) -> int:
        async def append() -> int:
            leader = self.broker.node.replica_manager.leader(topic, partition)
            result = leader.append(memoryview(bytearray(data)), AppendOrigin.COORDINATOR)
            return int(result.first_offset)

        return int(self.broker.call(append()))

    def plain(self, topic: str, partition: int, *values: bytes, timestamp_ms: int = 1) -> None:
        batch = records.encode_batch([(None, v, []) for v in values], timestamp_ms=timestamp_ms)
        self._append(topic, partition, batch)

    def transactional(self, pid: int, topic: str, partition: int, *values: bytes) -> None:
        sequence = self.sequences.get((topic, partition, pid), 0)
        self.sequences[(topic, partition, pid)] = sequence + len(values)
        batch = records.encode_batch(
            [(None, v, []) for v in values],
            timestamp_ms=1,
            producer_id=pid,
            producer_epoch=0,
            base_sequence=sequence,
            attributes=records.ATTR_TRANSACTIONAL,
        )
        self._append(topic, partition, batch)

    def marker(self, pid: int, topic: str, partition: int, control: ControlRecordType) -> None:
        batch = encode_end_transaction_marker(
            control, 0, producer_id=pid, producer_epoch=0, timestamp_ms=2
        )
        self._append(topic, partition, batch)


def scenario(writer: Writer, orders: str, payments: str) -> list[tuple[str, int]]:
    """A committed and an aborted transaction interleaved over orders-0, orders-1 and
    payments-0, with non-transactional records among them; returns the partitions."""
    partitions = [(orders, 0), (orders, 1), (payments, 0)]
    for topic, partition in partitions:
        tag = f"{topic[:1]}{partition}".encode()
        writer.plain(topic, partition, b"plain-1-" + tag)
        writer.transactional(COMMITTING, topic, partition, b"commit-1-" + tag, b"commit-2-" + tag)
        writer.transactional(ABORTING, topic, partition, b"abort-1-" + tag)
        writer.plain(topic, partition, b"plain-2-" + tag)
        writer.transactional(ABORTING, topic, partition, b"abort-2-" + tag, b"abort-3-" + tag)
        writer.transactional(COMMITTING, topic, partition, b"commit-3-" + tag)
    for topic, partition in partitions:
        writer.marker(ABORTING, topic, partition, ControlRecordType.ABORT)
        writer.marker(COMMITTING, topic, partition, ControlRecordType.COMMIT)
        writer.plain(topic, partition, b"plain-3-" + f"{topic[:1]}{partition}".encode())
    return partitions


def values_by_kind(values: list[bytes]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for value in values:
        kind = value.split(b"-")[0].decode()
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


@pytest.fixture
def topics(kafka_broker: Broker, kafka_topic: Any) -> Iterator[tuple[Writer, str, str]]:
    yield Writer(kafka_broker), kafka_topic(2, prefix="orders"), kafka_topic(1, prefix="payments")


def confluent_values(
    bootstrap: str, topic_partitions: list[tuple[str, int]], isolation: str
) -> list[bytes]:
    values: list[bytes] = []
    for topic in sorted({t for t, _ in topic_partitions}):
        parts = [p for t, p in topic_partitions if t == topic]
        consumed = consume_all(bootstrap, topic, parts, **{"isolation.level": isolation})
        values += [c.value for c in consumed if c.value is not None]
    return values


def test_confluent_read_committed_sees_exactly_the_committed_records(
    kafka_broker: Broker, topics: tuple[Writer, str, str]
) -> None:
    writer, orders, payments = topics
    partitions = scenario(writer, orders, payments)
    bootstrap = kafka_broker.bootstrap_servers
    committed = confluent_values(bootstrap, partitions, "read_committed")
    assert values_by_kind(committed) == {"plain": 9, "commit": 9}
    assert len(set(committed)) == len(committed)
    everything = confluent_values(bootstrap, partitions, "read_uncommitted")
    assert values_by_kind(everything) == {"plain": 9, "commit": 9, "abort": 9}


def test_without_the_aborted_list_read_committed_would_see_aborted_records(
    kafka_broker: Broker, topics: tuple[Writer, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control: the broker (in this process) stops listing aborted transactions."""
    writer, orders, payments = topics
    partitions = scenario(writer, orders, payments)
    monkeypatch.setattr(storage_log, "_collect_aborted_transactions", lambda *args: [])
    committed = confluent_values(kafka_broker.bootstrap_servers, partitions, "read_committed")
    assert values_by_kind(committed) == {"plain": 9, "commit": 9, "abort": 9}


def test_an_open_transaction_holds_read_committed_readers_until_its_marker(
    kafka_broker: Broker, topics: tuple[Writer, str, str]
) -> None:
    writer, orders, _ = topics
    writer.plain(orders, 0, b"plain-1")  # 0
    writer.transactional(LINGERING, orders, 0, b"abort-1")  # 1, stays open for now
    writer.plain(orders, 0, b"plain-2", timestamp_ms=5)  # 2
    bootstrap = kafka_broker.bootstrap_servers
    tp = TopicPartition(orders, 0)
    committed_reader = consumer(bootstrap, **{"isolation.level": "read_committed"})
    uncommitted_reader = consumer(bootstrap, **{"isolation.level": "read_uncommitted"})
    try:
        # ListOffsets latest: the last stable offset for read_committed, else the high watermark.
        assert committed_reader.get_watermark_offsets(tp, timeout=10) == (0, 1)
        assert uncommitted_reader.get_watermark_offsets(tp, timeout=10) == (0, 3)
        # A lookup by timestamp finds nothing at or past the last stable offset.
        by_time = [TopicPartition(orders, 0, 5)]
        assert committed_reader.offsets_for_times(by_time, timeout=10)[0].offset == -1
        assert uncommitted_reader.offsets_for_times(by_time, timeout=10)[0].offset == 2
        committed_reader.assign([TopicPartition(orders, 0, 0)])
        seen = poll_values(committed_reader, until=lambda values: False, seconds=1.5)
        assert seen == [b"plain-1"]
        # The abort lands while the consumer long-polls: it wakes and reads past the
        # transaction, without its record.
        started = time.monotonic()
        writer.marker(LINGERING, orders, 0, ControlRecordType.ABORT)  # 3
        writer.plain(orders, 0, b"plain-3")  # 4
        seen += poll_values(committed_reader, until=lambda values: b"plain-3" in values)
        assert seen == [b"plain-1", b"plain-2", b"plain-3"]
        assert time.monotonic() - started < 10
        assert committed_reader.get_watermark_offsets(tp, timeout=10) == (0, 5)
        assert committed_reader.offsets_for_times(by_time, timeout=10)[0].offset == 2
    finally:
        committed_reader.close()
        uncommitted_reader.close()


def poll_values(client: Any, until: Any, seconds: float = 20.0) -> list[bytes]:
    values: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until(values):
        msg = client.poll(0.1)
        if msg is not None and msg.error() is None and msg.value() is not None:
            values.append(msg.value())
    return values


def test_kafka_python_read_committed(kafka_broker: Broker, topics: tuple[Writer, str, str]) -> None:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaTopicPartition

    writer, orders, payments = topics
    partitions = scenario(writer, orders, payments)
    for isolation, expected in (
        ("read_committed", {"plain": 9, "commit": 9}),
        ("read_uncommitted", {"plain": 9, "commit": 9, "abort": 9}),
    ):
        client = KafkaConsumer(
            bootstrap_servers=kafka_broker.bootstrap_servers,
            isolation_level=isolation,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=3000,
        )
        try:
            client.assign([KafkaTopicPartition(t, p) for t, p in partitions])
            values = [message.value for message in client]
        finally:
            client.close()
        assert values_by_kind(values) == expected, isolation


def test_aiokafka_read_committed(kafka_broker: Broker, topics: tuple[Writer, str, str]) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as AioTopicPartition

    writer, orders, payments = topics
    partitions = scenario(writer, orders, payments)

    async def consume(isolation: str) -> list[bytes]:
        client = AIOKafkaConsumer(
            bootstrap_servers=kafka_broker.bootstrap_servers,
            isolation_level=isolation,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await client.start()
        try:
            client.assign([AioTopicPartition(t, p) for t, p in partitions])
            values: list[bytes] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                batches = await client.getmany(timeout_ms=1000)
                if not batches and values:
                    break
                values += [m.value for ms in batches.values() for m in ms]
            return values
        finally:
            await client.stop()

    assert values_by_kind(asyncio.run(consume("read_committed"))) == {"plain": 9, "commit": 9}
    assert values_by_kind(asyncio.run(consume("read_uncommitted"))) == {
        "plain": 9,
        "commit": 9,
        "abort": 9,
    }


@pytest.mark.parametrize("version", [4, 12])
def test_the_fetch_response_carries_the_aborted_list_and_the_last_stable_offset(
    kafka_broker: Broker, topics: tuple[Writer, str, str], version: int
) -> None:
    writer, orders, payments = topics
    scenario(writer, orders, payments)
    writer.transactional(LINGERING, orders, 1, b"open-1", b"open-2")  # orders-1: 11-12, open
    raw = Raw(kafka_broker.port)

    newer: dict[str, Any] = {}
    if version >= 12:
        newer = {"session_id": 0, "session_epoch": -1, "forgotten_topics_data": (), "rack_id": ""}

    def fetch(isolation_level: int) -> dict[int, Any]:
        request = entity(
            "fetch",
            version,
            "FetchRequest",
            replica_id=-1,
            max_wait=0,
            min_bytes=0,
            max_bytes=1 << 20,
            isolation_level=isolation_level,
            **newer,
            topics=(
                entity(
                    "fetch",
                    version,
                    "FetchTopic",
                    topic=orders,
                    partitions=tuple(
                        entity(
                            "fetch",
                            version,
                            "FetchPartition",
                            partition=p,
                            fetch_offset=0,
                            partition_max_bytes=1 << 20,
                        )
                        for p in (0, 1)
                    ),
                ),
            ),
        )
        (topic,) = raw.call(request).responses
        return {p.partition_index: p for p in topic.partitions}

    committed = fetch(1)
    # orders-0: abort-1 at 3 opens the aborted transaction, its marker is at 8.
    assert committed[0].high_watermark == committed[0].last_stable_offset == 11
    assert [(t.producer_id, t.first_offset) for t in committed[0].aborted_transactions] == [
        (ABORTING, 3)
    ]
    # orders-1: the open transaction holds the last stable offset at its first offset.
    assert (committed[1].high_watermark, committed[1].last_stable_offset) == (13, 11)
    last = max(h.last_offset for _, h in records.iter_batches(committed[1].records))
    assert last == 10
    uncommitted = fetch(0)
    assert uncommitted[0].aborted_transactions is None
    assert uncommitted[1].last_stable_offset == 11
    assert max(h.last_offset for _, h in records.iter_batches(uncommitted[1].records)) == 12
