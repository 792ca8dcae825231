"""flush.messages and flush.ms for acks=0/1 appends: an fsync starts once that many messages
are unflushed, or once the oldest unflushed append is that old (checked by the node's flusher);
without either, only acks=all's group commit fsyncs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from odradek.common.clock import FakeClock
from odradek.protocol import records
from odradek.replication.partition import Partition
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import Log, LogConfig

NEVER = 2**62


def partition(clock: FakeClock, flush_messages: int = NEVER, flush_ms: int = NEVER) -> Partition:
    log = Log.open(Path("/data/t-0"), LogConfig(), fileio=LossyFileIO(), clock=clock)
    return Partition("t", 0, b"\x01" * 16, log, 0, flush_messages, flush_ms=flush_ms)


def append(p: Partition, count: int = 1) -> None:
    batch = records.encode_batch([(None, b"v", [])] * count, timestamp_ms=1_000)
    p.append(memoryview(bytearray(batch)))


async def settle() -> None:
    for _ in range(20):  # the fsync runs in a worker thread
        await asyncio.sleep(0.01)


def test_flush_ms_fsyncs_once_the_oldest_unflushed_append_is_that_old() -> None:
    async def run() -> list[int]:
        clock = FakeClock()
        p = partition(clock, flush_ms=100)
        seen = []
        append(p)
        clock.advance(60)
        append(p)  # the oldest unflushed append is still the first
        p.maybe_flush(clock.monotonic_ms())
        await settle()
        seen.append(p.log.recovery_point)  # 60 ms: not yet
        clock.advance(40)
        p.maybe_flush(clock.monotonic_ms())
        await settle()
        seen.append(p.log.recovery_point)  # 100 ms: both appends fsync'd
        p.maybe_flush(clock.monotonic_ms() + 10_000)
        await settle()
        seen.append(p.log.recovery_point)  # nothing unflushed: nothing to do
        return seen

    assert asyncio.run(run()) == [0, 2, 2]


def test_flush_messages_fsyncs_after_that_many_messages() -> None:
    async def run() -> list[int]:
        p = partition(FakeClock(), flush_messages=5)
        append(p, 3)
        await settle()
        before = p.log.recovery_point
        append(p, 2)
        await settle()
        return [before, p.log.recovery_point]

    assert asyncio.run(run()) == [0, 5]
