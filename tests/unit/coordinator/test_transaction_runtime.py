"""The transaction coordinator's asyncio runtime with an in-memory log and marker writer:
writes are awaited and replayed, markers are retried on retriable errors and given up on
others, and a request that meets a transaction still completing waits for it (bounded)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from odradek.common.clock import FakeClock
from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.transaction.coordinator import TransactionCoordinator
from odradek.coordinator.transaction.messages import Marker, TransactionConfig
from odradek.coordinator.transaction_runtime import TransactionCoordinatorRuntime

TID = "tx"
TP = ("orders", 0)


class MemoryLog:
    def __init__(self) -> None:
        self.records: list[tuple[int, tuple[bytes, bytes | None]]] = []

    def append(
        self, partition: int, records: Sequence[tuple[bytes, bytes | None]]
    ) -> Awaitable[None]:
        self.records.extend((partition, record) for record in records)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class GatedMarkers:
    """Writes markers once `gate` is set; fails the first `failures` attempts with `error`."""

    def __init__(self, failures: int = 0, error: ErrorCode = ErrorCode.NOT_ENOUGH_REPLICAS):
        self.gate = asyncio.Event()
        self.gate.set()
        self.failures = failures
        self.error = error
        self.attempts = 0
        self.written: list[Marker] = []

    async def write(self, marker: Marker) -> None:
        await self.gate.wait()
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise KafkaError("injected", self.error)
        self.written.append(marker)


class Ids:
    def __init__(self) -> None:
        self.next = 1000

    async def ensure_ready(self) -> None:
        return None

    def take(self) -> int:
        self.next += 1
        return self.next


def runtime(markers: GatedMarkers, ending_wait_ms: int = 1000) -> TransactionCoordinatorRuntime:
    ids = Ids()
    core = TransactionCoordinator(TransactionConfig(state_partitions=1), ids.take, lambda g: 0)
    core.begin_loading(0, 1)
    core.finish_loading(0)
    return TransactionCoordinatorRuntime(
        core, FakeClock(), MemoryLog(), markers, ids, retry_backoff_ms=1,
        ending_wait_ms=ending_wait_ms,
    )  # fmt: skip


async def open_transaction(rt: TransactionCoordinatorRuntime) -> tuple[int, int]:
    result = await rt.init_producer_id(TID, 60_000, None)
    assert result.error == ErrorCode.NONE
    producer = (result.producer_id, result.producer_epoch)
    assert await rt.add_partitions(TID, *producer, [TP]) == ErrorCode.NONE
    return producer


def test_a_commit_writes_its_markers_and_completes() -> None:
    asyncio.run(_a_commit_writes_its_markers_and_completes())


async def _a_commit_writes_its_markers_and_completes() -> None:
    markers = GatedMarkers()
    rt = runtime(markers)
    producer = await open_transaction(rt)
    assert (await rt.end_txn(TID, *producer, commit=True)).error == ErrorCode.NONE
    for _ in range(100):
        if rt.describe(TID).state == "CompleteCommit":
            break
        await asyncio.sleep(0.001)
    assert rt.describe(TID).state == "CompleteCommit"
    assert [(m.topic, m.partition, m.commit) for m in markers.written] == [("orders", 0, True)]
    rt.stop()


def test_retriable_marker_errors_are_retried_and_others_give_up() -> None:
    asyncio.run(_retriable_marker_errors_are_retried_and_others_give_up())


async def _retriable_marker_errors_are_retried_and_others_give_up() -> None:
    retried = GatedMarkers(failures=3)
    rt = runtime(retried)
    producer = await open_transaction(rt)
    await rt.end_txn(TID, *producer, commit=False)
    for _ in range(200):
        if rt.describe(TID).state == "CompleteAbort":
            break
        await asyncio.sleep(0.001)
    assert (rt.describe(TID).state, retried.attempts) == ("CompleteAbort", 4)
    rt.stop()

    refused = GatedMarkers(failures=1, error=ErrorCode.INVALID_PRODUCER_EPOCH)
    rt = runtime(refused)
    producer = await open_transaction(rt)
    await rt.end_txn(TID, *producer, commit=True)
    await asyncio.sleep(0.05)
    assert (rt.describe(TID).state, refused.attempts) == ("PrepareCommit", 1)
    rt.stop()


def test_the_next_transaction_waits_for_the_previous_one_to_complete() -> None:
    asyncio.run(_the_next_transaction_waits_for_the_previous_one_to_complete())


async def _the_next_transaction_waits_for_the_previous_one_to_complete() -> None:
    markers = GatedMarkers()
    rt = runtime(markers)
    producer = await open_transaction(rt)
    markers.gate.clear()  # the commit's markers are held back
    await rt.end_txn(TID, *producer, commit=True)
    adding = asyncio.ensure_future(rt.add_partitions(TID, *producer, [TP]))
    await asyncio.sleep(0.02)
    assert not adding.done()  # parked while the commit completes, not refused
    markers.gate.set()
    assert await asyncio.wait_for(adding, 1) == ErrorCode.NONE
    assert rt.describe(TID).state == "Ongoing"
    rt.stop()


def test_the_wait_for_a_completing_transaction_is_bounded() -> None:
    asyncio.run(_the_wait_for_a_completing_transaction_is_bounded())


async def _the_wait_for_a_completing_transaction_is_bounded() -> None:
    markers = GatedMarkers()
    rt = runtime(markers, ending_wait_ms=20)
    producer = await open_transaction(rt)
    markers.gate.clear()
    await rt.end_txn(TID, *producer, commit=True)
    answer = await asyncio.wait_for(rt.add_partitions(TID, *producer, [TP]), 1)
    assert answer == ErrorCode.CONCURRENT_TRANSACTIONS
    markers.gate.set()
    rt.stop()
