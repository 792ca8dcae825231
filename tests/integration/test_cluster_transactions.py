"""Transactions across the brokers of a cluster of three `odradek serve` processes.

Every topic here has replication factor 3 and min.insync.replicas 2, and so has
`__transaction_state` (its partitions, and so the transaction coordinators, spread over the
brokers). Each test picks transactional ids whose coordinator (FindCoordinator key_type 1) is a
broker that leads none of the data partitions the transaction writes, and asserts it, so the
coordinator must reach partition leaders on other brokers: KIP-890 verification of a
transactional batch (the leader asks the coordinator), and the transaction markers (the
coordinator sends WriteTxnMarkers to the leaders).

- confluent-kafka commits one transaction over partitions of two topics led by two other
  brokers and aborts the next: read_committed sees exactly the committed records,
  read_uncommitted both, and every partition holds both markers (the offsets skip them; the last
  stable offset reaches the log end).
- The transaction versions. librdkafka (2.16) speaks only transaction version 1: Produce up to
  v10, AddPartitionsToTxn v0, EndTxn v0-v1 (rdkafka_msgset_writer.c, rdkafka_request.c), so
  the confluent-kafka test is version 1. Raw requests cover both: a transactional batch sent to
  a partition leader (not the coordinator) before AddPartitionsToTxn is refused
  (INVALID_TXN_STATE for Produce v9, TRANSACTION_ABORTABLE from v11), accepted after it; with
  Produce v12 (version 2) the batch itself adds the partition and EndTxn v5 ends the
  transaction.
- KafkaJS (js/transactions.js) commits a transaction with group offsets over three partitions and
  aborts the next, its group coordinated by yet another broker: read_committed and
  read_uncommitted see what they should, and the group's offset is the committed one.
- WriteTxnMarkers (key 27) sent by hand (to a partition its transaction's coordinator leads,
  so it does not depend on verification across brokers): NOT_LEADER_OR_FOLLOWER from a follower,
  UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist, and at the leader a marker ends
  the producer's open transaction (the last stable offset moves to the log end).

One cluster serves the whole module; each test has topics of its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource
from kafka_helpers import admin, consume_all, require_kafkajs
from test_groups_bad_input import Raw, entity
from test_transaction_protocol import add_partitions, init
from test_transaction_protocol import produce as produce_to
from test_transactions_kafkajs import JS_DIR, run_script

from cluster_processes import (
    SESSION_TIMEOUT_MS,
    TRANSACTION_OVERRIDES,
    TRANSACTION_STATE_TOPIC,
    VOTERS,
    create_led_topic,
    group_coordinated_by,
    ids_coordinated_by,
    leader_of,
    live_port,
    module_cluster_nodes,
    partitions_of,
    stable_offsets,
    start_cluster,
    start_transaction_state,
    wait_stable,
)
from odradek.common.errors import ErrorCode
from odradek.protocol.records import ATTR_TRANSACTIONAL, encode_batch

TIMEOUT_S = 30.0
RECORDS = 20  # per partition and transaction
COORDINATOR = 3  # the transactions' coordinator: it leads no data partition
# (topic, partition) -> replicas, the first the preferred leader: brokers 1 and 2 lead
ASSIGNMENTS = {"orders": [[1, 2, 3], [2, 3, 1]], "payments": [[2, 1, 3]]}


@pytest.fixture(scope="module")
def unstarted_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    yield from module_cluster_nodes(tmp_path_factory)


@pytest.fixture(scope="module")
def cluster(unstarted_broker: Callable[..., Any]) -> dict[int, Any]:
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS, TRANSACTION_OVERRIDES)
    leaders = start_transaction_state(nodes)
    # the coordinators are spread: each broker coordinates some transactional ids
    assert set(leaders.values()) == set(VOTERS), leaders
    # three replicas of each partition (all in sync: start_transaction_state waited), two of
    # them needed for a write
    for partition in partitions_of(live_port(nodes), TRANSACTION_STATE_TOPIC).values():
        assert sorted(partition.replica_nodes) == sorted(VOTERS), partition
    resource = ConfigResource("topic", TRANSACTION_STATE_TOPIC)
    client = admin(nodes[VOTERS[0]].bootstrap)
    configs = client.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert configs["min.insync.replicas"].value == "2"
    return nodes


def data_topics(nodes: dict[int, Any], prefix: str) -> list[tuple[str, int]]:
    """Topics of `ASSIGNMENTS` (named after `prefix`) with full ISRs; their partitions, each
    checked to be led by a broker other than `COORDINATOR`, two leaders in all."""
    partitions = []
    leaders = set()
    for base, assignment in ASSIGNMENTS.items():
        topic = f"{prefix}-{base}-{uuid.uuid4().hex[:6]}"
        create_led_topic(nodes, topic, assignment)
        leaders |= {replicas[0] for replicas in assignment}
        partitions += [(topic, index) for index in range(len(assignment))]
    assert COORDINATOR not in leaders and len(leaders) == 2, leaders
    return partitions


def read_all(
    bootstrap: str, partitions: list[tuple[str, int]], isolation: str, timeout_s: float = TIMEOUT_S
) -> dict[tuple[str, int], list[tuple[int, bytes]]]:
    """(offset, value) of every record a consumer of `isolation` reads, by partition, from the
    start to the end of each."""
    out: dict[tuple[str, int], list[tuple[int, bytes]]] = {p: [] for p in partitions}
    for topic in dict.fromkeys(t for t, _ in partitions):
        indexes = [p for t, p in partitions if t == topic]
        records = consume_all(
            bootstrap,
            topic,
            partitions=indexes,
            timeout_s=timeout_s,
            **{"isolation.level": isolation},
        )
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            out[(topic, record.partition)].append((record.offset, record.value or b""))
    return out


def test_a_transaction_over_partitions_led_by_other_brokers_commits_and_aborts(
    cluster: dict[int, Any],
) -> None:
    nodes = cluster
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    partitions = data_topics(nodes, "ck")
    (tid,) = ids_coordinated_by(nodes, COORDINATOR, "ck-txn")
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5})
    producer.init_transactions(TIMEOUT_S)
    for outcome in ("committed", "aborted"):
        producer.begin_transaction()
        for topic, index in partitions:
            for i in range(RECORDS):
                value = f"{outcome}-{topic}-{index}-{i}".encode()
                producer.produce(topic, value=value, partition=index)
        if outcome == "committed":
            producer.commit_transaction(TIMEOUT_S)
        else:
            assert producer.flush(TIMEOUT_S) == 0  # the records are in the logs, then aborted
            producer.abort_transaction(TIMEOUT_S)

    def values(outcome: str, topic: str, index: int) -> list[bytes]:
        return [f"{outcome}-{topic}-{index}-{i}".encode() for i in range(RECORDS)]

    # both markers in every partition: committed records at 0..19, the commit marker at 20,
    # aborted records at 21..40, the abort marker at 41; the last stable offset is the end
    for topic, index in partitions:
        wait_stable(nodes, topic, index, 2 * RECORDS + 2)
    committed = read_all(bootstrap, partitions, "read_committed")
    everything = read_all(bootstrap, partitions, "read_uncommitted")
    for topic, index in partitions:
        assert committed[(topic, index)] == list(
            zip(range(RECORDS), values("committed", topic, index), strict=True)
        ), (topic, index)
        assert everything[(topic, index)] == committed[(topic, index)] + list(
            zip(range(RECORDS + 1, 2 * RECORDS + 1), values("aborted", topic, index), strict=True)
        ), (topic, index)


def txn_batch(producer: tuple[int, int], sequence: int, *values: bytes) -> bytes:
    return encode_batch(
        [(None, value, []) for value in values],
        producer_id=producer[0],
        producer_epoch=producer[1],
        base_sequence=sequence,
        timestamp_ms=int(time.time() * 1000),
        attributes=ATTR_TRANSACTIONAL,
    )


def produce(
    raw: Raw, tid: str | None, topic: str, index: int, batch: bytes, version: int
) -> ErrorCode:
    return ErrorCode(produce_to(raw, tid, topic, batch, version, index).error_code)


def add_partition(raw: Raw, tid: str, producer: tuple[int, int], topic: str, index: int) -> int:
    """AddPartitionsToTxn v3, as a client of transaction version 1 sends it."""
    return add_partitions(raw, tid, producer, [(topic, index)])[(topic, index)]


def end_txn(raw: Raw, tid: str, producer: tuple[int, int], version: int) -> Any:
    """A commit; retried while the coordinator still writes the markers of the last one."""
    request = entity(
        "end_txn",
        version,
        "EndTxnRequest",
        transactional_id=tid,
        producer_id=producer[0],
        producer_epoch=producer[1],
        committed=True,
    )
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        answer = raw.call(request)
        if answer.error_code != ErrorCode.CONCURRENT_TRANSACTIONS or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_a_leader_verifies_a_transactional_batch_with_a_coordinator_on_another_broker(
    cluster: dict[int, Any],
) -> None:
    nodes = cluster
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    partitions = data_topics(nodes, "verify")
    topic, index = partitions[0]
    leader = leader_of(nodes, topic, index)
    tv1, tv2 = ids_coordinated_by(nodes, COORDINATOR, "verify-txn", count=2)
    coordinator = Raw(nodes[COORDINATOR].port)
    at_leader = Raw(nodes[leader].port)

    # transaction version 1: the client adds the partition with AddPartitionsToTxn first
    producer = init(coordinator, tv1)
    first = txn_batch(producer, 0, b"tv1-0", b"tv1-1")
    # not added yet: the coordinator says so to the leader, which refuses the batch
    assert produce(at_leader, tv1, topic, index, first, 9) == ErrorCode.INVALID_TXN_STATE
    assert produce(at_leader, tv1, topic, index, first, 11) == ErrorCode.TRANSACTION_ABORTABLE
    assert stable_offsets(nodes, topic, index) == (0, 0)  # nothing was written
    assert add_partition(coordinator, tv1, producer, topic, index) == ErrorCode.NONE
    assert produce(at_leader, tv1, topic, index, first, 9) == ErrorCode.NONE
    assert stable_offsets(nodes, topic, index) == (0, 2)  # open: the stable offset stays
    assert end_txn(coordinator, tv1, producer, 3).error_code == ErrorCode.NONE
    wait_stable(nodes, topic, index, 3)  # the commit marker, written at the leader

    # transaction version 2: Produce v12 adds the partition (the leader asks the coordinator)
    producer = init(coordinator, tv2)
    second = txn_batch(producer, 0, b"tv2-0", b"tv2-1")
    assert produce(at_leader, tv2, topic, index, second, 12) == ErrorCode.NONE
    assert stable_offsets(nodes, topic, index) == (3, 5)
    ended = end_txn(coordinator, tv2, producer, 5)
    assert ended.error_code == ErrorCode.NONE
    assert (ended.producer_id, ended.producer_epoch) == (producer[0], producer[1] + 1)
    wait_stable(nodes, topic, index, 6)

    committed = read_all(bootstrap, [(topic, index)], "read_committed")[(topic, index)]
    assert committed == [(0, b"tv1-0"), (1, b"tv1-1"), (3, b"tv2-0"), (4, b"tv2-1")]


def write_marker(port: int, producer: tuple[int, int], topic: str, index: int) -> ErrorCode:
    """WriteTxnMarkers v1 of one commit marker, as a coordinator sends it to a leader."""
    from kio.schema.write_txn_markers.v1 import request as kio

    answer = Raw(port).call(
        kio.WriteTxnMarkersRequest(
            markers=(
                kio.WritableTxnMarker(
                    producer_id=producer[0],  # type: ignore[arg-type]
                    producer_epoch=producer[1],  # type: ignore[arg-type]
                    transaction_result=True,
                    topics=(
                        kio.WritableTxnMarkerTopic(
                            name=topic,  # type: ignore[arg-type]
                            partition_indexes=(index,),  # type: ignore[arg-type]
                        ),
                    ),
                    coordinator_epoch=0,  # type: ignore[arg-type]
                ),
            )
        )
    )
    (marker,) = answer.markers
    assert int(marker.producer_id) == producer[0]
    (result,) = marker.topics
    assert result.name == topic
    (partition,) = result.partitions
    assert int(partition.partition_index) == index
    return ErrorCode(partition.error_code)


def test_write_txn_markers_is_served_by_the_partition_leader_only(
    cluster: dict[int, Any],
) -> None:
    nodes = cluster
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    # The partition is led by the transaction's coordinator, so opening the transaction there
    # does not depend on verification across brokers: this test is about key 27 alone.
    topic, index = f"markers-{uuid.uuid4().hex[:6]}", 0
    create_led_topic(nodes, topic, [[COORDINATOR, 1, 2]])
    leader = leader_of(nodes, topic, index)
    follower = next(n for n in VOTERS if n != leader)
    (tid,) = ids_coordinated_by(nodes, COORDINATOR, "markers-txn")
    coordinator = Raw(nodes[COORDINATOR].port)
    producer = init(coordinator, tid)
    assert add_partition(coordinator, tid, producer, topic, index) == ErrorCode.NONE
    batch = txn_batch(producer, 0, b"m-0", b"m-1")
    assert produce(Raw(nodes[leader].port), tid, topic, index, batch, 9) == ErrorCode.NONE
    assert stable_offsets(nodes, topic, index) == (0, 2)  # the transaction is open

    # a replica that does not lead the partition, and a topic nobody has, refuse the marker
    assert write_marker(nodes[follower].port, producer, topic, index) == (
        ErrorCode.NOT_LEADER_OR_FOLLOWER
    )
    assert write_marker(nodes[leader].port, producer, f"absent-{uuid.uuid4().hex[:6]}", 0) == (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    )
    assert stable_offsets(nodes, topic, index) == (0, 2)  # still open
    # the leader writes it: a control batch that ends the open transaction
    assert write_marker(nodes[leader].port, producer, topic, index) == ErrorCode.NONE
    wait_stable(nodes, topic, index, 3)
    committed = read_all(bootstrap, [(topic, index)], "read_committed")[(topic, index)]
    assert committed == [(0, b"m-0"), (1, b"m-1")]


@pytest.fixture(scope="module")
def kafkajs_node() -> str:
    return require_kafkajs(JS_DIR)


def test_kafkajs_commits_and_aborts_with_offsets_over_three_brokers(
    cluster: dict[int, Any], kafkajs_node: str
) -> None:
    nodes = cluster
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    topic = f"kafkajs-{uuid.uuid4().hex[:6]}"
    # the three partitions transactions.js writes, led by brokers 1 and 2 (it finds the topic)
    create_led_topic(nodes, topic, [[1, 2, 3], [2, 3, 1], [1, 3, 2]])
    partitions = [(topic, index) for index in range(3)]
    (tid,) = ids_coordinated_by(nodes, COORDINATOR, "kafkajs-txn")
    group, _ = group_coordinated_by(nodes, [1, 2], "kafkajs-group")
    # one seed broker (the script's form); KafkaJS learns the others from Metadata
    result = run_script(kafkajs_node, nodes[1].bootstrap, topic, tid, group)
    assert all(m["errorCode"] == 0 for m in result["committedMetadata"]), result

    def split(sent: list[str]) -> dict[tuple[str, int], list[bytes]]:
        out: dict[tuple[str, int], list[bytes]] = {p: [] for p in partitions}
        for value in sent:  # "<outcome>-<partition>-<i>"
            out[(topic, int(value.split("-")[1]))].append(value.encode())
        return out

    committed, aborted = split(result["committed"]), split(result["aborted"])
    assert all(committed.values()) and all(aborted.values())  # every partition in both
    seen = read_all(bootstrap, partitions, "read_committed")
    assert {p: [v for _, v in seen[p]] for p in partitions} == committed
    everything = read_all(bootstrap, partitions, "read_uncommitted")
    assert {p: [v for _, v in everything[p]] for p in partitions} == {
        p: committed[p] + aborted[p] for p in partitions
    }
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]
    client = admin(bootstrap)  # must outlive its future
    future = client.list_consumer_group_offsets(request, require_stable=True)[group]
    (tp,) = future.result(TIMEOUT_S).topic_partitions
    assert (tp.error, tp.offset) == (None, 7)  # the committed transaction's, not the aborted's
