"""Helpers for the real-client tests: the Java partitioner, topic names, confluent-kafka
produce/consume loops, and a reader for the record-batch headers Odradek writes to disk.

Everything here is written against what Kafka documents, not against Odradek's code, so a test
that uses it checks the broker rather than agreeing with it.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
# The low three bits of a v2 batch's attributes (Kafka's CompressionType ids).
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
TIMEOUT_S = 30.0


def murmur2(data: bytes) -> int:
    """Kafka's `Utils.murmur2` (Java, 32-bit signed result), the hash of the default partitioner."""
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24  # Java's `>>>` on an int: an unsigned shift
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, num_partitions: int) -> int:
    """The partition Java's and librdkafka's murmur2 partitioners pick for a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- confluent-kafka ---------------------------------------------------------------------------


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, topic: str, partitions: int = 1, **configs: str) -> None:
    client = admin(bootstrap)  # must outlive its futures: a destroyed client fails them
    futures = client.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=configs)],
        operation_timeout=TIMEOUT_S,
        request_timeout=TIMEOUT_S,
    )
    futures[topic].result(TIMEOUT_S)
    wait_for_partitions(bootstrap, topic, partitions)


def wait_for_partitions(bootstrap: str, topic: str, partitions: int) -> None:
    """Block until metadata shows the topic with its partitions and a leader for each."""
    client = admin(bootstrap)
    deadline = time.monotonic() + TIMEOUT_S
    seen: Any = None
    while time.monotonic() < deadline:
        meta = client.list_topics(topic=topic, timeout=10)
        seen = meta.topics.get(topic)
        if (
            seen is not None
            and seen.error is None
            and len(seen.partitions) == partitions
            and all(p.leader >= 0 for p in seen.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {topic} never showed {partitions} partitions: {seen}")


@dataclass
class Delivery:
    key: bytes | None
    value: bytes | None
    partition: int = -1
    offset: int = -1
    error: KafkaError | None = None


@dataclass
class ProduceResult:
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def errors(self) -> list[KafkaError]:
        return [d.error for d in self.deliveries if d.error is not None]

    def ok(self) -> list[Delivery]:
        assert not self.errors, f"delivery errors: {self.errors}"
        return self.deliveries


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[dict[str, Any]],
    **config: Any,
) -> ProduceResult:
    """Produce `records` (kwargs of `Producer.produce`) and wait for every delivery report."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    result = ProduceResult()

    def report(delivery: Delivery) -> Any:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            delivery.error = err
            delivery.partition = msg.partition()
            delivery.offset = msg.offset()

        return on_delivery

    for record in records:
        delivery = Delivery(key=record.get("key"), value=record.get("value"))
        result.deliveries.append(delivery)
        producer.produce(topic, on_delivery=report(delivery), **record)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    assert remaining == 0, f"{remaining} records never got a delivery report"
    return result


@dataclass
class Consumed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: tuple[int, int]


