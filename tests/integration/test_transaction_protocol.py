"""The transaction APIs over raw sockets: KIP-890 verification on the produce path, Kafka's
errors for bad AddPartitionsToTxn/TxnOffsetCommit requests, the batched verify-only form,
DescribeTransactions and ListTransactions, and lag against the last stable offset.

Requests are built with kio (`entity`) and sent on one connection (`Raw`); records are v2
batches built by hand, so each test controls producer id, epoch and sequence exactly.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka_helpers import create_topic, unique_topic
from test_groups_bad_input import Raw, entity

from odradek.common.errors import ErrorCode
from odradek.protocol.records import ATTR_TRANSACTIONAL, encode_batch
from odradek.testing.inspection import consumer_lag


def init(raw: Raw, transactional_id: str) -> tuple[int, int]:
    answer = raw.call(
        entity(
            "init_producer_id",
            4,
            "InitProducerIdRequest",
            transactional_id=transactional_id,
            transaction_timeout=60_000,
            producer_id=-1,
            producer_epoch=-1,
        )
    )
    assert answer.error_code == ErrorCode.NONE
    return answer.producer_id, answer.producer_epoch


def add_partitions(
    raw: Raw, tid: str, producer: tuple[int, int], partitions: list[tuple[str, int]], version=3
) -> dict[tuple[str, int], ErrorCode]:
    by_topic: dict[str, list[int]] = {}
    for topic, index in partitions:
        by_topic.setdefault(topic, []).append(index)
    topics = tuple(
        entity("add_partitions_to_txn", version, "AddPartitionsToTxnTopic", name=t, partitions=ps)
        for t, ps in by_topic.items()
    )
    answer = raw.call(
        entity(
            "add_partitions_to_txn",
            version,
            "AddPartitionsToTxnRequest",
            v3_and_below_transactional_id=tid,
            v3_and_below_producer_id=producer[0],
            v3_and_below_producer_epoch=producer[1],
            v3_and_below_topics=topics,
        )
    )
    return {
        (topic.name, p.partition_index): p.partition_error_code
        for topic in answer.results_by_topic_v3_and_below
        for p in topic.results_by_partition
    }


def end_txn(raw: Raw, tid: str, producer: tuple[int, int], commit: bool) -> ErrorCode:
    answer = raw.call(
        entity(
            "end_txn",
            3,
            "EndTxnRequest",
            transactional_id=tid,
            producer_id=producer[0],
            producer_epoch=producer[1],
            committed=commit,
        )
    )
    return ErrorCode(answer.error_code)


def produce(
    raw: Raw, tid: str | None, topic: str, batch: bytes, version: int = 9, index: int = 0
) -> Any:
    request = entity(
        "produce",
        version,
        "ProduceRequest",
        transactional_id=tid,
        acks=-1,
        timeout=10_000,
        topic_data=(
            entity(
                "produce",
                version,
                "TopicProduceData",
                name=topic,
                partition_data=(
                    entity("produce", version, "PartitionProduceData", index=index, records=batch),
                ),
            ),
        ),
    )
    (topic_response,) = raw.call(request).responses
    (partition_response,) = topic_response.partition_responses
    return partition_response


def txn_batch(producer: tuple[int, int], sequence: int, count: int = 2) -> bytes:
    return encode_batch(
        [(b"k", b"v%d" % (sequence + i), []) for i in range(count)],
        producer_id=producer[0],
        producer_epoch=producer[1],
        base_sequence=sequence,
        timestamp_ms=int(time.time() * 1000),
        attributes=ATTR_TRANSACTIONAL,
    )


def wait_done(raw: Raw, tid: str, timeout_s: float = 10) -> str:
    """The id's state once its transaction has completed (markers written)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = describe(raw, [tid])[0].transaction_state
        if state in ("CompleteCommit", "CompleteAbort", "Empty") or time.monotonic() > deadline:
            return str(state)
        time.sleep(0.05)


