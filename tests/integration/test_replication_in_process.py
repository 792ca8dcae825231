"""Partition replication between three brokers in one process, over real sockets and files.

The metadata is built by hand (test_replication_cluster.py runs the real controller across
processes): every node gets the same records (brokers registered with their listeners, one
topic with replicas 1, 2, 3 led by 1, min.insync.replicas 2), and a stand-in controller channel
runs the real AlterPartition core (metadata/alter_partition.py) against the shared image and
hands the resulting records to every node, as the metadata log would. That lets the followers
run on in-memory disks that lose what was not fsync'd. Everything else is the real thing: the
follower fetch loops, Fetch v15 between the nodes, the leader's ISR and high watermark, acks=all
through confluent-kafka and kafka-python.

What a user would check: every acknowledged record can be consumed; every replica's log holds
the same bytes up to the high watermark; with one follower stopped acks=all still succeeds;
with two stopped (and fenced, as heartbeats would) acks=all fails with NOT_ENOUGH_REPLICAS;
restarted followers catch up and rejoin the ISR; after a power loss of both followers right
after the last acknowledgement (in-memory disks that drop what was not fsync'd), each still
holds every acknowledged byte. Negative controls: the byte comparison sees a replica that holds
only part of the log; the power-loss check sees a follower that appended without an fsync; the
consumers-see-only-committed check fails against a leader whose high watermark is its log end
(tried, not committed), and the power-loss check fails without the follower's fsync before its
next fetch (tried, not committed).
"""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kafka import KafkaProducer
from kafka.errors import NotEnoughReplicasError
from kio.index import load_payload_module
from kio.static.constants import EntityType

from cluster_processes import produce_to_partition, read_partition
from odradek.common.clock import SystemClock
from odradek.common.config import BrokerConfig
from odradek.common.errors import ErrorCode
from odradek.metadata.alter_partition import AlterPartitionItem, IsrMember, alter_partition
from odradek.metadata.image import MetadataImage
from odradek.metadata.records import (
    RESOURCE_TOPIC,
    BrokerEndpoint,
    ConfigRecord,
    FenceBrokerRecord,
    MetadataRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    TopicRecord,
)
from odradek.protocol.codec import Schema
from odradek.protocol.records import encode_batch
from odradek.server.node import Node
from odradek.storage.fileio import FileIO, LossyFileIO
from odradek.storage.log import Log, LogConfig
from odradek.transport.client import NodeClient

TOPIC = "replicated"
TOPIC_ID = bytes(range(1, 17))
NODES = (1, 2, 3)
TIMEOUT_S = 30.0
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Answer:
    error_code: int
    leader_id: int
    leader_epoch: int
    partition_epoch: int
    isr: tuple[int, ...]


