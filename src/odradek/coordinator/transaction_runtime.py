"""The asyncio edge of the transaction coordinator: writes, markers, timers, producer ids.

The core (`transaction/coordinator.py`) never awaits. After each call into it the runtime:

1. appends every queued `Write` to its `__transaction_state` partition through
   `TransactionLog` in the order queued (the append is synchronous, so order is kept), then
   waits in a task for it to be durable and hands the outcome to the write's `on_done`;
2. sends every queued `MarkerRequest` through `MarkerWriter`, all markers of one request at
   once, retrying a marker whose error is retriable until it is written or this coordinator
   no longer owns the transaction's partition, then calls the request's `on_done`;
3. re-arms one timer at the core's next deadline, which calls `poll`.

A request that would get CONCURRENT_TRANSACTIONS only because the id's previous transaction is
still completing (its markers being written) waits for that, up to `ending_wait_ms`, and is
then tried again: a producer that begins its next transaction right after committing gets its
answer as soon as the commit is complete, instead of after a client-side retry backoff
(librdkafka waits 20 ms). Kafka answers at once; the client sees the same outcome sooner.

Producer ids: the core takes them synchronously; before a call that may need one the runtime
makes sure the node's block has one ready (committing a new block if it ran out).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from odradek.common.clock import Clock
from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.runtime_support import DeadlineTimer, call_core
from odradek.coordinator.transaction.coordinator import TransactionCoordinator
from odradek.coordinator.transaction.messages import (
    Marker,
    MarkerRequest,
    ProducerIdAndEpoch,
    TransactionDescription,
    TransactionListing,
    Write,
)
from odradek.coordinator.transaction.metadata import TopicPartition

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Marker errors after which the marker is simply sent again, to the partition's leader of
# then (Kafka's TransactionMarkerRequestCompletionHandler retries these, and a request to a
# broker that could not be reached).
RETRIABLE_MARKER_ERRORS = frozenset(
    {
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.BROKER_NOT_AVAILABLE,
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.CORRUPT_MESSAGE,
    }
)


class TransactionLog(Protocol):
    def append(
        self, partition: int, records: Sequence[tuple[bytes, bytes | None]]
    ) -> Awaitable[None]:
        """Append now (raise KafkaError if that fails); the awaitable ends once durable."""


class MarkerWriter(Protocol):
    async def write(self, marker: Marker) -> None:
        """Write one transaction marker durably; raise KafkaError if it was not written.
        A partition whose topic no longer exists counts as written."""


class ProducerIdSource(Protocol):
    async def ensure_ready(self) -> None:
        """Make sure `take` has an id to give (commit a new block if needed)."""

    def take(self) -> int:
        """The next producer id; KafkaError when none is ready."""


class TransactionCoordinatorRuntime:
    def __init__(
        self,
        core: TransactionCoordinator,
        clock: Clock,
        log: TransactionLog,
        markers: MarkerWriter,
        producer_ids: ProducerIdSource,
        retry_backoff_ms: int = 100,
        ending_wait_ms: int = 1000,
    ) -> None:
        self.core = core
        self.clock = clock
        self.log = log
        self.markers = markers
        self.producer_ids = producer_ids
        self.retry_backoff_ms = retry_backoff_ms
        self.ending_wait_ms = ending_wait_ms
        self._ending_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._timer = DeadlineTimer(clock, self._poll)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True
        self._timer.cancel()
        for task in self._tasks:
            task.cancel()

    # --- entry points -------------------------------------------------------------------------

    async def init_producer_id(
        self, transactional_id: str, timeout_ms: int, expected: tuple[int, int] | None
    ) -> ProducerIdAndEpoch:
        await self._ids_ready()
        return await self._call(
            lambda respond: self.core.init_producer_id(
                transactional_id, timeout_ms, self.clock.wall_ms(), respond, expected
            )
        )

    async def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
        transaction_version: int | None = None,
    ) -> ErrorCode:
        """`transaction_version` 2: a KIP-890 part 2 client adding a partition implicitly
        (Produce v12, TxnOffsetCommit v5); None keeps the id's."""
        return await self._after_ending(
            transactional_id,
            lambda respond: self.core.add_partitions(
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
                self.clock.wall_ms(),
                respond,
                transaction_version,
            ),
        )

    def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
    ) -> dict[TopicPartition, ErrorCode]:
        """The verify-only AddPartitionsToTxn; answered at once (it writes nothing)."""
        result: list[dict[TopicPartition, ErrorCode]] = []
        self.core.verify_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            self.clock.wall_ms(),
            result.append,
        )
        self.drive()
        return result[0]

    async def add_offsets(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        group_id: str,
        transaction_version: int | None = None,
    ) -> ErrorCode:
        return await self._after_ending(
            transactional_id,
            lambda respond: self.core.add_offsets(
                transactional_id,
                producer_id,
                producer_epoch,
                group_id,
                self.clock.wall_ms(),
                respond,
                transaction_version,
            ),
        )

    async def _after_ending(
        self, transactional_id: str, start: Callable[[Callable[[ErrorCode], None]], None]
    ) -> ErrorCode:
        """Call into the core; if the answer is CONCURRENT_TRANSACTIONS because the previous
        transaction is completing, wait for it to complete (bounded) and call once more."""
        error: ErrorCode = await self._call(start)
        if error != ErrorCode.CONCURRENT_TRANSACTIONS or not self.core.is_ending(transactional_id):
            return error
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ending_waiters.setdefault(transactional_id, []).append(future)
        try:
            await asyncio.wait_for(future, self.ending_wait_ms / 1000)
        except TimeoutError:
            return error
        return await self._call(start)

    async def end_txn(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        transaction_version: int = 0,
    ) -> ProducerIdAndEpoch:
        await self._ids_ready()
        return await self._call(
            lambda respond: self.core.end_txn(
                transactional_id,
                producer_id,
                producer_epoch,
                commit,
                self.clock.wall_ms(),
                respond,
                transaction_version,
            )
        )

    def describe(self, transactional_id: str) -> TransactionDescription:
        return self.core.describe(transactional_id)

    def list_transactions(
        self, states: Sequence[str], producer_ids: Sequence[int], min_duration_ms: int
    ) -> TransactionListing:
        return self.core.list_transactions(
            self.clock.wall_ms(), states, producer_ids, min_duration_ms
        )

    async def _ids_ready(self) -> None:
        try:
            await self.producer_ids.ensure_ready()
        except KafkaError as exc:  # the core answers with the error when it needs an id
            logger.warning("[TransactionCoordinator] no producer id block: %s", exc)

    async def _call(self, start: Callable[[Callable[[T], None]], None]) -> T:
        return await call_core(start, self.drive)

    # --- writes, markers and timers -----------------------------------------------------------

    def drive(self) -> None:
        """Carry out what the core queued, then re-arm the timer."""
        core = self.core
        while core.writes or core.marker_requests:
            writes, core.writes = core.writes, []
            for write in writes:
                try:
                    durable = self.log.append(write.partition, write.records)
                except KafkaError as exc:
                    logger.warning("[TransactionCoordinator] append failed: %s", exc)
                    write.on_done(exc.code)
                    continue
                self._spawn(self._finish(write, durable))
            requests, core.marker_requests = core.marker_requests, []
            for request in requests:
                self._spawn(self._send_markers(request))
        for transactional_id in [t for t in self._ending_waiters if not core.is_ending(t)]:
            for future in self._ending_waiters.pop(transactional_id):
                if not future.done():
                    future.set_result(None)
        if not self._stopped:
            self._timer.arm(core.next_deadline())

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, write: Write, durable: Awaitable[None]) -> None:
        try:
            await durable
        except KafkaError as exc:
            logger.warning("[TransactionCoordinator] write not durable: %s", exc)
            write.on_done(exc.code)
        else:
            write.on_done(ErrorCode.NONE)
        self.drive()

    async def _send_markers(self, request: MarkerRequest) -> None:
        partition = self.core.partition_for(request.transactional_id)
        outcomes = await asyncio.gather(
            *(self._write_marker(request, partition, tp) for tp in request.partitions)
        )
        failed = next((error for error in outcomes if error != ErrorCode.NONE), ErrorCode.NONE)
        request.on_done(failed)
        self.drive()

    async def _write_marker(
        self, request: MarkerRequest, partition: int, tp: TopicPartition
    ) -> ErrorCode:
        marker = Marker(
            tp[0],
            tp[1],
            request.producer_id,
            request.producer_epoch,
            request.coordinator_epoch,
            request.commit,
        )
        while True:
            if self.core.coordinator_epochs.get(partition) != request.coordinator_epoch:
                return ErrorCode.NOT_COORDINATOR
            try:
                await self.markers.write(marker)
                return ErrorCode.NONE
            except KafkaError as exc:
                if exc.code not in RETRIABLE_MARKER_ERRORS:
                    logger.error(
                        "[TransactionCoordinator] marker of %s for %s-%d refused: %s",
                        request.transactional_id,
                        tp[0],
                        tp[1],
                        exc,
                    )
                    return exc.code
                logger.info(
                    "[TransactionCoordinator] marker for %s-%d not written (%s); retrying",
                    tp[0],
                    tp[1],
                    exc.code.name,
                )
            await asyncio.sleep(self.retry_backoff_ms / 1000)

    def _poll(self, now_ms: int) -> None:
        self.core.poll(now_ms)
        self.drive()