def describe(raw: Raw, ids: list[str]) -> Any:
    answer = raw.call(
        entity("describe_transactions", 0, "DescribeTransactionsRequest", transactional_ids=ids)
    )
    return answer.transaction_states


@pytest.fixture
def raw(broker) -> Raw:
    return Raw(broker.port)


@pytest.fixture
def topic(broker) -> str:
    name = unique_topic("txn-raw")
    create_topic(broker.bootstrap, name, 1)
    return name


def test_a_transactional_batch_needs_its_partition_added_to_the_transaction(
    raw: Raw, topic: str
) -> None:
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    producer = init(raw, tid)
    refused = produce(raw, tid, topic, txn_batch(producer, 0))
    assert refused.error_code == ErrorCode.INVALID_TXN_STATE
    assert add_partitions(raw, tid, producer, [(topic, 0)]) == {(topic, 0): ErrorCode.NONE}
    assert produce(raw, tid, topic, txn_batch(producer, 0)).error_code == ErrorCode.NONE
    assert produce(raw, tid, topic, txn_batch(producer, 2)).error_code == ErrorCode.NONE


def test_a_batch_arriving_after_its_transaction_ended_cannot_open_a_hanging_one(
    raw: Raw, broker, topic: str
) -> None:
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    producer = init(raw, tid)
    assert add_partitions(raw, tid, producer, [(topic, 0)]) == {(topic, 0): ErrorCode.NONE}
    assert produce(raw, tid, topic, txn_batch(producer, 0)).error_code == ErrorCode.NONE
    assert end_txn(raw, tid, producer, commit=False) == ErrorCode.NONE
    assert wait_done(raw, tid) == "CompleteAbort"
    late = produce(raw, tid, topic, txn_batch(producer, 2))
    assert late.error_code == ErrorCode.INVALID_TXN_STATE
    # Produce v11 clients understand the newer error (KIP-1050's TRANSACTION_ABORTABLE)
    assert produce(raw, tid, topic, txn_batch(producer, 2), 11).error_code == (
        ErrorCode.TRANSACTION_ABORTABLE
    )
    # nothing is left open: a read_committed reader reaches the end of the log
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "lso",
            "isolation.level": "read_committed",
        }
    )
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.close()
    assert high == 3  # two aborted records and the marker; the late batch was refused


def test_a_fenced_producer_is_told_its_epoch_is_old_before_it_writes(raw: Raw, topic: str) -> None:
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    old = init(raw, tid)
    new = init(raw, tid)
    assert new == (old[0], old[1] + 1)
    assert produce(raw, tid, topic, txn_batch(old, 0)).error_code == (
        ErrorCode.INVALID_PRODUCER_EPOCH
    )
    assert add_partitions(raw, tid, old, [(topic, 0)]) == {(topic, 0): ErrorCode.PRODUCER_FENCED}
    assert add_partitions(raw, tid, old, [(topic, 0)], version=1) == {
        (topic, 0): ErrorCode.INVALID_PRODUCER_EPOCH  # what clients before v2 understand
    }


