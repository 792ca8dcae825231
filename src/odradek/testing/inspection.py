"""Looking at what a broker holds: records, partitions of keys, order, committed offsets, lag.

Everything here talks to the broker as a client does (confluent-kafka), so it works against any
broker of the plugin, in process or not, and against Apache Kafka itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_S = 10.0


# --- partitioning ------------------------------------------------------------------------------


def murmur2(data: bytes) -> int:
    """Kafka's `Utils.murmur2` of `data`: the 32-bit hash as a signed int, as Java returns it."""
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    end = length - length % 4
    for i in range(0, end, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * m) & mask
        k = ((k ^ (k >> 24)) * m) & mask
        h = ((h * m) & mask) ^ k
    rest = length - end
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h = ((h ^ data[end]) * m) & mask
    h = ((h ^ (h >> 13)) * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(key: bytes | str, num_partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record.

    That is Java's `toPositive(murmur2(key)) % numPartitions`, which librdkafka applies with
    `partitioner=murmur2_random` (confluent-kafka's own default, `consistent_random`, hashes with
    CRC32 and picks other partitions). Strings are hashed as their UTF-8 bytes, as the Java
    StringSerializer sends them.
    """
    if num_partitions <= 0:
        raise ValueError("num_partitions must be positive")
    data = key.encode() if isinstance(key, str) else key
    return (murmur2(data) & 0x7FFFFFFF) % num_partitions


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int
    timestamp_type: int  # 0: none, 1: create time, 2: log append time (librdkafka's codes)


def read_records(
    bootstrap_servers: str,
    topic: str,
    *,
    partitions: Iterable[int] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Record]:
    """Every record of the topic now present, by partition and then offset.

    Reads each partition from its log start to the high watermark it has when the call begins,
    with a consumer of no group (nothing is committed). Records produced later are not waited for.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "odradek-testing-reader",  # required by confluent-kafka; never joined
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        indexes = (
            sorted(partitions)
            if partitions is not None
            else sorted(_partitions(consumer, topic, timeout_s))
        )
        ends: dict[int, int] = {}
        starts: list[Any] = []
        for index in indexes:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, index), timeout=timeout_s
            )
            if high > low:
                ends[index] = high
                starts.append(TopicPartition(topic, index, low))
        records: list[Record] = []
        if not starts:
            return records
        consumer.assign(starts)
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(ends)} not read to their end")
            for message in consumer.consume(num_messages=1000, timeout=0.1):
                if message.error() is not None:
                    raise RuntimeError(f"reading {topic}: {message.error()}")
                record = _record(message)
                end = ends.get(record.partition)
                if end is None or record.offset >= end:
                    continue
                records.append(record)
                if record.offset + 1 >= end:
                    del ends[record.partition]
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def _partitions(client: Any, topic: str, timeout_s: float) -> list[int]:
    metadata = client.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise LookupError(f"topic {topic!r} not found: {getattr(metadata, 'error', None)}")
    return list(metadata.partitions)


def _record(message: Any) -> Record:
    timestamp_type, timestamp_ms = message.timestamp()
    return Record(
        topic=str(message.topic()),
        partition=int(message.partition()),
        offset=int(message.offset()),
        key=message.key(),
        value=message.value(),
        headers=tuple(message.headers() or ()),
        timestamp_ms=timestamp_ms,
        timestamp_type=timestamp_type,
    )


def assert_per_key_order(
    records: Iterable[Record], sent: Iterable[tuple[bytes | str | None, bytes | str | None]]
) -> None:
    """Each key's records sit in one partition and hold its values in the order they were sent.

    `records` come from `read_records` (order within a partition is by offset); `sent` is the
    (key, value) pairs in the order the application produced them. Keys and values may be str
    (compared as UTF-8). Records of keys not in `sent` are ignored; missing or extra records of
    a sent key fail, as do duplicates.
    """
    expected: dict[bytes | None, list[bytes | None]] = {}
    for key, value in sent:
        expected.setdefault(_bytes(key), []).append(_bytes(value))
    seen: dict[bytes | None, list[Record]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.key in expected:
            seen.setdefault(record.key, []).append(record)
    problems = []
    for key, values in expected.items():
        got = seen.get(key, [])
        partitions = sorted({r.partition for r in got})
        if len(partitions) > 1:
            problems.append(f"key {key!r} is in partitions {partitions}")
        got_values = [r.value for r in got]
        if got_values != values:
            problems.append(f"key {key!r}: sent {values!r}, the log holds {got_values!r}")
    if problems:
        raise AssertionError("per-key order broken:\n  " + "\n  ".join(problems))


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


# --- consumer groups ---------------------------------------------------------------------------


def committed_offsets(
    bootstrap_servers: str, group: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[tuple[str, int], int]:
    """The group's committed offsets by (topic, partition); partitions without one are left out."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=timeout_s
    )
    result = futures[group].result(timeout_s)
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in result.topic_partitions
        if tp.error is None and tp.offset >= 0
    }


def consumer_lag(
    bootstrap_servers: str,
    group: str,
    topics: Sequence[str] | None = None,
    *,
    read_committed: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[tuple[str, int], int]:
    """How many records the group has yet to commit past, by (topic, partition).

    Lag is the high watermark minus the committed offset (the whole partition, from its log
    start, where the group committed nothing); with `read_committed`, the last stable offset
    minus it (what a read_committed group can still reach while transactions are open).
    Without `topics`, the topics the group has committed offsets for.
    """
    from confluent_kafka import Consumer, TopicPartition

    committed = committed_offsets(bootstrap_servers, group, timeout_s=timeout_s)
    names = sorted({t for t, _ in committed} if topics is None else set(topics))
    isolation = "read_committed" if read_committed else "read_uncommitted"
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": group, "isolation.level": isolation}
    )
    try:
        lag: dict[tuple[str, int], int] = {}
        for topic in names:
            for index in sorted(_partitions(consumer, topic, timeout_s)):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, index), timeout=timeout_s
                )
                lag[(topic, index)] = high - committed.get((topic, index), low)
        return lag
    finally:
        consumer.close()


# --- waiting -----------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], Any],
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    interval: float = 0.01,
    message: str | Callable[[], str] | None = None,
) -> Any:
    """Call `condition` until it returns something true, and return that; fail after `timeout` s.

    Exceptions raised by `condition` count as "not yet"; the last one is chained to the
    AssertionError raised at the timeout, with `message` (or the condition's name).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    delay = interval
    while True:
        try:
            result = condition()
        except Exception as exc:
            last_error, result = exc, None
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            text = text or f"{getattr(condition, '__name__', 'condition')} still false"
            raise AssertionError(f"{text} after {timeout:g} s") from last_error
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def as_mapping(records: Iterable[Record]) -> Mapping[bytes | None, list[bytes | None]]:
    """Values by key, in partition-then-offset order (handy for assertions)."""
    out: dict[bytes | None, list[bytes | None]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        out.setdefault(record.key, []).append(record.value)
    return out
