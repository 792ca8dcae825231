"""Durability seen from a client: a clean restart keeps every topic and record, and a SIGKILL
in the middle of continuous acks=all produce loses no record the broker acknowledged."""

from __future__ import annotations

import signal
import threading
import time

from confluent_kafka import KafkaError, Message, Producer
from kafka_helpers import (
    TIMEOUT_S,
    admin,
    consume_all,
    create_topic,
    keyed_records,
    produce,
    unique_topic,
    wait_for_partitions,
    watermarks,
)


def snapshot(bootstrap: str, topics: dict[str, int]) -> dict[str, list[tuple]]:
    """Everything a consumer sees in these topics, partition by partition."""
    seen = {}
    for topic, partitions in topics.items():
        records = consume_all(bootstrap, topic, partitions=range(partitions))
        seen[topic] = sorted(
            (r.partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp) for r in records
        )
    return seen


def test_graceful_shutdown_exits_zero_and_restart_keeps_everything(fresh_broker) -> None:
    broker = fresh_broker
    topics = {unique_topic("restart-a"): 1, unique_topic("restart-b"): 3}
    for topic, partitions in topics.items():
        create_topic(broker.bootstrap, topic, partitions=partitions)
        for codec in ("none", "gzip", "zstd"):
            produce(
                broker.bootstrap,
                topic,
                keyed_records(25, 1_700_000_000_000, tag=codec),
                **{"compression.type": codec},
            ).ok()
    before = snapshot(broker.bootstrap, topics)
    assert all(len(records) == 75 for records in before.values())

    assert broker.stop() == 0, broker.log()
    broker.start()

    listed = admin(broker.bootstrap).list_topics(timeout=TIMEOUT_S).topics
    for topic, partitions in topics.items():
        assert len(listed[topic].partitions) == partitions
        wait_for_partitions(broker.bootstrap, topic, partitions)
    assert snapshot(broker.bootstrap, topics) == before

    # The log continues where it stopped.
    (topic, _) = next(iter(topics.items()))
    (delivery,) = produce(broker.bootstrap, topic, [{"value": b"after restart"}]).ok()
    assert (delivery.partition, delivery.offset) == (0, 75)


def test_sigint_then_two_restarts_change_nothing(fresh_broker) -> None:
    """Ctrl-C is a graceful shutdown too, and recovering a recovered log changes nothing."""
    broker = fresh_broker
    topic = unique_topic("restart-twice")
    create_topic(broker.bootstrap, topic, partitions=2)
    produce(broker.bootstrap, topic, keyed_records(40, 1_700_000_000_000)).ok()
    before = snapshot(broker.bootstrap, {topic: 2})

    broker.proc.send_signal(signal.SIGINT)
    assert broker.proc.wait(20) == 0, broker.log()
    broker.start()
    assert snapshot(broker.bootstrap, {topic: 2}) == before

    assert broker.stop() == 0, broker.log()
    broker.start()
    assert snapshot(broker.bootstrap, {topic: 2}) == before


class ContinuousProducer(threading.Thread):
    """Produces numbered values with acks=all until stopped; remembers what was acknowledged."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name="continuous-producer", daemon=True)
        self.topic = topic
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": 60_000,
                "retry.backoff.ms": 100,
                "reconnect.backoff.max.ms": 500,
                "queue.buffering.max.messages": 10_000,
            }
        )
        self.acked: dict[bytes, int] = {}  # value -> offset the broker assigned
        self.failed: list[KafkaError] = []
        self.sent = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        with self.lock:
            if err is None:
                self.acked[msg.value()] = msg.offset()
            else:
                self.failed.append(err)

    def run(self) -> None:
        while not self.stopping.is_set():
            value = f"record-{self.sent:08d}".encode()
            try:
                self.producer.produce(
                    self.topic, value=value, partition=0, on_delivery=self.on_delivery
                )
                self.sent += 1
            except BufferError:
                pass  # local queue full while the broker is down
            self.producer.poll(0.001)
        self.producer.flush(TIMEOUT_S * 2)

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)


def lost_records(acked: dict[bytes, int], at_offset: dict[int, bytes]) -> dict[bytes, int]:
    """Acknowledged records that are not at the offset the broker gave them."""
    return {value: offset for value, offset in acked.items() if at_offset.get(offset) != value}


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigkill_during_acks_all_produce_loses_no_acknowledged_record(fresh_broker) -> None:
    broker = fresh_broker
    topic = unique_topic("sigkill")
    create_topic(broker.bootstrap, topic, partitions=1)

    producer = ContinuousProducer(broker.bootstrap, topic)
    producer.start()
    try:
        wait_until(lambda: producer.acked_count() >= 2000, 60, "2000 acknowledged records")
        time.sleep(0.5)  # kill while appends are in flight, not at a quiet moment
        broker.kill()
        acked_before_kill = producer.acked_count()
        time.sleep(1.0)
        broker.start()
        # Keep producing after the restart so the client must reconnect and go on.
        wait_until(
            lambda: producer.acked_count() >= acked_before_kill + 1000,
            60,
            "1000 more acknowledged records after the restart",
        )
    finally:
        producer.stopping.set()
        producer.join(TIMEOUT_S * 3)
    assert not producer.is_alive()

    acked = dict(producer.acked)
    consumed = consume_all(broker.bootstrap, topic)
    at_offset = {r.offset: r.value for r in consumed}
    lost = lost_records(acked, at_offset)
    # Negative control: the checker does see a record that is not where it was acknowledged.
    assert lost_records({**acked, b"never-written": 3}, at_offset) == {b"never-written": 3}
    assert not lost, (
        f"{len(lost)} of {len(acked)} acknowledged records are missing or moved, e.g. "
        f"{sorted(lost.items(), key=lambda kv: kv[1])[:5]}; broker output:\n{broker.log()}"
    )
    # The log is dense: offsets 0..high-1 with no holes.
    low, high = watermarks(broker.bootstrap, topic, 0)
    assert low == 0
    assert sorted(at_offset) == list(range(high))
    assert len(acked) >= acked_before_kill + 1000
