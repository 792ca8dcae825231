"""Partition replication across three `odradek serve` processes, over real sockets and files.

Node 1 is broker and the metadata quorum's only voter (the active controller); nodes 2 and 3 are
brokers that follow the quorum. All three register. One topic, replication factor 3 with node 1
leading (manual assignment), min.insync.replicas 2.

What a user would check: confluent-kafka produces with acks=all and idempotence, a consumer
reads everything back, and every replica's segment file holds the same bytes up to the high
watermark. SIGKILL one follower: acks=all goes on (ISR 2 >= min ISR 2). SIGKILL the second:
once the controller fences it the ISR is the leader alone and acks=all is refused
(NOT_ENOUGH_REPLICAS; librdkafka retries it until message.timeout.ms, then the delivery
fails), and an acks=1 record is written but stays above the high watermark (strict min ISR).
Restarted, the followers catch up, rejoin the ISR, and acks=all works again with every
replica identical. Negative controls: the segment comparison sees a replica that holds only part
of the log; the strict-min-ISR check fails against a leader whose high watermark is its log end
(tried, not committed).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaPythonPartition
from kafka.errors import NotEnoughReplicasError

from cluster_processes import free_port, produce_to_partition, read_partition, wait_until
from odradek.protocol.records import iter_batches

TOPIC = "replicated"
CLUSTER_ID = "replication-test-cluster-00"
TIMEOUT_S = 30.0
SEGMENT = "00000000000000000000.log"


def start_cluster(make: Callable[..., Any]) -> dict[int, Any]:
    ports = {node_id: free_port() for node_id in (1, 2, 3)}
    common = {
        "cluster.id": CLUSTER_ID,
        "controller.quorum.voters": f"1@127.0.0.1:{ports[1]}",
        "controller.quorum.election.timeout.ms": 500,
        "controller.quorum.fetch.timeout.ms": 1000,
        "broker.session.timeout.ms": 2000,
        "broker.heartbeat.interval.ms": 200,
        "replica.lag.time.max.ms": 3000,
        "replica.fetch.backoff.ms": 200,
        "auto.create.topics.enable": "false",
    }
    nodes = {
        node_id: make(
            {
                **common,
                "node.id": node_id,
                "process.roles": "broker,controller" if node_id == 1 else "broker",
            },
            port=port,
        )
        for node_id, port in ports.items()
    }
    for node in nodes.values():
        node.start()
    wait_until(lambda: brokers_listed(nodes[1]) == {1, 2, 3}, "every broker registered")
    return nodes


def brokers_listed(node: Any) -> set[int]:
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    try:
        return {b.id for b in admin.list_topics(timeout=5).brokers.values()}
    except Exception:
        return set()


def partition_state(node: Any) -> Any:
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    return admin.list_topics(TOPIC, timeout=5).topics[TOPIC].partitions[0]


def isr(node: Any) -> set[int]:
    try:
        return set(partition_state(node).isrs)
    except Exception:
        return set()


def produce(bootstrap: str, values: list[bytes], **config: Any) -> list[Any]:
    return produce_to_partition(bootstrap, TOPIC, values, TIMEOUT_S * 2, **config)


def consume(bootstrap: str, count: int) -> list[bytes]:
    return read_partition(bootstrap, TOPIC, count)


def high_watermark(bootstrap: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        partition = KafkaPythonPartition(TOPIC, 0)
        return int(consumer.end_offsets([partition])[partition])
    finally:
        consumer.close()


def segment_prefix(node: Any, end_offset: int) -> bytes:
    """The bytes of the node's first segment holding the batches below `end_offset`."""
    path = Path(node.data_dir) / f"{TOPIC}-0" / SEGMENT
    data = path.read_bytes() if path.exists() else b""
    length = 0
    for position, header in iter_batches(data):
        if header.base_offset >= end_offset:
            break
        length = position + header.size
    return data[:length]


def replicas_identical(nodes: dict[int, Any], end_offset: int) -> None:
    expected = segment_prefix(nodes[1], end_offset)
    assert expected
    for node_id in (2, 3):
        wait_until(
            lambda node_id=node_id: segment_prefix(nodes[node_id], end_offset) == expected,  # type: ignore[misc]
            f"replica {node_id} to hold the leader's bytes up to {end_offset}",
        )


def test_three_replicas_acks_all_kills_and_rejoin(unstarted_broker: Callable[..., Any]) -> None:
    nodes = start_cluster(unstarted_broker)
    bootstrap = nodes[1].bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics(
        [
            NewTopic(
                TOPIC,
                num_partitions=1,
                replica_assignment=[[1, 2, 3]],
                config={"min.insync.replicas": "2"},
            )
        ],
        request_timeout=15,
    )[TOPIC].result(timeout=20)
    wait_until(lambda: isr(nodes[1]) == {1, 2, 3}, "isr 1,2,3")

    values = [f"value-{i}".encode() for i in range(600)]
    for start in range(0, len(values), 200):  # a few batches at least
        chunk = values[start : start + 200]
        assert produce(bootstrap, chunk) == [None] * len(chunk)
    assert consume(bootstrap, len(values)) == values
    end = high_watermark(bootstrap)
    assert end == len(values)
    replicas_identical(nodes, end)
    # negative control: a replica holding only part of the log is seen
    assert segment_prefix(nodes[2], 1) != segment_prefix(nodes[1], end)

    # one follower killed: ISR 1,3 (>= min ISR 2), acks=all goes on
    nodes[2].kill()
    more = [f"more-{i}".encode() for i in range(100)]
    assert produce(bootstrap, more) == [None] * len(more)
    wait_until(lambda: isr(nodes[1]) == {1, 3}, "isr 1,3")

    # the second killed: fenced by the controller, the ISR is the leader alone: refused
    nodes[3].kill()
    wait_until(lambda: isr(nodes[1]) == {1}, "isr 1")
    # strict min ISR: an acks=1 record is written but not committed: consumers do not see it
    before = high_watermark(bootstrap)
    probe = KafkaProducer(bootstrap_servers=bootstrap, acks=1)
    try:
        probe.send(TOPIC, b"probe", partition=0).get(timeout=TIMEOUT_S)
    finally:
        probe.close()
    assert high_watermark(bootstrap) == before
    failed = produce(bootstrap, [b"refused"], **{"message.timeout.ms": 3000})
    assert failed[0] is not None  # retried NOT_ENOUGH_REPLICAS until it timed out
    strict = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0)
    try:
        try:
            strict.send(TOPIC, b"refused too", partition=0).get(timeout=TIMEOUT_S)
            raise AssertionError("acks=all was accepted with the ISR below min.insync.replicas")
        except NotEnoughReplicasError:
            pass
    finally:
        strict.close()

    # restarted: they catch up and rejoin; acks=all works again, every replica identical
    nodes[2].start()
    nodes[3].start()
    wait_until(lambda: isr(nodes[1]) == {1, 2, 3}, "isr 1,2,3 again")
    last = [f"last-{i}".encode() for i in range(100)]
    assert produce(bootstrap, last) == [None] * len(last)
    everything = values + more + [b"probe"] + last
    assert consume(bootstrap, len(everything)) == everything
    replicas_identical(nodes, high_watermark(bootstrap))
