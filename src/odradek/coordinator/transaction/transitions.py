"""The next metadata of each transition, as pure functions: nothing here writes or remembers.

Each function takes an id's current `TransactionMetadata` and returns the metadata its record
will hold once written (or an error code), following Kafka's TransactionMetadata.prepare*
rules. The coordinator writes the result and adopts it when the record is replayed.
`previous_producer_id` always becomes the producer id before the transition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from odradek.common.errors import ErrorCode
from odradek.coordinator.transaction.metadata import (
    MAX_PRODUCER_EPOCH,
    NO_PRODUCER_EPOCH,
    TopicPartition,
    TransactionMetadata,
    TransactionState,
)
from odradek.coordinator.transaction.records import NO_PRODUCER_ID


def _to(
    current: TransactionMetadata, state: TransactionState, now_ms: int, **changes: object
) -> TransactionMetadata:
    if not state.can_follow(current.state):
        raise ValueError(
            f"transactional id {current.transactional_id}: {state} cannot follow {current.state}"
        )
    return replace(
        current,
        state=state,
        previous_producer_id=current.producer_id,
        next_producer_id=NO_PRODUCER_ID,
        last_update_timestamp_ms=now_ms,
        **changes,  # type: ignore[arg-type]
    )


def bump_epoch_for_init(
    current: TransactionMetadata, timeout_ms: int, expected_epoch: int | None, now_ms: int
) -> TransactionMetadata | ErrorCode:
    """InitProducerId on a finished transaction: the next epoch, or a retry's same answer.

    Without an expected epoch the bump fences every earlier instance. With one (KIP-360), the
    current epoch bumps; a retry of a bump that already happened (the expected epoch is the
    last one) gets the current epoch again; any other epoch is fenced.
    """
    epoch, last_epoch = current.producer_epoch, current.last_producer_epoch
    if expected_epoch is None:
        epoch, last_epoch = epoch + 1, NO_PRODUCER_EPOCH
    elif epoch == NO_PRODUCER_EPOCH or expected_epoch == epoch:
        epoch, last_epoch = epoch + 1, epoch
    elif expected_epoch != last_epoch:
        return ErrorCode.PRODUCER_FENCED
    return _to(
        current,
        TransactionState.EMPTY,
        now_ms,
        producer_epoch=epoch,
        last_producer_epoch=last_epoch,
        timeout_ms=timeout_ms,
        partitions=frozenset(),
        start_timestamp_ms=-1,
    )


def rotate_producer_id(
    current: TransactionMetadata,
    new_producer_id: int,
    timeout_ms: int,
    now_ms: int,
    record_last_epoch: bool,
) -> TransactionMetadata:
    """InitProducerId once the epoch is exhausted: a new producer id at epoch 0."""
    return _to(
        current,
        TransactionState.EMPTY,
        now_ms,
        producer_id=new_producer_id,
        producer_epoch=0,
        last_producer_epoch=current.producer_epoch if record_last_epoch else NO_PRODUCER_EPOCH,
        timeout_ms=timeout_ms,
        partitions=frozenset(),
        start_timestamp_ms=-1,
    )


def add_partitions(
    current: TransactionMetadata,
    partitions: Iterable[TopicPartition],
    now_ms: int,
    transaction_version: int,
) -> TransactionMetadata:
    """The transaction gains partitions; the first ones start it (and its timeout)."""
    starts = current.state in (
        TransactionState.EMPTY,
        TransactionState.COMPLETE_COMMIT,
        TransactionState.COMPLETE_ABORT,
    )
    return _to(
        current,
        TransactionState.ONGOING,
        now_ms,
        partitions=current.partitions | frozenset(partitions),
        start_timestamp_ms=now_ms if starts else current.start_timestamp_ms,
        client_transaction_version=transaction_version,
    )


def prepare_end(
    current: TransactionMetadata,
    commit: bool,
    transaction_version: int,
    fence: bool,
    next_producer_id: int,
    now_ms: int,
) -> TransactionMetadata:
    """PrepareCommit or PrepareAbort: the decision, and the epoch the markers carry.

    A fence (an abort the coordinator starts: a timeout, or InitProducerId finding the
    transaction open) bumps the epoch, so the producer that opened the transaction is fenced at
    every partition by the markers. Transaction version 2 (KIP-890) bumps it on every commit
    and abort too, so an EndTxn for this transaction can never end the next one; when the epoch
    cannot grow further, `next_producer_id` (>= 0) is the id the transaction completes with.
    """
    epoch, last_epoch = current.producer_epoch, current.last_producer_epoch
    if fence:
        epoch, last_epoch = epoch + 1, NO_PRODUCER_EPOCH
    if transaction_version >= 2 and epoch < MAX_PRODUCER_EPOCH:
        epoch, last_epoch = epoch + 1, epoch
    prepared = _to(
        current,
        TransactionState.PREPARE_COMMIT if commit else TransactionState.PREPARE_ABORT,
        now_ms,
        producer_epoch=epoch,
        last_producer_epoch=last_epoch,
        client_transaction_version=transaction_version,
    )
    return replace(prepared, next_producer_id=next_producer_id)


def complete(current: TransactionMetadata, now_ms: int) -> TransactionMetadata:
    """CompleteCommit or CompleteAbort, once every partition has its marker."""
    state = (
        TransactionState.COMPLETE_COMMIT
        if current.state == TransactionState.PREPARE_COMMIT
        else TransactionState.COMPLETE_ABORT
    )
    producer_id, epoch = current.producer_id, current.producer_epoch
    if current.epoch_bump_on_end and current.next_producer_id != NO_PRODUCER_ID:
        producer_id, epoch = current.next_producer_id, 0
    return _to(
        current,
        state,
        now_ms,
        producer_id=producer_id,
        producer_epoch=epoch,
        last_producer_epoch=current.producer_epoch,
        partitions=frozenset(),
    )


def dead(current: TransactionMetadata, now_ms: int) -> TransactionMetadata:
    """An idle id being deleted: written as a tombstone."""
    return _to(current, TransactionState.DEAD, now_ms, partitions=frozenset())