class Cluster:
    """Three Nodes on one event loop in a background thread; metadata published by hand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nodes: dict[int, Node] = {}
        self.records: list[MetadataRecord] = []
        self.image = MetadataImage()
        self.epochs: dict[int, int] = {}

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT_S)

    def call(self, function: Callable[[], _T]) -> _T:
        async def wrapped() -> _T:
            return function()

        return self.run(wrapped())

    # --- nodes -------------------------------------------------------------------------------

    def start(self, node_id: int, fileio: FileIO | None = None) -> Node:
        config = BrokerConfig(
            {
                "node.id": str(node_id),
                "listeners": "PLAINTEXT://127.0.0.1:0",
                "log.dirs": str(self.root / f"node{node_id}"),
                "auto.create.topics.enable": "false",
                "replica.lag.time.max.ms": "1000",
                "replica.fetch.backoff.ms": "100",
            }
        )
        node = Node(config, fileio=fileio)
        self.run(node.start())
        epoch_base = (self.epochs.get(node_id, 0) + 1) * 1_000_000
        node.replica_manager.controller_channel = Channel(self, node_id)
        self.nodes[node_id] = node
        self.call(lambda: self._catch_up(node))
        # Producer ids come from each node's own metadata here (in a real cluster, blocks from
        # the controller): disjoint ranges, as clients ask any broker for one.
        self.call(
            lambda: self._apply_to(
                node, [ProducerIdsRecord(node_id, -1, node_id * 1_000_000_000 + epoch_base)]
            )
        )
        epoch = self.epochs.get(node_id, 0) + 1
        self.epochs[node_id] = epoch
        self.publish(
            [
                RegisterBrokerRecord(
                    node_id,
                    bytes(16),
                    epoch,
                    (BrokerEndpoint("PLAINTEXT", "127.0.0.1", node.bound_port, 0),),
                    fenced=False,
                )
            ]
        )
        return node

    def stop(self, node_id: int, *, fence: bool) -> None:
        node = self.nodes.pop(node_id)
        self.run(node.stop())
        if fence:  # what the controller does when the broker's heartbeats stop
            self.publish([FenceBrokerRecord(node_id, self.epochs[node_id])])

    def close(self) -> None:
        for node_id in list(self.nodes):
            self.stop(node_id, fence=False)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT_S)

    # --- metadata ----------------------------------------------------------------------------

    def publish(self, records: list[MetadataRecord]) -> None:
        self.call(lambda: self.apply(records))

    def apply(self, records: list[MetadataRecord]) -> None:
        """On the loop: every running node applies `records`, as a committed metadata batch."""
        if not records:
            return
        self.records.extend(records)
        self.image = self.image.apply(records)
        for node in self.nodes.values():
            self._apply_to(node, records)

    def _catch_up(self, node: Node) -> None:
        if self.records:
            self._apply_to(node, self.records)

    @staticmethod
    def _apply_to(node: Node, records: list[MetadataRecord]) -> None:
        quorum = node.quorum
        assert quorum is not None
        quorum.image = quorum.image.apply(records)
        node.replica_manager.apply_image(quorum.image)

    def partition(self, node_id: int) -> Any:
        return self.nodes[node_id].replica_manager.partitions[(TOPIC, 0)]

    def isr(self) -> tuple[int, ...]:
        return self.call(lambda: self.image.topics[TOPIC].partitions[0].isr)

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if self.call(condition):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def log_bytes(self, node_id: int, end_offset: int) -> bytes:
        def read() -> bytes:
            log = self.partition(node_id).log
            return bytes(log.read(0, 1 << 30, max_offset=end_offset).records)

        return self.call(read)


class Channel:
    """The node's way to the controller, here: the real AlterPartition core over the shared
    image, its records published to every node."""

    def __init__(self, cluster: Cluster, node_id: int) -> None:
        self.cluster = cluster
        self.node_id = node_id

    async def alter_partition(
        self,
        topic_id: bytes,
        partition: int,
        leader_epoch: int,
        partition_epoch: int,
        new_isr: tuple[int, ...],
    ) -> Answer:
        cluster = self.cluster
        records, outcomes = alter_partition(
            cluster.image,
            self.node_id,
            cluster.epochs[self.node_id],
            [
                AlterPartitionItem(
                    topic_id,
                    partition,
                    leader_epoch,
                    partition_epoch,
                    tuple(IsrMember(b) for b in new_isr),
                )
            ],
            min_isr_default=1,
        )
        cluster.apply(records)
        outcome = outcomes[0]
        state = outcome.partition
        if state is None:
            return Answer(outcome.error, -1, -1, -1, ())
        return Answer(
            outcome.error, state.leader, state.leader_epoch, state.partition_epoch, state.isr
        )


TOPIC_RECORDS: list[MetadataRecord] = [
    TopicRecord(TOPIC, TOPIC_ID),
    PartitionRecord(0, TOPIC_ID, NODES, NODES, leader=1, leader_epoch=1),
    ConfigRecord(RESOURCE_TOPIC, TOPIC, "min.insync.replicas", "2"),
]


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    built = Cluster(tmp_path)
    try:
        for node_id in NODES:
            built.start(node_id)
        built.publish(TOPIC_RECORDS)
        yield built
    finally:
        built.close()


@pytest.fixture
def lossy_cluster(tmp_path: Path) -> Any:
    """Followers 2 and 3 on in-memory disks that lose what was not fsync'd on `crash()`."""
    built = Cluster(tmp_path)
    disks = {2: LossyFileIO(), 3: LossyFileIO()}
    try:
        built.start(1)
        for node_id, disk in disks.items():
            built.start(node_id, disk)
        built.publish(TOPIC_RECORDS)
        yield built, disks
    finally:
        built.close()