def consumer(bootstrap: str, **config: Any) -> Consumer:
    """A consumer for manual assignment only: the group id is required by the client, unused."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("unused-group"),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            **config,
        }
    )


def consume_all(
    bootstrap: str,
    topic: str,
    partitions: Sequence[int] = (0,),
    expected: int | None = None,
    timeout_s: float = TIMEOUT_S,
    **config: Any,
) -> list[Consumed]:
    """Read every partition from the beginning to its end (or `expected` records in all)."""
    c = consumer(bootstrap, **config)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out: list[Consumed] = []
    at_end: set[int] = set()
    other_errors: list[KafkaError] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if expected is None and at_end >= set(partitions):
                break
            if expected is not None and len(out) >= expected:
                break
            msg = c.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                if err.fatal():
                    raise KafkaException(err)
                other_errors.append(err)
                continue
            at_end.discard(msg.partition())
            out.append(
                Consumed(
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=msg.key(),
                    value=msg.value(),
                    headers=list(msg.headers() or []),
                    timestamp=msg.timestamp(),
                )
            )
    finally:
        c.close()
    if expected is not None:
        assert len(out) >= expected, (
            f"read {len(out)} of {expected} records from {topic}; client errors: {other_errors}"
        )
    else:
        assert at_end >= set(partitions), (
            f"never reached the end of {topic} {sorted(set(partitions) - at_end)} in "
            f"{timeout_s} s; read {len(out)}; client errors: {other_errors}"
        )
    return out


def watermarks(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    c = consumer(bootstrap)
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT_S)
        return int(low), int(high)
    finally:
        c.close()


def keyed_records(count: int, timestamp_ms: int, tag: str = "") -> list[dict[str, Any]]:
    """Keyed records with headers and explicit CreateTimes; values compress well on purpose."""
    return [
        {
            "key": f"key-{i % 7}-{tag}".encode(),
            "value": (f"value {i} {tag} " * 20).encode(),
            "headers": [("seq", str(i).encode()), ("origin", b"odradek-test"), ("empty", b"")],
            "timestamp": timestamp_ms + i,
        }
        for i in range(count)
    ]


# -- on-disk record batches (Kafka's format, DESIGN.md section 2) ----------------------------


@dataclass(frozen=True)
class BatchHeader:
    base_offset: int
    last_offset_delta: int
    magic: int
    attributes: int

    @property
    def codec_id(self) -> int:
        return self.attributes & 0x07


def segment_batches(data_dir: Path, topic: str, partition: int) -> list[BatchHeader]:
    """The batch headers of every `.log` segment of `<data_dir>/<topic>-<partition>/`."""
    directory = data_dir / f"{topic}-{partition}"
    batches: list[BatchHeader] = []
    for segment in sorted(directory.glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base_offset, batch_length = struct.unpack_from(">qi", data, pos)
            if batch_length <= 0:
                break  # preallocated or torn tail
            magic = data[pos + 16]
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            (last_offset_delta,) = struct.unpack_from(">i", data, pos + 23)
            batches.append(BatchHeader(base_offset, last_offset_delta, magic, attributes))
            pos += 12 + batch_length
    return batches


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str, *alternatives: str) -> str:
    """The path of an external client: skipped locally when it is missing, a failure in CI
    (where .ci/run installs it), so CI cannot pass by skipping."""
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path:
            return path
    message = f"{name} is not on PATH (bash .ci/run installs it)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def require_kafkajs(js_dir: Path) -> str:
    """The path of node, with KafkaJS installed in `js_dir`: skipped locally when either is
    missing, a failure in CI (as `require_tool`)."""
    path = require_tool("node", "nodejs")
    if not (js_dir / "node_modules" / "kafkajs").is_dir():
        message = f"kafkajs is not installed: run `npm ci` in {js_dir} (bash .ci/run does)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


class EventProcess:
    """A consumer script run in a subprocess that prints one JSON event per line.

    Events are collected by a reader thread; `update()` returns every event so far. `owned()`
    folds the "assign", "revoke"/"lost" and "closed" events into the partitions held now.
    """

    def __init__(self, argv: Sequence[str], stop_timeout_s: float = 30.0) -> None:
        self.stop_timeout_s = stop_timeout_s
        self.proc = subprocess.Popen(
            [sys.executable, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
        )
        self._queue: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(json.loads(line))

    def update(self) -> list[dict[str, Any]]:
        while True:
            try:
                self.events.append(self._queue.get_nowait())
            except queue.Empty:
                return self.events

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.update() if e["event"] == kind]

    def owned(self) -> frozenset[int]:
        owned: frozenset[int] = frozenset()
        for e in self.update():
            if e["event"] == "assign":
                owned |= frozenset(e["partitions"])
            elif e["event"] in ("revoke", "lost"):
                owned -= frozenset(e["partitions"])
            elif e["event"] == "closed":
                owned = frozenset()
        return owned

    def stop(self) -> None:
        """SIGTERM: the script closes its consumer (leaving the group) and exits 0."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(self.stop_timeout_s) == 0
        self._reader.join(5)
        assert self.update()[-1]["event"] == "closed"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)
        self.update()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
