"""What goes in and out of the transaction coordinator core: config, results, writes, markers.

Plain values, so handlers, the runtime and tests build and read them without the core.
`write_error` maps a failed `__transaction_state` write to the error Kafka gives the client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from odradek.common.errors import ErrorCode
from odradek.coordinator.transaction.metadata import NO_PRODUCER_EPOCH, TopicPartition
from odradek.coordinator.transaction.records import NO_PRODUCER_ID
from odradek.coordinator.write_errors import coordinator_write_error

Record = tuple[bytes, bytes | None]
TimerKey = tuple[str, str]  # (kind, transactional id or "")


@dataclass(frozen=True, slots=True)
class TransactionConfig:
    max_timeout_ms: int = 900_000  # transaction.max.timeout.ms
    transactional_id_expiration_ms: int = 604_800_000  # transactional.id.expiration.ms
    state_partitions: int = 50  # transaction.state.log.num.partitions
    # transaction.abort.timed.out.transaction.cleanup.interval.ms
    abort_timed_out_interval_ms: int = 10_000
    # transaction.remove.expired.transaction.cleanup.interval.ms
    remove_expired_interval_ms: int = 3_600_000
    # The cluster's finalized transaction.version feature: 0 writes log values at v0, 1 and
    # up at v1 (flexible); 2 lets clients that ask for it (EndTxn v5) bump the epoch on every
    # commit and abort, and makes the coordinator's own aborts (timeouts, fencing) bump too.
    transaction_version_level: int = 2
    # How long to wait before writing a CompleteCommit/CompleteAbort again after a failure.
    retry_backoff_ms: int = 100


@dataclass(frozen=True, slots=True)
class Write:
    """Records to append to partition `partition` of `__transaction_state`.

    `on_done(ErrorCode.NONE)` once durable (acks=all), or with the append's error.
    """

    partition: int
    records: tuple[Record, ...]
    on_done: Callable[[ErrorCode], None]


@dataclass(frozen=True, slots=True)
class Marker:
    """One WriteTxnMarkers entry: a control batch for `topic`-`partition`."""

    topic: str
    partition: int
    producer_id: int
    producer_epoch: int
    coordinator_epoch: int
    commit: bool


@dataclass(frozen=True, slots=True)
class MarkerRequest:
    """The markers that end one transaction, one per partition it touched.

    The runtime sends them (WriteTxnMarkers to each partition's leader) and retries retriable
    errors itself; a partition whose topic no longer exists counts as done, as in Kafka. It
    calls `on_done(ErrorCode.NONE)` once every marker is written, or `on_done(error)` when it
    gives up because this coordinator was fenced or no longer owns the transaction's partition
    of `__transaction_state` (the next coordinator resumes the transaction when it loads).
    """

    transactional_id: str
    producer_id: int
    producer_epoch: int
    coordinator_epoch: int
    commit: bool
    partitions: tuple[TopicPartition, ...]
    on_done: Callable[[ErrorCode], None]

    @property
    def markers(self) -> list[Marker]:
        return [
            Marker(
                topic,
                partition,
                self.producer_id,
                self.producer_epoch,
                self.coordinator_epoch,
                self.commit,
            )
            for topic, partition in self.partitions
        ]


@dataclass(frozen=True, slots=True)
class ProducerIdAndEpoch:
    """What InitProducerId and EndTxn (v5+) answer with."""

    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


@dataclass(frozen=True, slots=True)
class TransactionDescription:
    """One entry of DescribeTransactions."""

    transactional_id: str
    error: ErrorCode
    state: str = ""
    timeout_ms: int = 0
    start_timestamp_ms: int = -1
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    topics: tuple[tuple[str, tuple[int, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class ListedTransaction:
    transactional_id: str
    producer_id: int
    state: str


@dataclass(frozen=True, slots=True)
class TransactionListing:
    """ListTransactions: the transactions, and the state filters that name no state."""

    error: ErrorCode
    transactions: tuple[ListedTransaction, ...] = ()
    unknown_state_filters: tuple[str, ...] = ()


write_error = coordinator_write_error  # the same mapping for every coordinator
