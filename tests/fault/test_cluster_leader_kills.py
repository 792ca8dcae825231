"""Partition leaders killed under load, over three `odradek serve` processes (broker,controller).

A topic of 6 partitions, replication factor 3, min.insync.replicas 2. An idempotent
confluent-kafka producer (acks=all) writes unique values without pause while a consumer reads
every partition; again and again the leader of one partition (in turn) is SIGKILLed, restarted
a few seconds later, and given time to rejoin every ISR. Afterwards:

- no acknowledged value is missing from what the consumer read, nor from a fresh read of the
  whole topic (every consumer eventually reads everything);
- no value is in the log twice.

Negative control: the same faults with acks=1 (no idempotence) lose acknowledged values, so the
checker sees loss when there is some. The default run kills 5 leaders; the slow suite kills 50
and runs the negative control (6 kills, about 90 s).

Also here, the scenario from our users' notes: a partition led by broker 1 with replicas on 2
and 3; broker 1 dies; broker 2, in the ISR, takes over; producing and consuming go on with no
loss. And SIGSTOP of a leader for longer than the broker session: a new leader is elected, the
old one rejoins as a follower once SIGCONT'd, and every replica of every partition is then
byte-identical up to the high watermark.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from cluster_processes import (
    create_topic,
    leader_of,
    live_port,
    partitions_of,
    start_cluster,
    wait_full_isr,
    wait_until,
)

TOPIC = "kills"
PARTITIONS = 6
SESSION_TIMEOUT_MS = 1500
OVERRIDES: dict[str, object] = {
    "default.replication.factor": 3,
    "min.insync.replicas": 2,
    "offsets.topic.replication.factor": 3,
    "replica.lag.time.max.ms": 3000,
}
DOWN_S = 2.0  # how long a killed broker stays down


@dataclass
class Workload:
    """A producer and a consumer running in threads until `stop`."""

    bootstrap: str
    acks: str
    acked: set[bytes] = field(default_factory=set)
    consumed: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _drain_until: float = 0.0  # the consumer goes on until then once producing stopped

    def start(self) -> None:
        for target in (self._produce, self._consume):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _produce(self) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "acks": self.acks,
            "linger.ms": 2,
            "message.timeout.ms": 120_000,
            "enable.idempotence": self.acks == "all",
        }
        producer = Producer(config)
        lock = threading.Lock()

        def delivered(err: Any, msg: Any) -> None:
            if err is None:
                with lock:
                    self.acked.add(msg.value())
            else:
                self.errors.append(str(err))

        seq = 0
        while not self._stop.is_set():
            for _ in range(50):
                try:
                    producer.produce(TOPIC, value=b"v%09d" % seq, on_delivery=delivered)
                except (BufferError, KafkaException):  # full, or metadata not there yet
                    break
                seq += 1
            producer.poll(0.005)
        producer.flush(120)

    def _consume(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "unused",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        while not self._stop.is_set() or time.monotonic() < self._drain_until:
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                continue
            self.consumed.append(message.value())
        consumer.close()

    def stop(self, drain_s: float) -> None:
        """Stop producing (waiting for every delivery), then let the consumer catch up."""
        self._drain_until = time.monotonic() + 3600
        self._stop.set()
        self._threads[0].join(180)
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and not self.acked <= set(self.consumed):
            time.sleep(0.2)
        self._drain_until = 0.0
        self._threads[1].join(30)


def read_everything(bootstrap: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    values: list[bytes] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    while len(at_end) < PARTITIONS and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition())
            continue
        values.append(message.value())
    consumer.close()
    return values


@dataclass
class Outcome:
    acked: int
    lost: int
    duplicates: int
    consumed_lost: int


def loaded_cluster(make: Callable[..., Any], acks: str) -> tuple[dict[int, Any], str, Workload]:
    """Three nodes, the topic in sync on all three, and a workload under way."""
    nodes = start_cluster(make, SESSION_TIMEOUT_MS, OVERRIDES)
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    create_topic(live_port(nodes), TOPIC, PARTITIONS, 3)
    wait_full_isr(nodes, TOPIC, 3)
    workload = Workload(bootstrap, acks)
    workload.start()
    wait_until(lambda: len(workload.acked) > 1000, "the producer under way")
    return nodes, bootstrap, workload


def kill_leaders(make: Callable[..., Any], kills: int, acks: str) -> Outcome:
    nodes, bootstrap, workload = loaded_cluster(make, acks)
    for round_ in range(kills):
        victim = leader_of(nodes, TOPIC, round_ % PARTITIONS)
        nodes[victim].kill()
        time.sleep(DOWN_S)
        nodes[victim].start()
        # Asked of the restarted broker itself: it answers once it has caught up with the
        # metadata log, which then holds its new registration (and so the ISRs it left); a
        # node that has not seen that registration yet may still list it in every ISR.
        wait_full_isr({victim: nodes[victim]}, TOPIC, 3)
    workload.stop(drain_s=60)
    final = read_everything(bootstrap)
    in_log = set(final)
    return Outcome(
        acked=len(workload.acked),
        lost=len(workload.acked - in_log),
        duplicates=len(final) - len(in_log),
        consumed_lost=len(workload.acked - set(workload.consumed)),
    )


def test_leader_kills_lose_nothing_acknowledged(unstarted_broker: Callable[..., Any]) -> None:
    outcome = kill_leaders(unstarted_broker, kills=5, acks="all")
    assert outcome.acked > 1000
    assert outcome == Outcome(outcome.acked, lost=0, duplicates=0, consumed_lost=0)


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 5 s a kill: past the default 300 s on a slower machine
def test_fifty_leader_kills_lose_nothing_acknowledged(
    unstarted_broker: Callable[..., Any],
) -> None:
    outcome = kill_leaders(unstarted_broker, kills=50, acks="all")
    assert outcome.acked > 1000
    assert outcome == Outcome(outcome.acked, lost=0, duplicates=0, consumed_lost=0)


@pytest.mark.slow
def test_negative_control_acks_1_loses_acknowledged_records(
    unstarted_broker: Callable[..., Any],
) -> None:
    outcome = kill_leaders(unstarted_broker, kills=6, acks="1")
    assert outcome.lost > 0, outcome


def test_a_replica_in_the_isr_takes_over_when_broker_1_dies(
    unstarted_broker: Callable[..., Any],
) -> None:
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS, OVERRIDES)
    port = live_port(nodes)
    create_topic(port, "payments", assignment=[[1, 2, 3]])
    wait_full_isr(nodes, "payments", 3)
    assert leader_of(nodes, "payments", 0) == 1
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(500):
        producer.produce("payments", value=b"before-%d" % i)
    assert producer.flush(30) == 0
    nodes[1].kill()
    wait_until(lambda: leader_of(nodes, "payments", 0) == 2, "broker 2 leading")
    for i in range(500):
        producer.produce("payments", value=b"after-%d" % i)
    assert producer.flush(60) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "payments-reader",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(["payments"])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(values) < 1000 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            values.append(message.value())
    consumer.close()
    expected = [b"before-%d" % i for i in range(500)] + [b"after-%d" % i for i in range(500)]
    assert values == expected  # one partition: in order, complete, no duplicates


def segment_bytes(data_dir: Path, topic: str, partition: int, end_offset: int) -> bytes:
    """The record batches of a replica's log below `end_offset`, as stored."""
    out = bytearray()
    for path in sorted((data_dir / f"{topic}-{partition}").glob("*.log")):
        data = path.read_bytes()
        position = 0
        while position + 12 <= len(data):
            base_offset = int.from_bytes(data[position : position + 8], "big")
            length = int.from_bytes(data[position + 8 : position + 12], "big")
            if length <= 0 or base_offset >= end_offset:
                break
            out += data[position : position + 12 + length]
            position += 12 + length
    return bytes(out)