def produce_all(bootstrap: str, values: list[bytes], **config: Any) -> list[Any]:
    return produce_to_partition(bootstrap, TOPIC, values, TIMEOUT_S, **config)


def consume_all(bootstrap: str, count: int) -> list[bytes]:
    return read_partition(bootstrap, TOPIC, count)


def replicas_identical(cluster: Cluster, node_ids: tuple[int, ...]) -> None:
    """Every replica holds the leader's bytes up to the leader's high watermark."""
    high_watermark = cluster.call(lambda: cluster.partition(1).high_watermark)
    cluster.wait_for(
        lambda: all(cluster.partition(n).log.log_end_offset >= high_watermark for n in node_ids),
        "the followers to reach the high watermark",
    )
    expected = cluster.log_bytes(1, high_watermark)
    assert expected
    for node_id in node_ids:
        assert cluster.log_bytes(node_id, high_watermark) == expected, f"replica {node_id}"


def test_acks_all_records_are_on_every_replica_and_survive_follower_loss(
    cluster: Cluster,
) -> None:
    bootstrap = f"127.0.0.1:{cluster.nodes[1].bound_port}"
    values = [f"value-{i}".encode() for i in range(300)]
    for start in range(0, len(values), 100):  # a few batches at least
        chunk = values[start : start + 100]
        assert produce_all(bootstrap, chunk) == [None] * len(chunk)
    assert consume_all(bootstrap, len(values)) == values
    replicas_identical(cluster, NODES)
    high_watermark = cluster.call(lambda: cluster.partition(1).high_watermark)
    assert high_watermark == cluster.call(lambda: cluster.partition(1).log.log_end_offset)

    # negative control: the comparison sees a replica holding only part of the log
    assert cluster.log_bytes(2, 1) != cluster.log_bytes(1, high_watermark)

    # one follower down: once it lags (replica.lag.time.max.ms) the ISR shrinks to 2, which
    # is min.insync.replicas, and the acks=all records waiting on it are acknowledged
    cluster.stop(3, fence=False)
    more = [f"more-{i}".encode() for i in range(50)]
    assert produce_all(bootstrap, more) == [None] * len(more)
    assert cluster.isr() == (1, 2)

    # two down (and fenced): an append makes the leader drop the second one too; the ISR is
    # the leader alone, below min ISR: acks=all is refused before anything is written
    cluster.stop(2, fence=True)
    probe = KafkaProducer(bootstrap_servers=bootstrap, acks=1)
    try:
        probe.send(TOPIC, b"probe", partition=0).get(timeout=TIMEOUT_S)
    finally:
        probe.close()
    cluster.wait_for(lambda: cluster.image.topics[TOPIC].partitions[0].isr == (1,), "isr 1")
    # strict min ISR: the probe is in the leader's log but not committed, consumers don't see it
    leader = cluster.call(lambda: cluster.partition(1))
    assert cluster.call(lambda: leader.high_watermark < leader.log.log_end_offset)
    failed = produce_all(bootstrap, [b"refused"], **{"message.timeout.ms": 3000})
    assert failed[0] is not None  # librdkafka retried NOT_ENOUGH_REPLICAS until it timed out
    strict = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0)
    try:
        with pytest.raises(NotEnoughReplicasError):
            strict.send(TOPIC, b"refused too", partition=0).get(timeout=TIMEOUT_S)
    finally:
        strict.close()
    before = cluster.call(lambda: cluster.partition(1).high_watermark)

    # restarted, the followers catch up and rejoin the ISR; acks=all works again
    cluster.start(2)
    cluster.start(3)
    cluster.wait_for(
        lambda: cluster.image.topics[TOPIC].partitions[0].isr == (1, 2, 3), "isr 1,2,3"
    )
    last = [f"last-{i}".encode() for i in range(50)]
    assert produce_all(bootstrap, last) == [None] * len(last)
    assert cluster.call(lambda: cluster.partition(1).high_watermark) > before
    everything = consume_all(bootstrap, len(values) + len(more) + 1 + len(last))
    assert everything == values + more + [b"probe"] + last
    replicas_identical(cluster, NODES)


