"""A follower whose log ends before its leader's log start (retention or DeleteRecords moved it
while the follower was away) starts over, empty, at the leader's log start, and keeps
replicating from there; after a restart the log still starts there."""

from __future__ import annotations

from pathlib import Path

from odradek.common.clock import FakeClock
from odradek.protocol import records
from odradek.replication.partition import NO_LEADER, Partition
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import Log, LogConfig

NEVER = 2**62


def new_partition(fileio: LossyFileIO, node_id: int, directory: Path) -> Partition:
    fileio.mkdir(directory.parent)
    log = Log.open(directory, LogConfig(), fileio=fileio, clock=FakeClock())
    return Partition(
        "t",
        0,
        b"\x01" * 16,
        log,
        0,
        NEVER,
        node_id=node_id,
        replicas=(1, 2),
        leader_id=NO_LEADER,
    )


def batch(count: int) -> memoryview:
    return memoryview(
        bytearray(records.encode_batch([(None, b"v", [])] * count, timestamp_ms=1_000))
    )


def test_a_follower_behind_the_leaders_log_start_starts_over_there() -> None:
    leader = new_partition(LossyFileIO(), 1, Path("/leader/t-0"))
    leader.become_leader(1, 0, (1, 2), (1, 2))
    for _ in range(4):
        leader.append(batch(5))
    leader.log.roll()
    leader.append(batch(5))
    leader.log.delete_records_before(20)  # the first 20 records are gone on the leader

    disk = LossyFileIO()
    follower = new_partition(disk, 2, Path("/follower/t-0"))
    follower.become_follower(1, 1, 0, (1, 2), (1, 2))
    assert follower.log.log_end_offset == 0  # behind the leader's log start of 20

    follower.truncate_fully_and_start_at(leader.log.log_start_offset)
    assert (follower.log.log_start_offset, follower.log.log_end_offset) == (20, 20)
    fetched = leader.read_for_replica(2, 20, -1, 1, 20, 1 << 20, True)
    follower.append_as_follower(fetched.records)
    assert follower.log.log_end_offset == 25
    assert bytes(follower.log.read(20, 1 << 20).records) == bytes(
        leader.log.read(20, 1 << 20).records
    )
    follower.log.close()
    reopened = Log.open(Path("/follower/t-0"), LogConfig(), fileio=disk, clock=FakeClock())
    assert (reopened.log_start_offset, reopened.log_end_offset) == (20, 25)
