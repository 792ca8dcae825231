"""A transactional id's state: `TransactionMetadata` and the `TransactionState` machine.

A transaction moves Empty -> Ongoing (partitions added) -> PrepareCommit or PrepareAbort (the
decision is durable; markers are being written) -> CompleteCommit or CompleteAbort (every
partition has its marker) -> Ongoing again with the next AddPartitions, or Empty after an
InitProducerId. Dead is an id being deleted (expiry); PrepareEpochFence is Kafka's in-memory
step of fencing a producer whose transaction is still open: it is never written, the abort that
follows is. `TransactionState.can_follow` holds Kafka's table of valid previous states.

The metadata is a frozen value: the coordinator replaces an id's metadata only when a record is
replayed, so a value here is always what the log says (plus `last_producer_epoch`, which the log
does not hold; see `TransactionMetadata`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from odradek.coordinator.transaction.records import (
    NO_PRODUCER_ID,
    TopicPartitions,
    TransactionLogValue,
)

NO_PRODUCER_EPOCH = -1
MAX_PRODUCER_EPOCH = 32767  # Short.MaxValue

TopicPartition = tuple[str, int]


class TransactionState(StrEnum):
    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    DEAD = "Dead"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"

    @property
    def id(self) -> int:
        """The status byte of the log value."""
        return _IDS[self]

    @classmethod
    def from_id(cls, state_id: int) -> TransactionState:
        for state, known in _IDS.items():
            if known == state_id:
                return state
        raise ValueError(f"unknown transaction state id {state_id}")

    def can_follow(self, previous: TransactionState) -> bool:
        return previous in _VALID_PREVIOUS[self]

    @property
    def is_expiration_allowed(self) -> bool:
        """Whether an idle id in this state may be deleted: no transaction is open."""
        return self in (
            TransactionState.EMPTY,
            TransactionState.COMPLETE_COMMIT,
            TransactionState.COMPLETE_ABORT,
        )

    @property
    def is_prepared(self) -> bool:
        return self in (TransactionState.PREPARE_COMMIT, TransactionState.PREPARE_ABORT)

    @property
    def is_complete(self) -> bool:
        return self in (TransactionState.COMPLETE_COMMIT, TransactionState.COMPLETE_ABORT)


_S = TransactionState
_IDS = {
    _S.EMPTY: 0,
    _S.ONGOING: 1,
    _S.PREPARE_COMMIT: 2,
    _S.PREPARE_ABORT: 3,
    _S.COMPLETE_COMMIT: 4,
    _S.COMPLETE_ABORT: 5,
    _S.DEAD: 6,
    _S.PREPARE_EPOCH_FENCE: 7,
}
_VALID_PREVIOUS = {
    _S.EMPTY: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.ONGOING: frozenset({_S.ONGOING, _S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_COMMIT: frozenset({_S.ONGOING}),
    _S.PREPARE_ABORT: frozenset({_S.ONGOING, _S.PREPARE_EPOCH_FENCE}),
    _S.COMPLETE_COMMIT: frozenset({_S.PREPARE_COMMIT}),
    _S.COMPLETE_ABORT: frozenset({_S.PREPARE_ABORT}),
    _S.DEAD: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_EPOCH_FENCE: frozenset({_S.ONGOING}),
}


def is_epoch_exhausted(producer_epoch: int) -> bool:
    """Kafka stops one short of Short.MaxValue, so a fence can still bump once more."""
    return producer_epoch >= MAX_PRODUCER_EPOCH - 1


@dataclass(frozen=True, slots=True)
class TransactionMetadata:
    """One transactional id as the log holds it.

    `previous_producer_id` is the producer id before the last transition; `next_producer_id`
    the id a transaction-version-2 commit or abort moves to when the epoch is exhausted (-1
    otherwise). `last_producer_epoch` is the epoch before the last bump, which lets a producer
    that retries InitProducerId (KIP-360) or EndTxn get its answer again. The log does not hold
    it: at load it is -1, as in Kafka, so such a retry across a coordinator move is fenced.
    """

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TransactionState
    partitions: frozenset[TopicPartition] = field(default_factory=frozenset)
    start_timestamp_ms: int = -1
    last_update_timestamp_ms: int = -1
    previous_producer_id: int = NO_PRODUCER_ID
    next_producer_id: int = NO_PRODUCER_ID
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    client_transaction_version: int = 0

    @property
    def epoch_bump_on_end(self) -> bool:
        """Whether commits and aborts bump the epoch (transaction version 2, KIP-890)."""
        return self.client_transaction_version >= 2

    def to_value(self) -> TransactionLogValue:
        partitions: tuple[TopicPartitions, ...] | None = None
        if self.state != TransactionState.EMPTY:
            by_topic: dict[str, list[int]] = {}
            for topic, partition in sorted(self.partitions):
                by_topic.setdefault(topic, []).append(partition)
            partitions = tuple((topic, tuple(ids)) for topic, ids in by_topic.items())
        return TransactionLogValue(
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            transaction_timeout_ms=self.timeout_ms,
            transaction_status=self.state.id,
            transaction_partitions=partitions,
            last_update_timestamp_ms=self.last_update_timestamp_ms,
            start_timestamp_ms=self.start_timestamp_ms,
            previous_producer_id=self.previous_producer_id,
            next_producer_id=self.next_producer_id,
            client_transaction_version=self.client_transaction_version,
        )

    @classmethod
    def from_value(cls, transactional_id: str, value: TransactionLogValue) -> TransactionMetadata:
        """The metadata a value holds; an Empty one has no partitions, whatever was written."""
        state = TransactionState.from_id(value.transaction_status)
        partitions: frozenset[TopicPartition] = frozenset()
        if state != TransactionState.EMPTY and value.transaction_partitions is not None:
            partitions = frozenset(
                (topic, partition)
                for topic, ids in value.transaction_partitions
                for partition in ids
            )
        return cls(
            transactional_id=transactional_id,
            producer_id=value.producer_id,
            producer_epoch=value.producer_epoch,
            timeout_ms=value.transaction_timeout_ms,
            state=state,
            partitions=partitions,
            start_timestamp_ms=value.start_timestamp_ms,
            last_update_timestamp_ms=value.last_update_timestamp_ms,
            previous_producer_id=value.previous_producer_id,
            next_producer_id=value.next_producer_id,
            client_transaction_version=value.client_transaction_version,
        )