def _schema(api_key: int, version: int) -> Schema:
    return Schema(load_payload_module(api_key, version, EntityType.request))


async def _send(port: int, request: Any) -> Any:
    client = NodeClient("127.0.0.1", port)
    try:
        return await client.send(request, timeout_ms=10_000)
    finally:
        await client.close()


def test_only_the_leader_takes_produce_and_consumer_fetches(cluster: Cluster) -> None:
    produce = _schema(0, 9)
    batch = encode_batch([(None, b"x", [])], timestamp_ms=1_000)
    produce_request = produce.ProduceRequest(
        transactional_id=None,
        acks=1,
        timeout=datetime.timedelta(seconds=5),
        topic_data=(
            produce.TopicProduceData(
                name=TOPIC,
                partition_data=(produce.PartitionProduceData(index=0, records=batch),),
            ),
        ),
    )
    fetch = _schema(1, 12)
    fetch_request = fetch.FetchRequest(
        cluster_id=None,
        replica_id=-1,
        max_wait=datetime.timedelta(milliseconds=10),
        min_bytes=1,
        max_bytes=1 << 20,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=(
            fetch.FetchTopic(
                topic=TOPIC,
                partitions=(
                    fetch.FetchPartition(
                        partition=0,
                        current_leader_epoch=-1,
                        fetch_offset=0,
                        last_fetched_epoch=-1,
                        log_start_offset=-1,
                        partition_max_bytes=1 << 20,
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="",
    )

    def codes(node_id: int) -> tuple[int, int]:
        port = cluster.nodes[node_id].bound_port
        produced = cluster.run(_send(port, produce_request))
        fetched = cluster.run(_send(port, fetch_request))
        return (
            int(produced.responses[0].partition_responses[0].error_code),
            int(fetched.responses[0].partitions[0].error_code),
        )

    not_leader = int(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert codes(2) == (not_leader, not_leader)
    assert codes(3) == (not_leader, not_leader)
    assert codes(1) == (0, 0)  # control: the leader takes both


def surviving_bytes(cluster: Cluster, disk: LossyFileIO, node_id: int, end: int) -> bytes:
    """What a replica's log holds below `end` when opened from its disk after a crash."""
    directory = cluster.root / f"node{node_id}" / f"{TOPIC}-0"
    log = Log.open(directory, LogConfig(), fileio=disk, clock=SystemClock())
    try:
        return bytes(log.read(0, 1 << 30, max_offset=end).records)
    finally:
        log.close(flush=False)


def test_acknowledged_records_survive_power_loss_of_every_follower(lossy_cluster: Any) -> None:
    cluster, disks = lossy_cluster
    bootstrap = f"127.0.0.1:{cluster.nodes[1].bound_port}"
    values = [f"durable-{i}".encode() for i in range(200)]
    for start in range(0, len(values), 50):
        chunk = values[start : start + 50]
        assert produce_all(bootstrap, chunk) == [None] * len(chunk)
    acknowledged = cluster.call(lambda: cluster.partition(1).high_watermark)
    assert acknowledged == len(values)
    expected = cluster.log_bytes(1, acknowledged)

    async def power_loss() -> None:
        for node_id, disk in disks.items():
            disk.crash()  # both followers at once, right after the last acknowledgement
            await cluster.nodes[node_id].replica_manager.stop()

    cluster.run(power_loss())
    for node_id, disk in disks.items():
        assert surviving_bytes(cluster, disk, node_id, acknowledged) == expected, node_id

    # negative control: a follower that appended the same batches without an fsync loses them
    unsynced = LossyFileIO()
    directory = cluster.root / "unsynced" / f"{TOPIC}-0"
    unsynced.mkdir(directory.parent)
    log = Log.open(directory, LogConfig(), fileio=unsynced, clock=SystemClock())
    log.append_as_follower(expected)
    unsynced.crash()
    reopened = Log.open(directory, LogConfig(), fileio=unsynced, clock=SystemClock())
    assert bytes(reopened.read(0, 1 << 30, max_offset=acknowledged).records) != expected
