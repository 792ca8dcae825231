"""A partition as leader with followers and as follower, over a real log: reads for replicas go
to the log end, the follower's fetch offset moves the high watermark and releases acks=all
waits, the ISR grows through AlterPartition, followers refuse produce, and a leader alone keeps
its high watermark at its log end as before replication."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from odradek.common.clock import FakeClock
from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol import records
from odradek.replication.partition import NO_LEADER, Partition
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import Log, LogConfig

NEVER = 2**62


def new_partition(
    clock: FakeClock,
    node_id: int = 1,
    replicas: tuple[int, ...] = (1, 2, 3),
    isr: tuple[int, ...] = (1, 2, 3),
    min_isr: int = 1,
) -> Partition:
    log = Log.open(Path(f"/data{node_id}/t-0"), LogConfig(), fileio=LossyFileIO(), clock=clock)
    return Partition(
        "t",
        0,
        b"\x01" * 16,
        log,
        0,
        NEVER,
        min_isr,
        isr,
        node_id=node_id,
        replicas=replicas,
        leader_id=NO_LEADER,
    )


def batch(count: int = 1) -> memoryview:
    return memoryview(
        bytearray(records.encode_batch([(None, b"v", [])] * count, timestamp_ms=1_000))
    )


def test_a_leader_alone_has_its_high_watermark_at_its_log_end() -> None:
    p = new_partition(FakeClock(), replicas=(1,), isr=(1,))
    p.become_leader(0, 0, (1,), (1,))
    p.append(batch(3))
    assert p.high_watermark == 3


def test_a_leader_alone_that_gets_followers_keeps_its_high_watermark() -> None:
    p = new_partition(FakeClock(), replicas=(1,), isr=(1,))
    p.become_leader(0, 0, (1,), (1,))
    p.append(batch(3))
    p.become_leader(0, 1, (1, 2), (1,))
    assert p.high_watermark == 3


def test_the_high_watermark_waits_for_every_isr_follower() -> None:
    clock = FakeClock()
    p = new_partition(clock)
    p.become_leader(1, 0, (1, 2, 3), (1, 2, 3))
    p.append(batch(5))
    assert p.high_watermark == 0
    read = p.read_for_replica(2, 0, -1, 1, 0, 1 << 20, True)
    assert len(read.records) > 0  # up to the log end, not the high watermark
    p.read_for_replica(2, 5, 1, 1, 0, 1 << 20, True)
    assert p.high_watermark == 0  # replica 3 has not fetched
    p.read_for_replica(3, 4, 1, 1, 0, 1 << 20, True)
    assert p.high_watermark == 4
    p.read_for_replica(3, 5, 1, 1, 0, 1 << 20, True)
    assert p.high_watermark == 5


def test_acks_all_waits_for_the_followers() -> None:
    async def run() -> tuple[bool, bool]:
        clock = FakeClock()
        p = new_partition(clock, replicas=(1, 2), isr=(1, 2))
        p.become_leader(1, 0, (1, 2), (1, 2))
        result = p.append(batch(2))
        waiter = asyncio.ensure_future(p.group_commit.wait_durable(result.last_offset + 1))
        for _ in range(20):
            await asyncio.sleep(0.01)  # the leader's own fsync runs in a worker thread
        before = waiter.done()
        p.read_for_replica(2, 2, 1, 1, 0, 1 << 20, True)
        await asyncio.wait_for(waiter, 5)
        return before, waiter.done()

    assert asyncio.run(run()) == (False, True)


def test_a_follower_fetch_that_catches_up_proposes_to_join_the_isr() -> None:
    clock = FakeClock()
    p = new_partition(clock, isr=(1, 2))
    proposals: list[tuple[int, ...]] = []
    p.alter_isr = lambda partition, proposed: proposals.append(proposed)
    p.become_leader(1, 4, (1, 2, 3), (1, 2))
    p.append(batch(3))
    p.read_for_replica(2, 3, 1, 1, 0, 1 << 20, True)
    assert p.high_watermark == 3
    p.read_for_replica(3, 2, 1, 1, 0, 1 << 20, True)
    assert proposals == []  # below the high watermark
    p.read_for_replica(3, 3, 1, 1, 0, 1 << 20, True)
    assert proposals == [(1, 2, 3)]
    p.read_for_replica(3, 3, 1, 1, 0, 1 << 20, True)
    assert proposals == [(1, 2, 3)]  # one in flight at a time
    p.on_alter_answer((1, 2, 3), ErrorCode.NONE, 1, 5, (1, 2, 3))
    assert p.isr == (1, 2, 3) and p.partition_epoch == 5


def test_strict_min_isr_holds_the_high_watermark_of_a_leader_left_alone() -> None:
    clock = FakeClock()
    p = new_partition(clock, isr=(1,), min_isr=2)
    p.become_leader(1, 0, (1, 2, 3), (1,))
    p.append(batch(3))
    assert p.high_watermark == 0
    assert p.under_min_isr()


def test_the_leader_shrinks_the_isr_of_a_follower_that_stopped_fetching() -> None:
    clock = FakeClock()
    p = new_partition(clock, replicas=(1, 2), isr=(1, 2))
    proposals: list[tuple[int, ...]] = []
    p.alter_isr = lambda partition, proposed: proposals.append(proposed)
    p.become_leader(1, 0, (1, 2), (1, 2))
    p.append(batch(1))
    clock.advance(p.replica_lag_time_max_ms)
    p.maybe_shrink_isr()
    assert proposals == []
    clock.advance(1)
    p.maybe_shrink_isr()
    assert proposals == [(1,)]


def test_a_replica_fetch_with_a_diverging_epoch_gets_no_records() -> None:
    clock = FakeClock()
    p = new_partition(clock, replicas=(1, 2), isr=(1, 2))
    p.become_leader(3, 0, (1, 2), (1, 2))
    p.append(batch(4))
    read = p.read_for_replica(2, 6, 2, 3, 0, 1 << 20, True)
    assert read.records == b"" and read.diverging_epoch is not None
    assert p.followers[2].log_end_offset == -1  # a diverging fetch does not count


def test_replica_fetches_are_checked_like_kafka() -> None:
    clock = FakeClock()
    p = new_partition(clock, replicas=(1, 2), isr=(1, 2))
    p.become_leader(3, 0, (1, 2), (1, 2))
    cases = [
        (dict(replica_id=2, current_leader_epoch=2), ErrorCode.FENCED_LEADER_EPOCH),
        (dict(replica_id=2, current_leader_epoch=4), ErrorCode.UNKNOWN_LEADER_EPOCH),
        (dict(replica_id=9, current_leader_epoch=3), ErrorCode.UNKNOWN_LEADER_EPOCH),
        (dict(replica_id=9, current_leader_epoch=-1), ErrorCode.NOT_LEADER_OR_FOLLOWER),
    ]
    for args, code in cases:
        with pytest.raises(KafkaError) as raised:
            p.read_for_replica(
                args["replica_id"], 0, -1, args["current_leader_epoch"], 0, 1 << 20, True
            )
        assert raised.value.code == code


def test_a_follower_refuses_produce_and_replica_fetches() -> None:
    clock = FakeClock()
    p = new_partition(clock, node_id=2)
    p.become_follower(1, 1, 0, (1, 2, 3), (1, 2, 3))
    with pytest.raises(KafkaError) as produced:
        p.append(batch())
    assert produced.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    with pytest.raises(KafkaError) as fetched:
        p.read_for_replica(3, 0, -1, 1, 0, 1 << 20, True)
    assert fetched.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER


def test_a_followers_high_watermark_is_the_leaders_capped_by_its_log_end() -> None:
    clock = FakeClock()
    leader = new_partition(clock)
    leader.become_leader(1, 0, (1, 2, 3), (1, 2, 3))
    leader.append(batch(4))
    follower = new_partition(clock, node_id=2)
    follower.become_follower(1, 1, 0, (1, 2, 3), (1, 2, 3))
    follower.append_as_follower(leader.read_for_replica(2, 0, -1, 1, 0, 1 << 20, True).records)
    follower.update_follower_high_watermark(9)
    assert follower.high_watermark == 4
    follower.update_follower_high_watermark(2)
    assert follower.high_watermark == 2


def test_losing_the_leadership_fails_acks_all_waits() -> None:
    async def run() -> int:
        clock = FakeClock()
        p = new_partition(clock, replicas=(1, 2), isr=(1, 2))
        p.become_leader(1, 0, (1, 2), (1, 2))
        p.append(batch())
        waiter = asyncio.ensure_future(p.wait_replicated(1))
        await asyncio.sleep(0)
        p.become_follower(2, 2, 1, (1, 2), (1, 2))
        with pytest.raises(KafkaError) as raised:
            await asyncio.wait_for(waiter, 5)
        return raised.value.code

    assert asyncio.run(run()) == ErrorCode.NOT_LEADER_OR_FOLLOWER


def test_coordinator_records_wait_for_the_followers_too() -> None:
    async def run() -> tuple[bool, bool]:
        p = new_partition(FakeClock(), replicas=(1, 2), isr=(1, 2))
        p.become_leader(1, 0, (1, 2), (1, 2))
        result, durable = p.append_coordinator_records([(b"k", b"v")], timestamp_ms=1_000)
        waiter = asyncio.ensure_future(durable)
        for _ in range(20):
            await asyncio.sleep(0.01)
        before = waiter.done()
        p.read_for_replica(2, result.last_offset + 1, 1, 1, 0, 1 << 20, True)
        await asyncio.wait_for(waiter, 5)
        return before, waiter.done()

    assert asyncio.run(run()) == (False, True)
