"""What DescribeTransactions and ListTransactions show of the coordinator's transactions.

Read-only functions over `TransactionMetadata`; the coordinator checks ownership and loading
first.
"""

from __future__ import annotations

from collections.abc import Iterable

from odradek.common.errors import ErrorCode
from odradek.coordinator.transaction.messages import (
    ListedTransaction,
    TransactionDescription,
    TransactionListing,
)
from odradek.coordinator.transaction.metadata import TransactionMetadata, TransactionState


def describe(transactional_id: str, metadata: TransactionMetadata | None) -> TransactionDescription:
    """One DescribeTransactions entry; an unknown (or dying) id is TRANSACTIONAL_ID_NOT_FOUND."""
    if metadata is None or metadata.state == TransactionState.DEAD:
        return TransactionDescription(transactional_id, ErrorCode.TRANSACTIONAL_ID_NOT_FOUND)
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(metadata.partitions):
        by_topic.setdefault(topic, []).append(partition)
    return TransactionDescription(
        transactional_id,
        ErrorCode.NONE,
        state=metadata.state.value,
        timeout_ms=metadata.timeout_ms,
        start_timestamp_ms=metadata.start_timestamp_ms,
        producer_id=metadata.producer_id,
        producer_epoch=metadata.producer_epoch,
        topics=tuple((topic, tuple(ids)) for topic, ids in by_topic.items()),
    )


def list_transactions(
    transactions: Iterable[TransactionMetadata],
    now_ms: int,
    states: Iterable[str] = (),
    producer_ids: Iterable[int] = (),
    min_duration_ms: int = -1,
) -> TransactionListing:
    """ListTransactions, sorted by id. Empty filters match everything; state names that name
    no state are reported back. `min_duration_ms` (v1; -1 for none) keeps transactions whose
    start is more than that long ago; an id with no transaction open has start -1 and passes,
    as in Kafka."""
    state_names = set(states)
    unknown = tuple(sorted(state_names - {state.value for state in TransactionState}))
    wanted_ids = set(producer_ids)
    listed = tuple(
        ListedTransaction(metadata.transactional_id, metadata.producer_id, metadata.state.value)
        for metadata in sorted(transactions, key=lambda m: m.transactional_id)
        if metadata.state != TransactionState.DEAD
        and (not wanted_ids or metadata.producer_id in wanted_ids)
        and (not state_names or metadata.state.value in state_names)
        and (min_duration_ms < 0 or now_ms - metadata.start_timestamp_ms > min_duration_ms)
    )
    return TransactionListing(ErrorCode.NONE, listed, unknown)