def test_adding_an_unknown_partition_adds_none_of_them(raw: Raw, topic: str) -> None:
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    producer = init(raw, tid)
    errors = add_partitions(raw, tid, producer, [(topic, 0), (topic, 7), ("no-such-topic", 0)])
    assert errors == {
        (topic, 0): ErrorCode.OPERATION_NOT_ATTEMPTED,
        (topic, 7): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ("no-such-topic", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    }
    # none was added: once the existing one is, it is the transaction's only partition
    assert add_partitions(raw, tid, producer, [(topic, 0)]) == {(topic, 0): ErrorCode.NONE}
    assert [(t.topic, t.partitions) for t in describe(raw, [tid])[0].topics] == [(topic, (0,))]
    unknown = add_partitions(raw, "never-initialised", producer, [(topic, 0)])
    assert unknown == {(topic, 0): ErrorCode.INVALID_PRODUCER_ID_MAPPING}


def test_batched_requests_verify_or_add_per_transaction(raw: Raw, broker, topic: str) -> None:
    other = unique_topic("txn-raw-other")
    create_topic(broker.bootstrap, other, 1)
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    producer = init(raw, tid)
    add_partitions(raw, tid, producer, [(topic, 0)])

    def call(verify_only: bool, *topics: str) -> dict[tuple[str, int], ErrorCode]:
        transaction = entity(
            "add_partitions_to_txn",
            5,
            "AddPartitionsToTxnTransaction",
            transactional_id=tid,
            producer_id=producer[0],
            producer_epoch=producer[1],
            verify_only=verify_only,
            topics=tuple(
                entity(
                    "add_partitions_to_txn", 5, "AddPartitionsToTxnTopic", name=t, partitions=(0,)
                )
                for t in topics
            ),
        )
        answer = raw.call(
            entity(
                "add_partitions_to_txn", 5, "AddPartitionsToTxnRequest", transactions=(transaction,)
            )
        )
        assert answer.error_code == ErrorCode.NONE
        (result,) = answer.results_by_transaction
        assert result.transactional_id == tid
        return {
            (t.name, p.partition_index): p.partition_error_code
            for t in result.topic_results
            for p in t.results_by_partition
        }

    assert call(True, topic, other) == {
        (topic, 0): ErrorCode.NONE,
        (other, 0): ErrorCode.TRANSACTION_ABORTABLE,
    }
    assert call(False, other) == {(other, 0): ErrorCode.NONE}
    assert call(True, topic, other) == {(topic, 0): ErrorCode.NONE, (other, 0): ErrorCode.NONE}


def test_describe_and_list_transactions(raw: Raw, topic: str) -> None:
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    producer = init(raw, tid)
    add_partitions(raw, tid, producer, [(topic, 0)])
    (state,) = describe(raw, [tid])
    assert (state.error_code, state.transaction_state) == (ErrorCode.NONE, "Ongoing")
    assert (state.producer_id, state.producer_epoch) == producer
    assert [(t.topic, t.partitions) for t in state.topics] == [(topic, (0,))]
    listing = raw.call(
        entity(
            "list_transactions",
            1,
            "ListTransactionsRequest",
            state_filters=("Ongoing", "Bogus"),
            producer_id_filters=(),
            duration_filter=-1,
        )
    )
    assert listing.error_code == ErrorCode.NONE
    assert listing.unknown_state_filters == ("Bogus",)
    assert tid in {t.transactional_id for t in listing.transaction_states}
    assert end_txn(raw, tid, producer, commit=True) == ErrorCode.NONE
    assert wait_done(raw, tid) == "CompleteCommit"


def test_lag_of_a_read_committed_group_is_measured_against_the_last_stable_offset(
    broker, topic: str
) -> None:
    group = f"lag-{uuid.uuid4().hex[:8]}"
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        plain.produce(topic, value=b"%d" % i, partition=0)
    plain.flush(10)
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    consumer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    consumer.close()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": group})
    producer.init_transactions(10)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=b"t%d" % i, partition=0)
    producer.flush(10)
    assert consumer_lag(broker.bootstrap, group, [topic]) == {(topic, 0): 3}
    assert consumer_lag(broker.bootstrap, group, [topic], read_committed=True) == {(topic, 0): 0}
    producer.commit_transaction(10)
    assert consumer_lag(broker.bootstrap, group, [topic], read_committed=True) == {(topic, 0): 4}


# --- transaction version 2 (KIP-890 part 2) -----------------------------------------------------


def end_txn_v5(raw: Raw, tid: str, producer: tuple[int, int], commit: bool) -> Any:
    return raw.call(
        entity(
            "end_txn",
            5,
            "EndTxnRequest",
            transactional_id=tid,
            producer_id=producer[0],
            producer_epoch=producer[1],
            committed=commit,
        )
    )


