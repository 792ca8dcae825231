"""A stand-in for the transaction coordinator's runtime, shared by its unit and property tests.

`TxnDriver` owns the clock and the producer id block, completes the core's writes and marker
requests (at once and successfully unless a test holds or fails them), keeps every durable
record so a fresh core can load it, and records every marker written.
"""

from __future__ import annotations

import itertools

from test_group_coordinator import Box

from odradek.common.errors import ErrorCode
from odradek.coordinator.transaction.coordinator import TransactionCoordinator
from odradek.coordinator.transaction.messages import (
    Marker,
    MarkerRequest,
    ProducerIdAndEpoch,
    TransactionConfig,
    Write,
)
from odradek.coordinator.transaction.metadata import TopicPartition, TransactionMetadata

TIMEOUT_MS = 60_000


def group_partition(group_id: str) -> int:
    return len(group_id) % 7


class TxnDriver:
    def __init__(self, config: TransactionConfig | None = None, now_ms: int = 1_000_000) -> None:
        self.config = config or TransactionConfig(state_partitions=4)
        self.now = now_ms
        self.producer_ids = itertools.count(1000)
        self.hold_writes = False
        self.hold_markers = False
        self.fail_with: ErrorCode | None = None  # complete the next writes with this error
        self.held_writes: list[Write] = []
        self.held_markers: list[MarkerRequest] = []
        self.log: list[tuple[int, bytes, bytes | None]] = []  # durable records
        self.markers: list[Marker] = []  # every marker written, in order
        self.coordinator_epoch = 0
        self.core = self._load()

    def _new_producer_id(self) -> int:
        return next(self.producer_ids)

    def _load(self) -> TransactionCoordinator:
        self.coordinator_epoch += 1
        core = TransactionCoordinator(self.config, self._new_producer_id, group_partition)
        for partition in range(self.config.state_partitions):
            core.begin_loading(partition, self.coordinator_epoch)
        for _, key, value in self.log:
            core.replay(key, value)
        core.finish_loading(self.now)
        return core

    def reload(self) -> None:
        """A new coordinator (the old one crashed): what was not durable is lost."""
        self.held_writes.clear()
        self.held_markers.clear()
        self.core = self._load()
        self.settle()

    def reload_in_place(self) -> None:
        """The same core loses its partitions and loads them again (leadership came back)."""
        self.held_writes.clear()
        self.held_markers.clear()
        self.coordinator_epoch += 1
        for partition in range(self.config.state_partitions):
            self.core.begin_loading(partition, self.coordinator_epoch)
        for _, key, value in self.log:
            self.core.replay(key, value)
        self.core.finish_loading(self.now)
        self.settle()

    # writes, markers and time

    def settle(self) -> None:
        core = self.core
        while core.writes or core.marker_requests:
            writes, core.writes = core.writes, []
            for write in writes:
                if self.hold_writes:
                    self.held_writes.append(write)
                else:
                    self._finish_write(write, self.fail_with or ErrorCode.NONE)
            requests, core.marker_requests = core.marker_requests, []
            for request in requests:
                if self.hold_markers:
                    self.held_markers.append(request)
                else:
                    self._finish_markers(request)

    def _finish_write(self, write: Write, error: ErrorCode) -> None:
        if error == ErrorCode.NONE:
            self.log.extend((write.partition, key, value) for key, value in write.records)
        write.on_done(error)

    def _finish_markers(self, request: MarkerRequest, error: ErrorCode = ErrorCode.NONE) -> None:
        if error == ErrorCode.NONE:
            self.markers.extend(request.markers)
        request.on_done(error)

    def release_writes(self, error: ErrorCode = ErrorCode.NONE) -> None:
        held, self.held_writes = self.held_writes, []
        self.hold_writes = False
        for write in held:
            self._finish_write(write, error)
        self.settle()

    def release_markers(self, error: ErrorCode = ErrorCode.NONE) -> None:
        held, self.held_markers = self.held_markers, []
        self.hold_markers = False
        for request in held:
            self._finish_markers(request, error)
        self.settle()

    def advance(self, ms: int) -> None:
        self.now += ms
        self.core.poll(self.now)
        self.settle()

    # requests

    def init(
        self,
        transactional_id: str,
        timeout_ms: int = TIMEOUT_MS,
        expected: tuple[int, int] | None = None,
    ) -> Box[ProducerIdAndEpoch]:
        box: Box[ProducerIdAndEpoch] = Box()
        self.core.init_producer_id(transactional_id, timeout_ms, self.now, box, expected)
        self.settle()
        return box

    def start(self, transactional_id: str) -> ProducerIdAndEpoch:
        """InitProducerId that must succeed."""
        result = self.init(transactional_id).value
        assert result.error == ErrorCode.NONE, result
        return result

    def add(
        self,
        transactional_id: str,
        producer: ProducerIdAndEpoch,
        *partitions: TopicPartition,
        transaction_version: int | None = None,
    ) -> Box[ErrorCode]:
        box: Box[ErrorCode] = Box()
        self.core.add_partitions(
            transactional_id,
            producer.producer_id,
            producer.producer_epoch,
            partitions,
            self.now,
            box,
            transaction_version,
        )
        self.settle()
        return box

    def end(
        self,
        transactional_id: str,
        producer: ProducerIdAndEpoch,
        commit: bool,
        transaction_version: int = 0,
    ) -> Box[ProducerIdAndEpoch]:
        box: Box[ProducerIdAndEpoch] = Box()
        self.core.end_txn(
            transactional_id,
            producer.producer_id,
            producer.producer_epoch,
            commit,
            self.now,
            box,
            transaction_version,
        )
        self.settle()
        return box

    def state(self, transactional_id: str) -> TransactionMetadata:
        return self.core.transactions[transactional_id]