def test_a_paused_leader_is_replaced_and_rejoins_byte_identical(
    unstarted_broker: Callable[..., Any],
) -> None:
    nodes, bootstrap, workload = loaded_cluster(unstarted_broker, "all")
    paused = leader_of(nodes, TOPIC, 0)
    others = {i: n for i, n in nodes.items() if i != paused}
    nodes[paused].proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: leader_of(others, TOPIC, 0) not in (paused, -1), "a new leader elected")
        during = len(workload.acked)
        wait_until(lambda: len(workload.acked) > during + 500, "producing goes on")
    finally:
        nodes[paused].proc.send_signal(signal.SIGCONT)
    wait_full_isr(nodes, TOPIC, 3)
    workload.stop(drain_s=60)
    wait_full_isr(nodes, TOPIC, 3)
    time.sleep(1)  # the followers' last fetch brings them to the leader's end
    final = read_everything(bootstrap)
    assert workload.acked <= set(final)
    assert len(final) == len(set(final))
    for partition, state in partitions_of(live_port(nodes), TOPIC).items():
        high_watermark = _high_watermark(bootstrap, partition)
        copies = {
            node_id: segment_bytes(node.data_dir, TOPIC, partition, high_watermark)
            for node_id, node in nodes.items()
        }
        assert len(set(copies.values())) == 1, (partition, state, high_watermark)
        assert copies[paused]


def _high_watermark(bootstrap: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "hw"})
    _, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=10)
    consumer.close()
    return int(high)


def test_a_rolling_restart_loses_nothing_and_fails_no_delivery(
    unstarted_broker: Callable[..., Any],
) -> None:
    """SIGTERM each broker in turn (a controlled shutdown moves its leaderships first), start
    it again and let it rejoin: the producer sees at most retriable errors, which it retries."""
    nodes, bootstrap, workload = loaded_cluster(unstarted_broker, "all")
    for node in nodes.values():
        assert node.stop() == 0
        node.start()
        wait_full_isr(nodes, TOPIC, 3)
    workload.stop(drain_s=60)
    final = read_everything(bootstrap)
    assert workload.errors == []
    assert workload.acked <= set(final)
    assert len(final) == len(set(final))
