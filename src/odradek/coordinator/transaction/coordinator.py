"""The transaction coordinator core, without I/O: Kafka's transaction state machine over
`__transaction_state`.

How a runtime drives it
-----------------------

The core never awaits, reads no clock and sends nothing. Entry points take `now_ms` and a
`respond` callback; they answer at once or queue work, which the runtime takes after every call
into the core (entry points, `poll`, `finish_loading`, and any `on_done` it invokes):

1. `core.writes`, a list of `Write(partition, records, on_done)`: append `records` (key, value;
   a None value is a tombstone) to that partition of `__transaction_state`, in the order
   queued, with acks=all and no compression; once durable call `on_done(ErrorCode.NONE)`, or
   `on_done(error)` with the append's error. The core replays a successful write itself, so
   the runtime must not call `replay` for it.
2. `core.marker_requests`, a list of `MarkerRequest`: send its `markers` (WriteTxnMarkers to
   the leader of each partition; each marker holds topic, partition, producer id, producer
   epoch, coordinator epoch and commit or abort), retrying retriable errors, then call
   `on_done(ErrorCode.NONE)`; call `on_done(error)` only to give up (this coordinator was
   fenced, or no longer owns the partition). The core then writes CompleteCommit or
   CompleteAbort.
3. `core.next_deadline()`: call `core.poll(now_ms)` once it has passed. Timers abort
   transactions open past their timeout, delete idle transactional ids, and retry a failed
   Complete write.

Ownership: when this broker becomes leader of a `__transaction_state` partition, call
`begin_loading(partition, leader_epoch)` (the leader epoch is the coordinator epoch the markers
carry), `replay(key, value)` for each record of the partition in order, then
`finish_loading(now_ms)`: transactions found in PrepareCommit or PrepareAbort have their markers
requested again, as Kafka does. When it stops being leader, call `unload(partition)`; writes and
marker requests still in flight for it then complete without effect. Requests for a partition
not owned get NOT_COORDINATOR, and COORDINATOR_LOAD_IN_PROGRESS while it loads.

Producer ids come from `new_producer_id()`, synchronous: the runtime keeps a block ready and
raises `KafkaError` (its code is returned to the client) when none is.

Rules
-----

State changes only when a record is replayed. While a transition's record is being written the
id has a pending transition and other requests for it get CONCURRENT_TRANSACTIONS, as with
Kafka's pendingState. Markers are requested only once PrepareCommit/PrepareAbort is durable, and
the transaction completes only once every marker is written. A producer is fenced by bumping
its epoch: InitProducerId bumps it (aborting first, with a bumped epoch, a transaction left
open), a timeout abort bumps it, and under transaction version 2 (KIP-890, EndTxn v5) every
commit and abort bumps it, so a delayed EndTxn of one transaction is fenced instead of ending
the next (KAFKA-17754). Error codes are Kafka's TransactionCoordinator's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace

from odradek.common.errors import ErrorCode, KafkaError
from odradek.common.timers import Timers
from odradek.coordinator.transaction import transitions, views
from odradek.coordinator.transaction.messages import (
    MarkerRequest,
    ProducerIdAndEpoch,
    TimerKey,
    TransactionConfig,
    TransactionDescription,
    TransactionListing,
    Write,
    write_error,
)
from odradek.coordinator.transaction.metadata import (
    MAX_PRODUCER_EPOCH,
    NO_PRODUCER_EPOCH,
    TopicPartition,
    TransactionMetadata,
    TransactionState,
    is_epoch_exhausted,
)
from odradek.coordinator.transaction.records import (
    NO_PRODUCER_ID,
    TransactionLogKey,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    transaction_partition,
)

logger = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
_ABORT_TIMED_OUT: TimerKey = ("abort-timed-out", "")
_REMOVE_EXPIRED: TimerKey = ("remove-expired", "")

S = TransactionState


class TransactionCoordinator:
    def __init__(
        self,
        config: TransactionConfig | None,
        new_producer_id: Callable[[], int],
        group_partition: Callable[[str], int],
    ) -> None:
        self.config = config or TransactionConfig()
        self.new_producer_id = new_producer_id
        # the __consumer_offsets partition of a group, for AddOffsetsToTxn
        self.group_partition = group_partition
        self.transactions: dict[str, TransactionMetadata] = {}
        # id -> the metadata its record in flight will hold (Kafka's pendingState)
        self._pending: dict[str, TransactionMetadata] = {}
        self.coordinator_epochs: dict[int, int] = {}  # owned partition -> coordinator epoch
        self._loading: set[int] = set()
        self.writes: list[Write] = []
        self.marker_requests: list[MarkerRequest] = []
        self.timers: Timers[TimerKey] = Timers()
        # The latest now_ms the core was given; what an on_done does happens at this instant.
        self.latest_ms = 0

    def _seen(self, now_ms: int) -> None:
        self.latest_ms = max(self.latest_ms, now_ms)

    def partition_for(self, transactional_id: str) -> int:
        return transaction_partition(transactional_id, self.config.state_partitions)

    def _owner_error(self, transactional_id: str) -> ErrorCode | None:
        partition = self.partition_for(transactional_id)
        if partition in self._loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        if partition not in self.coordinator_epochs:
            return ErrorCode.NOT_COORDINATOR
        return None

    @property
    def _server_transaction_version(self) -> int:
        return self.config.transaction_version_level

    def _client_transaction_version(self, requested: int) -> int:
        return min(requested, self.config.transaction_version_level)

    # --- loading ------------------------------------------------------------------------------

    def begin_loading(self, partition: int, coordinator_epoch: int) -> None:
        """Become the coordinator of `partition`; its records follow through `replay`."""
        self.unload(partition)
        self.coordinator_epochs[partition] = coordinator_epoch
        self._loading.add(partition)

    def unload(self, partition: int) -> None:
        """Forget `partition`; its writes and markers in flight complete without effect."""
        self.coordinator_epochs.pop(partition, None)
        self._loading.discard(partition)
        for transactional_id in [
            t for t in self.transactions if self.partition_for(t) == partition
        ]:
            del self.transactions[transactional_id]
            # a Complete write retried now would overtake the markers a new load sends
            self.timers.cancel(("complete", transactional_id))
        for transactional_id in [t for t in self._pending if self.partition_for(t) == partition]:
            del self._pending[transactional_id]

    def replay(self, key: bytes, value: bytes | None) -> None:
        """Apply one record of `__transaction_state`: at load, and by the core after a write."""
        decoded_key = decode_key(key)
        if decoded_key is None:
            return  # a record type this version does not know, skipped as Kafka skips it
        transactional_id = decoded_key.transactional_id
        decoded_value = decode_value(value)
        if decoded_value is None:
            self.transactions.pop(transactional_id, None)
            return
        self.transactions[transactional_id] = TransactionMetadata.from_value(
            transactional_id, decoded_value
        )

    def finish_loading(self, now_ms: int) -> None:
        """End every load in progress; transactions left prepared get their markers again."""
        self._seen(now_ms)
        loaded, self._loading = self._loading, set()
        for transactional_id, metadata in list(self.transactions.items()):
            if self.partition_for(transactional_id) in loaded and metadata.state.is_prepared:
                self._send_markers(transactional_id)
        if _ABORT_TIMED_OUT not in self.timers:
            self.timers.schedule(_ABORT_TIMED_OUT, now_ms + self.config.abort_timed_out_interval_ms)
        if _REMOVE_EXPIRED not in self.timers:
            self.timers.schedule(_REMOVE_EXPIRED, now_ms + self.config.remove_expired_interval_ms)

    # --- timers -------------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        return self.timers.next_deadline()

    def poll(self, now_ms: int) -> None:
        self._seen(now_ms)
        while (key := self.timers.pop_expired(now_ms)) is not None:
            kind, transactional_id = key
            if kind == "complete":
                self._complete(transactional_id)
            elif key == _ABORT_TIMED_OUT:
                self.abort_timed_out_transactions(now_ms)
                self.timers.schedule(key, now_ms + self.config.abort_timed_out_interval_ms)
            elif key == _REMOVE_EXPIRED:
                self.remove_expired_transactional_ids(now_ms)
                self.timers.schedule(key, now_ms + self.config.remove_expired_interval_ms)

    def abort_timed_out_transactions(self, now_ms: int) -> None:
        """Abort, fencing its producer, every transaction open longer than its timeout."""
        self._seen(now_ms)
        for transactional_id, metadata in list(self.transactions.items()):
            if (
                metadata.state == S.ONGOING
                and transactional_id not in self._pending
                and self.partition_for(transactional_id) not in self._loading
                and metadata.start_timestamp_ms + metadata.timeout_ms < now_ms
            ):
                logger.info(
                    "[TransactionCoordinator] aborting %s (producer id %s, epoch %s): "
                    "open past its timeout of %s ms",
                    transactional_id,
                    metadata.producer_id,
                    metadata.producer_epoch,
                    metadata.timeout_ms,
                )
                self._fence_and_abort(metadata, lambda result: None)

    def remove_expired_transactional_ids(self, now_ms: int) -> None:
        """Delete (tombstone) ids with no open transaction, idle past their expiration."""
        self._seen(now_ms)
        horizon = now_ms - self.config.transactional_id_expiration_ms
        by_partition: dict[int, list[TransactionMetadata]] = {}
        for transactional_id, metadata in self.transactions.items():
            partition = self.partition_for(transactional_id)
            if (
                metadata.state.is_expiration_allowed
                and metadata.last_update_timestamp_ms <= horizon
                and transactional_id not in self._pending
                and partition not in self._loading
            ):
                by_partition.setdefault(partition, []).append(metadata)
        for partition, expired in by_partition.items():
            self._write_tombstones(partition, [transitions.dead(m, now_ms) for m in expired])

    def _write_tombstones(self, partition: int, targets: list[TransactionMetadata]) -> None:
        """Delete ids of one partition in one write; each is pending (Dead) until it is done."""
        for target in targets:
            self._pending[target.transactional_id] = target
        records = tuple(
            (encode_key(TransactionLogKey(target.transactional_id)), None) for target in targets
        )
        coordinator_epoch = self.coordinator_epochs[partition]

        def done(error: ErrorCode) -> None:
            if self.coordinator_epochs.get(partition) != coordinator_epoch:
                return
            for target, (key, value) in zip(targets, records, strict=True):
                if self._pending.get(target.transactional_id) is target:
                    del self._pending[target.transactional_id]
                    if error == ErrorCode.NONE:
                        self.replay(key, value)

        self.writes.append(Write(partition, records, done))

    # --- InitProducerId -----------------------------------------------------------------------

    def init_producer_id(
        self,
        transactional_id: str,
        timeout_ms: int,
        now_ms: int,
        respond: Callable[[ProducerIdAndEpoch], None],
        expected: tuple[int, int] | None = None,
    ) -> None:
        """InitProducerId of a transactional producer; `expected` is (producer id, epoch) of
        v3+ requests that carry them (KIP-360), None otherwise."""
        self._seen(now_ms)
        if not transactional_id:
            respond(ProducerIdAndEpoch(ErrorCode.INVALID_REQUEST))
            return
        if not 0 < timeout_ms <= self.config.max_timeout_ms:
            respond(ProducerIdAndEpoch(ErrorCode.INVALID_TRANSACTION_TIMEOUT))
            return
        error = self._owner_error(transactional_id)
        if error is not None:
            respond(ProducerIdAndEpoch(error))
            return
        if transactional_id in self._pending:
            respond(ProducerIdAndEpoch(ErrorCode.CONCURRENT_TRANSACTIONS))
            return
        current = self.transactions.get(transactional_id)
        if current is None:
            try:
                producer_id = self.new_producer_id()
            except KafkaError as failure:
                respond(ProducerIdAndEpoch(failure.code))
                return
            current = TransactionMetadata(
                transactional_id, producer_id, NO_PRODUCER_EPOCH, timeout_ms, S.EMPTY
            )
        if expected is not None and not self._may_reinit(current, *expected):
            respond(ProducerIdAndEpoch(ErrorCode.PRODUCER_FENCED))
            return
        if current.state.is_prepared:
            respond(ProducerIdAndEpoch(ErrorCode.CONCURRENT_TRANSACTIONS))
            return
        if current.state == S.ONGOING:
            # The open transaction is aborted first; the producer retries once it is.
            def fenced(result: ProducerIdAndEpoch) -> None:
                error = result.error
                respond(
                    ProducerIdAndEpoch(
                        ErrorCode.CONCURRENT_TRANSACTIONS if error == ErrorCode.NONE else error
                    )
                )

            self._fence_and_abort(current, fenced)
            return
        target = self._init_target(current, timeout_ms, expected, now_ms)
        if isinstance(target, ErrorCode):
            respond(ProducerIdAndEpoch(target))
            return

        def done(error: ErrorCode) -> None:
            if error == ErrorCode.NONE:
                respond(ProducerIdAndEpoch(error, target.producer_id, target.producer_epoch))
            else:
                respond(ProducerIdAndEpoch(error))

        self._transition(target, done)

    @staticmethod
    def _may_reinit(current: TransactionMetadata, producer_id: int, epoch: int) -> bool:
        """Kafka's isValidProducerId: the current producer, or the previous one whose epoch ran
        out (it retries after the producer id was rotated)."""
        return (
            current.producer_epoch == NO_PRODUCER_EPOCH
            or producer_id == current.producer_id
            or (producer_id == current.previous_producer_id and is_epoch_exhausted(epoch))
        )

    def _init_target(
        self,
        current: TransactionMetadata,
        timeout_ms: int,
        expected: tuple[int, int] | None,
        now_ms: int,
    ) -> TransactionMetadata | ErrorCode:
        if is_epoch_exhausted(current.producer_epoch) and (
            expected is None or expected[1] == current.producer_epoch
        ):
            try:
                producer_id = self.new_producer_id()
            except KafkaError as failure:
                return failure.code
            return transitions.rotate_producer_id(
                current, producer_id, timeout_ms, now_ms, record_last_epoch=expected is not None
            )
        return transitions.bump_epoch_for_init(
            current, timeout_ms, None if expected is None else expected[1], now_ms
        )

    # --- AddPartitionsToTxn, AddOffsetsToTxn --------------------------------------------------

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
        now_ms: int,
        respond: Callable[[ErrorCode], None],
        transaction_version: int | None = None,
    ) -> None:
        """Add partitions to the transaction (one error for all of them, as Kafka answers).

        `transaction_version` is the client's (2 for KIP-890 part 2 clients); None keeps the
        one the id has.
        """
        self._seen(now_ms)
        wanted = frozenset(partitions)
        error = self._check_producer(transactional_id, producer_id, producer_epoch)
        if error is not None:
            respond(error)
            return
        current = self.transactions[transactional_id]
        if current.state == S.ONGOING and wanted <= current.partitions:
            respond(ErrorCode.NONE)
            return
        version = (
            current.client_transaction_version
            if transaction_version is None
            else self._client_transaction_version(transaction_version)
        )
        self._transition(transitions.add_partitions(current, wanted, now_ms, version), respond)

    def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
        now_ms: int,
        respond: Callable[[dict[TopicPartition, ErrorCode]], None],
    ) -> None:
        """The verify-only AddPartitionsToTxn (v4+, KIP-890): whether each partition is
        already in the transaction (NONE) or not (TRANSACTION_ABORTABLE). Writes nothing."""
        self._seen(now_ms)
        wanted = list(partitions)
        # As in Kafka, a transition in flight does not matter here: partitions it adds are not
        # in the transaction until its record is durable.
        error = self._check_producer(
            transactional_id, producer_id, producer_epoch, pending_matters=False
        )
        if error is not None:
            respond(dict.fromkeys(wanted, error))
            return
        current = self.transactions[transactional_id]
        respond(
            {
                partition: ErrorCode.NONE
                if partition in current.partitions
                else ErrorCode.TRANSACTION_ABORTABLE
                for partition in wanted
            }
        )

    def add_offsets(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        group_id: str,
        now_ms: int,
        respond: Callable[[ErrorCode], None],
        transaction_version: int | None = None,
    ) -> None:
        """AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction,
        so its offsets are committed or dropped by the transaction's markers."""
        partition = (OFFSETS_TOPIC, self.group_partition(group_id))
        self.add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            [partition],
            now_ms,
            respond,
            transaction_version,
        )

    def _check_producer(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        pending_matters: bool = True,
    ) -> ErrorCode | None:
        """Kafka's checks before adding partitions: the producer and no transition or end
        in progress."""
        if not transactional_id:
            return ErrorCode.INVALID_REQUEST
        error = self._owner_error(transactional_id)
        if error is not None:
            return error
        current = self.transactions.get(transactional_id)
        if current is None or current.producer_id != producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if current.producer_epoch != producer_epoch:
            return ErrorCode.PRODUCER_FENCED
        if current.state.is_prepared or (pending_matters and transactional_id in self._pending):
            return ErrorCode.CONCURRENT_TRANSACTIONS
        return None

    # --- EndTxn -------------------------------------------------------------------------------

    def end_txn(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        now_ms: int,
        respond: Callable[[ProducerIdAndEpoch], None],
        transaction_version: int = 0,
    ) -> None:
        """Commit or abort. `transaction_version` is 2 for EndTxn v5+ (KIP-890): the epoch
        bumps and the answer carries the producer id and epoch to use next."""
        self._seen(now_ms)
        if not transactional_id:
            respond(ProducerIdAndEpoch(ErrorCode.INVALID_REQUEST))
            return
        error = self._owner_error(transactional_id)
        if error is not None:
            respond(ProducerIdAndEpoch(error))
            return
        current = self.transactions.get(transactional_id)
        if current is None:
            respond(ProducerIdAndEpoch(ErrorCode.INVALID_PRODUCER_ID_MAPPING))
            return
        error = self._end_txn_error(current, producer_id, producer_epoch, commit)
        if error == ErrorCode.NONE:  # a retry of an EndTxn that already completed
            respond(ProducerIdAndEpoch(error, current.producer_id, current.producer_epoch))
            return
        if error is not None:
            respond(ProducerIdAndEpoch(error))
            return
        self._end(
            current, commit, self._client_transaction_version(transaction_version), False, respond
        )

    def _end_txn_error(
        self, current: TransactionMetadata, producer_id: int, producer_epoch: int, commit: bool
    ) -> ErrorCode | None:
        """Why an EndTxn cannot start ending the transaction (None: it can; NONE: it is a retry
        of one that completed)."""
        state = current.state
        if current.epoch_bump_on_end:
            # The epoch moved on with this transaction's end: only a retry of that EndTxn, with
            # the epoch before the bump (or the last one of the previous producer id), matches.
            retry_on_bump = current.producer_epoch == producer_epoch + 1
            retry_on_overflow = (
                current.previous_producer_id == producer_id
                and producer_epoch == MAX_PRODUCER_EPOCH - 1
                and current.producer_epoch == 0
            )
            if state.is_prepared:
                valid_epoch = retry_on_bump
            elif state.is_complete:
                valid_epoch = retry_on_bump or retry_on_overflow
            else:
                valid_epoch = producer_epoch == current.producer_epoch
        else:
            retry_on_overflow = False
            valid_epoch = producer_epoch == current.producer_epoch
        if current.producer_id != producer_id and not retry_on_overflow:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if not valid_epoch:
            return ErrorCode.PRODUCER_FENCED
        if current.transactional_id in self._pending:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        if state == S.ONGOING:
            return None
        if state == (S.COMPLETE_COMMIT if commit else S.COMPLETE_ABORT):
            return ErrorCode.NONE
        if state == (S.PREPARE_COMMIT if commit else S.PREPARE_ABORT):
            return ErrorCode.CONCURRENT_TRANSACTIONS
        return ErrorCode.INVALID_TXN_STATE

    def _fence_and_abort(
        self, current: TransactionMetadata, respond: Callable[[ProducerIdAndEpoch], None]
    ) -> None:
        self._end(current, False, self._server_transaction_version, True, respond)

    def _end(
        self,
        current: TransactionMetadata,
        commit: bool,
        transaction_version: int,
        fence: bool,
        respond: Callable[[ProducerIdAndEpoch], None],
    ) -> None:
        """Write PrepareCommit/PrepareAbort, answer, then have the markers written."""
        next_producer_id = NO_PRODUCER_ID
        epoch_after_fence = current.producer_epoch + (1 if fence else 0)
        if transaction_version >= 2 and is_epoch_exhausted(epoch_after_fence):
            try:
                next_producer_id = self.new_producer_id()
            except KafkaError as failure:
                respond(ProducerIdAndEpoch(failure.code))
                return
        target = transitions.prepare_end(
            current, commit, transaction_version, fence, next_producer_id, self.latest_ms
        )
        transactional_id = current.transactional_id

        def done(error: ErrorCode) -> None:
            if error != ErrorCode.NONE:
                respond(ProducerIdAndEpoch(error))
                return
            # The producer id and epoch the transaction completes with.
            completed = transitions.complete(target, self.latest_ms)
            respond(ProducerIdAndEpoch(error, completed.producer_id, completed.producer_epoch))
            self._send_markers(transactional_id)

        self._transition(target, done)

    def _send_markers(self, transactional_id: str) -> None:
        prepared = self.transactions[transactional_id]
        partition = self.partition_for(transactional_id)
        coordinator_epoch = self.coordinator_epochs[partition]
        if not prepared.partitions:
            self._complete(transactional_id)
            return

        def done(error: ErrorCode) -> None:
            if (
                error != ErrorCode.NONE
                or self.coordinator_epochs.get(partition) != coordinator_epoch
                or self.transactions.get(transactional_id) is not prepared
            ):
                logger.info(
                    "[TransactionCoordinator] markers of %s not all written (%s); the next "
                    "coordinator of partition %s completes it",
                    transactional_id,
                    error.name,
                    partition,
                )
                return
            self._complete(transactional_id)

        self.marker_requests.append(
            MarkerRequest(
                transactional_id,
                prepared.producer_id,
                prepared.producer_epoch,
                coordinator_epoch,
                prepared.state == S.PREPARE_COMMIT,
                tuple(sorted(prepared.partitions)),
                done,
            )
        )

    def _complete(self, transactional_id: str) -> None:
        """Write CompleteCommit/CompleteAbort; a failed write is retried after a backoff,
        unless this coordinator no longer owns the id."""
        prepared = self.transactions.get(transactional_id)
        if prepared is None or not prepared.state.is_prepared or transactional_id in self._pending:
            return

        def done(error: ErrorCode) -> None:
            if error in (
                ErrorCode.NONE,
                ErrorCode.NOT_COORDINATOR,
                ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
            ):
                return
            self.timers.schedule(
                ("complete", transactional_id), self.latest_ms + self.config.retry_backoff_ms
            )

        self._transition(transitions.complete(prepared, self.latest_ms), done)

    # --- writes -------------------------------------------------------------------------------

    def _transition(self, target: TransactionMetadata, then: Callable[[ErrorCode], None]) -> None:
        """Write `target` as the id's record; adopt it when durable, then call `then`."""
        transactional_id = target.transactional_id
        partition = self.partition_for(transactional_id)
        coordinator_epoch = self.coordinator_epochs[partition]
        self._pending[transactional_id] = target
        version = 1 if self.config.transaction_version_level >= 1 else 0
        record = (
            encode_key(TransactionLogKey(transactional_id)),
            encode_value(target.to_value(), version),
        )

        def done(error: ErrorCode) -> None:
            if (
                self.coordinator_epochs.get(partition) != coordinator_epoch
                or self._pending.get(transactional_id) is not target
            ):
                then(ErrorCode.NOT_COORDINATOR)  # unloaded (and maybe loaded again) since
                return
            del self._pending[transactional_id]
            if error != ErrorCode.NONE:
                then(write_error(error))
                return
            self.replay(*record)
            # The log does not hold the last epoch; this coordinator remembers it.
            self.transactions[transactional_id] = replace(
                self.transactions[transactional_id],
                last_producer_epoch=target.last_producer_epoch,
            )
            then(ErrorCode.NONE)

        self.writes.append(Write(partition, (record,), done))

    def is_ending(self, transactional_id: str) -> bool:
        """Whether the id's transaction is between EndTxn and its completion (markers being
        written, or its Complete record): requests for it get CONCURRENT_TRANSACTIONS."""
        current = self.transactions.get(transactional_id)
        pending = self._pending.get(transactional_id)
        return (current is not None and current.state.is_prepared) or (
            pending is not None and pending.state.is_prepared
        )

    # --- DescribeTransactions, ListTransactions -----------------------------------------------

    def describe(self, transactional_id: str) -> TransactionDescription:
        if not transactional_id:
            return TransactionDescription(transactional_id, ErrorCode.INVALID_REQUEST)
        error = self._owner_error(transactional_id)
        if error is not None:
            return TransactionDescription(transactional_id, error)
        return views.describe(transactional_id, self.transactions.get(transactional_id))

    def list_transactions(
        self,
        now_ms: int,
        states: Iterable[str] = (),
        producer_ids: Iterable[int] = (),
        min_duration_ms: int = -1,
    ) -> TransactionListing:
        """ListTransactions over the owned partitions (see `views.list_transactions`)."""
        self._seen(now_ms)
        if self._loading:
            return TransactionListing(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
        return views.list_transactions(
            self.transactions.values(), now_ms, states, producer_ids, min_duration_ms
        )
