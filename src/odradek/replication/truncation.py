"""Where a follower's log diverges from its leader's (KIP-101, KIP-279, KIP-595's Fetch v12+).

Leader side (`diverging_epoch`, Kafka's Partition.readRecords): a follower fetching from
`fetch_offset` says the epoch of its last batch. If the leader's log has that epoch ending
before `fetch_offset`, or knows only an older epoch, the follower's log has records the
leader's does not: the answer names (largest epoch at or below it, where that epoch ends) and
carries no records.

Follower side (`truncation_offset`, Kafka's AbstractFetcherThread.getOffsetTruncationState):
from the leader's (epoch, end offset) and the follower's own end of that epoch, the offset to
truncate to, and whether that is final. When the follower does not know the leader's epoch, it
truncates to the end of its largest epoch below it and asks again (its next fetch carries the
new last epoch).

Pure functions; epoch lookups are passed in as callables over the leader epoch cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from odradek.common.errors import ErrorCode, KafkaError

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1

EndOffsetForEpoch = Callable[[int], tuple[int, int]]  # epoch -> (epoch, end offset) or (-1, -1)


def diverging_epoch(
    last_fetched_epoch: int,
    fetch_offset: int,
    log_start_offset: int,
    end_offset_for_epoch: EndOffsetForEpoch,
) -> tuple[int, int] | None:
    """(epoch, end offset) the follower must truncate by, or None when its log is a prefix
    of the leader's. Raises OFFSET_OUT_OF_RANGE as Kafka does when the epoch's end is unknown
    or the fetch offset is below the log start."""
    epoch, end_offset = end_offset_for_epoch(last_fetched_epoch)
    if epoch == UNDEFINED_EPOCH or end_offset == UNDEFINED_OFFSET:
        raise KafkaError(
            f"the end offset of the last fetched epoch {last_fetched_epoch} is unknown",
            ErrorCode.OFFSET_OUT_OF_RANGE,
        )
    if fetch_offset < log_start_offset:
        raise KafkaError(
            f"offset {fetch_offset} is below the log start offset {log_start_offset}",
            ErrorCode.OFFSET_OUT_OF_RANGE,
        )
    if epoch < last_fetched_epoch or end_offset < fetch_offset:
        return epoch, end_offset
    return None


@dataclass(frozen=True, slots=True)
class Truncation:
    offset: int
    completed: bool  # False: truncated to an intermediate point, the leader is asked again


def truncation_offset(
    leader_epoch: int,
    leader_end_offset: int,
    log_end_offset: int,
    fallback_offset: int,
    end_offset_for_epoch: EndOffsetForEpoch,
) -> Truncation:
    """Where to truncate given the leader's (epoch, end offset) for our last epoch.
    `fallback_offset` (the follower's high watermark) is used when the leader knows no end."""
    if leader_end_offset == UNDEFINED_OFFSET:
        return Truncation(min(fallback_offset, log_end_offset), True)
    if leader_epoch == UNDEFINED_EPOCH:
        return Truncation(min(leader_end_offset, log_end_offset), True)
    follower_epoch, follower_end = end_offset_for_epoch(leader_epoch)
    if follower_epoch == UNDEFINED_EPOCH or follower_end == UNDEFINED_OFFSET:
        # the follower tracks no epoch at or below the leader's: take the leader's offset
        return Truncation(min(leader_end_offset, log_end_offset), True)
    if follower_epoch != leader_epoch:
        return Truncation(min(follower_end, log_end_offset), False)
    return Truncation(min(follower_end, leader_end_offset, log_end_offset), True)
