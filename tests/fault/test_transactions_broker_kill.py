"""Broker SIGKILL in the middle of transactions, then a restart on the same data directory.

- raw requests with a fixed producer id, epoch and sequences: a transactional batch retried
  after the restart is recognised as a duplicate (its original offset, no second copy), the
  open transaction is still open and commits, and read_committed readers see each record once;
- a kill right after EndTxn(commit) was answered: the restarted coordinator finishes the
  commit by itself (its PrepareCommit was durable), so the records become visible with no
  client action; a kill before EndTxn: the next instance of the producer (InitProducerId)
  aborts it, and none of its records is ever visible;
- a confluent-kafka producer whose broker is killed mid-transaction commits it or aborts it
  cleanly, then commits a new one; read_committed sees each transaction all or nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))  # the shared client helpers
from confluent_kafka import KafkaError, KafkaException, Producer
from kafka_helpers import TIMEOUT_S, consume_all, create_topic, produce, unique_topic
from txn_requests import RawTransactions, retrying

from odradek.common.errors import ErrorCode
from odradek.protocol.records import encode_batch

# Produce errors a client retries while a restarted broker loads its partitions and its
# transaction coordinator.
PRODUCE_RETRIABLE = (
    ErrorCode.NOT_LEADER_OR_FOLLOWER,
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    ErrorCode.NOT_ENOUGH_REPLICAS,
    ErrorCode.REQUEST_TIMED_OUT,
    ErrorCode.CONCURRENT_TRANSACTIONS,
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_COORDINATOR,
)


def read(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[bytes]:
    records = consume_all(
        bootstrap, topic, partitions=range(partitions), **{"isolation.level": isolation}
    )
    return [r.value or b"" for r in sorted(records, key=lambda r: (r.partition, r.offset))]


def test_a_retried_transactional_batch_is_a_duplicate_after_kill_9(broker_factory) -> None:
    b = broker_factory()
    topic = unique_topic("txn-kill-retry")
    create_topic(b.bootstrap, topic, 2)
    txn = RawTransactions(b.port, unique_topic("txn-kill-retry-id"))

    assert txn.add_partitions(topic, 0, 1) == ErrorCode.NONE
    assert txn.produce(topic, 0, txn.batch(topic, 0, b"before-0", b"before-1")).error_code == 0
    assert txn.end(commit=True).error_code == ErrorCode.NONE

    assert txn.add_partitions(topic, 0, 1) == ErrorCode.NONE
    first = txn.produce(topic, 0, txn.batch(topic, 0, b"open-0", b"open-1"))
    last_batch = txn.batch(topic, 0, b"open-2")
    last = txn.produce(topic, 0, last_batch)
    other = txn.produce(topic, 1, txn.batch(topic, 1, b"open-p1"))
    assert (first.error_code, last.error_code, other.error_code) == (0, 0, 0)

    b.kill()
    b.start()
    txn.reconnect()

    # The client never saw the answer to `last_batch`, so it sends it again.
    retry = retrying(lambda: txn.produce(topic, 0, last_batch), *PRODUCE_RETRIABLE)
    assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, last.base_offset)
    after = retrying(
        lambda: txn.produce(topic, 0, txn.batch(topic, 0, b"open-3")), *PRODUCE_RETRIABLE
    )
    assert (after.error_code, after.base_offset) == (ErrorCode.NONE, last.base_offset + 1)
    assert txn.end(commit=True).error_code == ErrorCode.NONE

    assert read(b.bootstrap, topic, 2, "read_committed") == [
        b"before-0",
        b"before-1",
        b"open-0",
        b"open-1",
        b"open-2",
        b"open-3",
        b"open-p1",
    ]


def test_a_commit_decided_before_kill_9_completes_after_the_restart(broker_factory) -> None:
    b = broker_factory()
    topic = unique_topic("txn-kill-commit")
    create_topic(b.bootstrap, topic, 2)
    txn = RawTransactions(b.port, unique_topic("txn-kill-commit-id"))
    assert txn.add_partitions(topic, 0, 1) == ErrorCode.NONE
    for partition in (0, 1):
        values = [f"c-{partition}-{i}".encode() for i in range(3)]
        assert txn.produce(topic, partition, txn.batch(topic, partition, *values)).error_code == 0
    # Answered once PrepareCommit is durable; the markers may not be written yet.
    assert txn.end(commit=True).error_code == ErrorCode.NONE
    b.kill()
    b.start()

    expected = [f"c-{p}-{i}".encode() for p in (0, 1) for i in range(3)]
    deadline = time.monotonic() + TIMEOUT_S
    while (seen := read(b.bootstrap, topic, 2, "read_committed")) != expected:
        assert not seen, f"part of a transaction is visible: {seen}"
        assert time.monotonic() < deadline, "the restarted coordinator never finished the commit"
        time.sleep(0.2)


def test_an_open_transaction_killed_with_its_broker_is_aborted_by_the_next_producer(
    broker_factory,
) -> None:
    b = broker_factory()
    topic = unique_topic("txn-kill-open")
    create_topic(b.bootstrap, topic, 2)
    transactional_id = unique_topic("txn-kill-open-id")
    old = RawTransactions(b.port, transactional_id)
    assert old.add_partitions(topic, 0, 1) == ErrorCode.NONE
    for partition in (0, 1):
        batch = old.batch(topic, partition, b"doomed-%d" % partition)
        assert old.produce(topic, partition, batch).error_code == 0
    b.kill()
    b.start()

    new = RawTransactions(b.port, transactional_id)  # InitProducerId fences and aborts `old`
    assert (new.producer_id, new.epoch) != (old.producer_id, old.epoch)
    old.reconnect()
    assert old.end(commit=True).error_code in (
        ErrorCode.PRODUCER_FENCED,
        ErrorCode.INVALID_PRODUCER_EPOCH,
    )
    assert new.add_partitions(topic, 0) == ErrorCode.NONE
    assert new.produce(topic, 0, new.batch(topic, 0, b"next")).error_code == 0
    assert new.end(commit=True).error_code == ErrorCode.NONE
    assert read(b.bootstrap, topic, 2, "read_committed") == [b"next"]
    assert sorted(read(b.bootstrap, topic, 2, "read_uncommitted")) == [
        b"doomed-0",
        b"doomed-1",
        b"next",
    ]


def end_transaction(producer: Producer) -> str:
    """Commit, retrying what is retriable; abort when the client says it must. The outcome."""
    deadline = time.monotonic() + TIMEOUT_S * 2
    while True:
        try:
            producer.commit_transaction(TIMEOUT_S)
            return "committed"
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.txn_requires_abort():
                producer.abort_transaction(TIMEOUT_S)
                return "aborted"
            if not error.retriable() or time.monotonic() > deadline:
                raise


def test_a_confluent_producer_ends_its_transaction_cleanly_across_kill_9(broker_factory) -> None:
    b = broker_factory()
    topic = unique_topic("txn-kill-client")
    create_topic(b.bootstrap, topic, 3)
    producer = Producer(
        {
            "bootstrap.servers": b.bootstrap,
            "transactional.id": unique_topic("txn-kill-client-id"),
            "linger.ms": 5,
        }
    )
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    first = [f"first-{i}".encode() for i in range(30)]
    for i, value in enumerate(first):
        producer.produce(topic, value, partition=i % 3)
    producer.flush(TIMEOUT_S)

    b.kill()
    b.start()
    outcome = end_transaction(producer)

    producer.begin_transaction()
    second = [f"second-{i}".encode() for i in range(30)]
    for i, value in enumerate(second):
        producer.produce(topic, value, partition=i % 3)
    assert end_transaction(producer) == "committed"

    seen = read(b.bootstrap, topic, 3, "read_committed")
    expected = (first if outcome == "committed" else []) + second
    assert sorted(seen) == sorted(expected), outcome
    assert len(seen) == len(set(seen))  # nothing twice


def test_the_same_retry_without_a_producer_id_is_written_twice(broker_factory: Any) -> None:
    """The negative control of the duplicate check: a batch without producer id, sent again
    after the same kill, is a second copy (a new offset, read twice)."""
    b = broker_factory()
    topic = unique_topic("txn-kill-plain")
    create_topic(b.bootstrap, topic, 1)
    txn = RawTransactions(b.port, unique_topic("txn-kill-plain-id"))
    batch = encode_batch([(None, b"plain", [])], timestamp_ms=int(time.time() * 1000))
    first = txn.produce(topic, 0, batch, plain=True)
    b.kill()
    b.start()
    txn.reconnect()
    retry = retrying(lambda: txn.produce(topic, 0, batch, plain=True), *PRODUCE_RETRIABLE)
    assert (first.error_code, retry.error_code) == (0, 0)
    assert retry.base_offset != first.base_offset
    assert read(b.bootstrap, topic, 1, "read_committed") == [b"plain", b"plain"]


COPY_RECORDS = 20_000
COPY_PARTITIONS = 4


def test_a_transactional_copier_copies_exactly_once_across_broker_kills(
    broker_factory, tmp_path: Path
) -> None:
    """txn_copier.py (see test_transactions_copier.py) copies 20,000 records while its broker
    is SIGKILLed twice in the middle and restarted: the coordinator reloads
    `__transaction_state`, finishes or aborts what was in flight, and the group's pending
    transactional offsets come back with `__consumer_offsets`. The read_committed output
    equals the input, partition by partition."""
    from test_transactions_copier import Copier, read_output

    b = broker_factory()
    source, target = unique_topic("kill-copy-in"), unique_topic("kill-copy-out")
    create_topic(b.bootstrap, source, COPY_PARTITIONS)
    create_topic(b.bootstrap, target, COPY_PARTITIONS)
    records = (
        {"key": f"k{i % 31}".encode(), "value": f"{i}".encode()} for i in range(COPY_RECORDS)
    )
    deliveries = produce(b.bootstrap, source, records, **{"enable.idempotence": True}).ok()
    expected: dict[int, list[bytes]] = {p: [] for p in range(COPY_PARTITIONS)}
    for d in sorted(deliveries, key=lambda d: (d.partition, d.offset)):
        expected[d.partition].append(d.value or b"")

    args = [b.bootstrap, source, target, str(COPY_PARTITIONS), unique_topic("kill-copy-group")]
    args += [unique_topic("kill-copy-txn"), "txn", "200"]
    copier = Copier(args)
    try:
        deadline = time.monotonic() + 120
        for commits in (3, 10):
            copier.wait_for("committed", commits, deadline)
            b.kill()
            b.start()
        copier.finish(max(1.0, deadline - time.monotonic()))
    finally:
        copier.close()
    output = read_output(b.bootstrap, target)
    for partition in range(COPY_PARTITIONS):
        assert output[partition] == expected[partition], f"partition {partition} differs"
