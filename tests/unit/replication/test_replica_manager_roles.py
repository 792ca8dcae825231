"""The replica manager gives each hosted partition the role the image names, serves produce
and consumer fetches only where it leads, and keeps high watermarks in
replication-offset-checkpoint across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from odradek.common.clock import FakeClock
from odradek.common.config import BrokerConfig
from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.image import MetadataImage
from odradek.metadata.records import PartitionRecord, TopicRecord
from odradek.protocol import records
from odradek.replication.replica_manager import ReplicaManager
from odradek.storage.checkpoints import REPLICATION_OFFSET_CHECKPOINT, read_offsets_checkpoint
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import LogConfig
from odradek.storage.log_manager import LogManager

DIR = Path("/data")
TOPIC_ID = b"\x07" * 16


def manager(fileio: LossyFileIO, node_id: int) -> ReplicaManager:
    logs = LogManager([DIR], LogConfig(), fileio=fileio, clock=FakeClock())
    logs.load()
    return ReplicaManager(node_id, BrokerConfig({"node.id": str(node_id)}), logs)


def image(leader: int, leader_epoch: int, replicas: tuple[int, ...] = (1, 2)) -> MetadataImage:
    return MetadataImage().apply(
        [
            TopicRecord("t", TOPIC_ID),
            PartitionRecord(0, TOPIC_ID, replicas, replicas, leader, leader_epoch),
        ]
    )


def batch() -> memoryview:
    return memoryview(bytearray(records.encode_batch([(None, b"v", [])], timestamp_ms=1_000)))


def test_the_image_leader_leads_and_the_others_follow() -> None:
    fileio = LossyFileIO()
    leader, follower = manager(fileio, 1), manager(LossyFileIO(), 2)
    for replica_manager in (leader, follower):
        replica_manager.apply_image(image(leader=1, leader_epoch=3))
    assert leader.leader("t", 0).is_leader
    assert leader.leader("t", 0).leader_epoch == 3
    with pytest.raises(KafkaError) as raised:
        follower.leader("t", 0)
    assert raised.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    hosted = follower.hosted("t", 0)
    assert hosted.leader_id == 1 and not hosted.is_leader
    # no leader (-1): a replica that neither leads nor fetches
    follower.apply_image(image(leader=-1, leader_epoch=4))
    assert follower.hosted("t", 0).leader_id == -1
    # the leadership moves here at a new epoch
    follower.apply_image(image(leader=2, leader_epoch=5))
    assert follower.leader("t", 0).leader_epoch == 5


def test_high_watermarks_survive_a_restart_in_the_checkpoint() -> None:
    fileio = LossyFileIO()
    first = manager(fileio, 2)
    first.apply_image(image(leader=1, leader_epoch=1))
    partition = first.hosted("t", 0)
    partition.append_as_follower(
        memoryview(bytearray(_leader_batches(3)))
    )  # offsets 0-2 as the leader wrote them
    partition.update_follower_high_watermark(2)
    first.log_manager.close()
    assert read_offsets_checkpoint(fileio, DIR / REPLICATION_OFFSET_CHECKPOINT) == {("t", 0): 2}
    second = manager(fileio, 2)
    second.apply_image(image(leader=1, leader_epoch=1))
    assert second.hosted("t", 0).high_watermark == 2


def test_a_single_replica_partition_leads_with_its_log_end_as_high_watermark() -> None:
    replica_manager = manager(LossyFileIO(), 1)
    replica_manager.apply_image(image(leader=1, leader_epoch=0, replicas=(1,)))
    partition = replica_manager.leader("t", 0)
    partition.append(batch())
    partition.append(batch())
    assert partition.high_watermark == 2


def _leader_batches(count: int) -> bytes:
    leader = manager(LossyFileIO(), 1)
    leader.apply_image(image(leader=1, leader_epoch=1))
    partition = leader.leader("t", 0)
    for _ in range(count):
        partition.append(batch())
    return bytes(partition.log.read(0, 1 << 20).records)