def test_transaction_version_2_is_finalized_in_api_versions(raw: Raw) -> None:
    answer = raw.call(
        entity(
            "api_versions",
            3,
            "ApiVersionsRequest",
            client_software_name="raw",
            client_software_version="1",
        )
    )
    finalized = {f.name: f.max_version_level for f in answer.finalized_features}
    supported = {f.name: (f.min_version, f.max_version) for f in answer.supported_features}
    assert finalized["transaction.version"] == 2
    assert supported["transaction.version"] == (0, 2)
    versions = {k.api_key: k.max_version for k in answer.api_keys}
    assert (versions[0], versions[26], versions[28]) == (12, 5, 5)


def test_every_end_bumps_the_epoch_so_a_delayed_end_txn_cannot_end_the_next_transaction(
    raw: Raw, broker, topic: str
) -> None:
    tid = f"tx2-{uuid.uuid4().hex[:8]}"
    first = init(raw, tid)
    # Produce v12 adds the partition itself: no AddPartitionsToTxn
    assert produce(raw, tid, topic, txn_batch(first, 0), 12).error_code == ErrorCode.NONE
    ended = end_txn_v5(raw, tid, first, commit=True)
    assert ended.error_code == ErrorCode.NONE
    second = (ended.producer_id, ended.producer_epoch)
    assert second == (first[0], first[1] + 1)
    assert wait_done(raw, tid) == "CompleteCommit"
    # a retry of that EndTxn (the response was lost) gets the same answer again
    retried = end_txn_v5(raw, tid, first, commit=True)
    assert (retried.error_code, retried.producer_epoch) == (ErrorCode.NONE, second[1])
    # the next transaction, at the new epoch, starts its sequences again
    assert produce(raw, tid, topic, txn_batch(second, 0), 12).error_code == ErrorCode.NONE
    # the old EndTxn arriving late now is fenced: it cannot commit or abort this transaction
    late = end_txn_v5(raw, tid, first, commit=False)
    assert late.error_code == ErrorCode.PRODUCER_FENCED
    assert describe(raw, [tid])[0].transaction_state == "Ongoing"
    # a late batch of the first transaction is refused for its old epoch
    assert produce(raw, tid, topic, txn_batch(first, 2), 12).error_code == (
        ErrorCode.INVALID_PRODUCER_EPOCH
    )
    finished = end_txn_v5(raw, tid, second, commit=True)
    assert (finished.error_code, finished.producer_epoch) == (ErrorCode.NONE, second[1] + 1)
    assert wait_done(raw, tid) == "CompleteCommit"
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": f"tv2-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 10
    while len(values) < 4 and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            values.append(message.value())
    consumer.close()
    assert values == [b"v0", b"v1", b"v0", b"v1"]  # both transactions, each once


def test_txn_offset_commit_v5_adds_the_group_partition_itself(raw: Raw, broker, topic: str) -> None:
    tid = f"tx2-{uuid.uuid4().hex[:8]}"
    group = f"g2-{uuid.uuid4().hex[:8]}"
    producer = init(raw, tid)

    def commit_offset(version: int, producer: tuple[int, int], offset: int) -> ErrorCode:
        answer = raw.call(
            entity(
                "txn_offset_commit",
                version,
                "TxnOffsetCommitRequest",
                transactional_id=tid,
                group_id=group,
                producer_id=producer[0],
                producer_epoch=producer[1],
                generation_id=-1,
                member_id="",
                group_instance_id=None,
                topics=(
                    entity(
                        "txn_offset_commit",
                        version,
                        "TxnOffsetCommitRequestTopic",
                        name=topic,
                        partitions=(
                            entity(
                                "txn_offset_commit",
                                version,
                                "TxnOffsetCommitRequestPartition",
                                partition_index=0,
                                committed_offset=offset,
                                committed_leader_epoch=-1,
                                committed_metadata="",
                            ),
                        ),
                    ),
                ),
            )
        )
        return ErrorCode(answer.topics[0].partitions[0].error_code)

    # v4 needs AddOffsetsToTxn first; v5 does it itself
    assert commit_offset(4, producer, 7) == ErrorCode.INVALID_TXN_STATE
    assert commit_offset(5, producer, 7) == ErrorCode.NONE
    ended = end_txn_v5(raw, tid, producer, commit=True)
    assert ended.error_code == ErrorCode.NONE
    assert wait_done(raw, tid) == "CompleteCommit"
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    consumer.close()
    assert committed.offset == 7


def write_markers(
    raw: Raw, producer: tuple[int, int], commit: bool, coordinator_epoch: int, partitions: list
) -> dict[tuple[str, int], ErrorCode]:
    by_topic: dict[str, list[int]] = {}
    for name, index in partitions:
        by_topic.setdefault(name, []).append(index)
    marker = entity(
        "write_txn_markers",
        1,
        "WritableTxnMarker",
        producer_id=producer[0],
        producer_epoch=producer[1],
        transaction_result=commit,
        coordinator_epoch=coordinator_epoch,
        topics=tuple(
            entity("write_txn_markers", 1, "WritableTxnMarkerTopic", name=n, partition_indexes=ps)
            for n, ps in by_topic.items()
        ),
    )
    answer = raw.call(entity("write_txn_markers", 1, "WriteTxnMarkersRequest", markers=(marker,)))
    return {
        (topic.name, p.partition_index): ErrorCode(p.error_code)
        for result in answer.markers
        for topic in result.topics
        for p in topic.partitions
    }


def last_stable_offset(raw: Raw, topic: str) -> int:
    answer = raw.call(
        entity(
            "list_offsets",
            5,
            "ListOffsetsRequest",
            replica_id=-1,
            isolation_level=1,
            topics=(
                entity(
                    "list_offsets",
                    5,
                    "ListOffsetsTopic",
                    name=topic,
                    partitions=(
                        entity(
                            "list_offsets",
                            5,
                            "ListOffsetsPartition",
                            partition_index=0,
                            current_leader_epoch=-1,
                            timestamp=-1,
                        ),
                    ),
                ),
            ),
        )
    )
    (partition,) = answer.topics[0].partitions
    assert partition.error_code == ErrorCode.NONE
    return int(partition.offset)


def test_write_txn_markers_ends_the_transaction_on_the_partitions_this_broker_leads(
    raw: Raw, topic: str
) -> None:
    """What a coordinator on another broker sends: the marker ends the producer's transaction
    here (the last stable offset reaches the log end); Kafka's errors for a partition this
    broker does not have and for a marker of an older coordinator epoch."""
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    producer = init(raw, tid)
    assert add_partitions(raw, tid, producer, [(topic, 0)]) == {(topic, 0): ErrorCode.NONE}
    assert produce(raw, tid, topic, txn_batch(producer, 0)).error_code == ErrorCode.NONE
    assert last_stable_offset(raw, topic) == 0  # the open transaction holds it back
    missing = unique_topic("txn-missing")
    answers = write_markers(raw, producer, True, 0, [(topic, 0), (missing, 0)])
    assert answers == {
        (topic, 0): ErrorCode.NONE,
        (missing, 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    }
    assert last_stable_offset(raw, topic) == 3  # two records and the marker
    assert write_markers(raw, producer, False, -1, [(topic, 0)]) == {
        (topic, 0): ErrorCode.TRANSACTION_COORDINATOR_FENCED
    }
    assert last_stable_offset(raw, topic) == 3
    # the coordinator ends the transaction as usual: its marker closes nothing more
    assert end_txn(raw, tid, producer, commit=True) == ErrorCode.NONE
    assert wait_done(raw, tid) == "CompleteCommit"
