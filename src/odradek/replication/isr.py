"""The leader's ISR decisions and high watermark rule, as pure functions (Kafka's Partition).

ISR state (`IsrState`): the committed ISR (what the metadata image or the controller's last
answer says) and, while an AlterPartition is in flight, the proposal. At most one change is in
flight per partition. While an expansion is pending, the high watermark already counts the
replica being added (the "maximal" ISR: a record is committed only once the larger set has it,
so it is safe whichever way the controller answers); a pending shrink keeps counting the
replicas being removed until the controller agrees.

High watermark (`next_high_watermark`): the smallest log end offset over the leader and the
followers of the maximal ISR, and of followers that are caught up and eligible but not yet in
the ISR (they are about to join; Kafka waits for them too). It never moves back, and under
strict min ISR (KIP-966) it does not move at all while the committed ISR is smaller than the
effective min.insync.replicas, min(min.insync.replicas, replication factor).

Expansion (`should_expand`): a follower outside the ISR whose log reaches both the high
watermark and the start offset of the leader's epoch. Shrink (`out_of_sync_replicas`): ISR
followers not caught up within replica.lag.time.max.ms.

No I/O, no clock: callers pass monotonic milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from odradek.common.errors import ErrorCode
from odradek.replication.replica_state import FollowerFetchState


@dataclass(frozen=True, slots=True)
class IsrState:
    isr: tuple[int, ...]  # committed
    maximal_isr: tuple[int, ...]  # isr, plus the replica of a pending expansion
    in_flight: tuple[int, ...] | None = None  # the ISR proposed to the controller

    @classmethod
    def committed(cls, isr: tuple[int, ...]) -> IsrState:
        return cls(isr, isr)

    def expanding(self, replica_id: int) -> IsrState:
        proposed = tuple(sorted((*self.isr, replica_id)))
        return IsrState(self.isr, proposed, proposed)

    def shrinking(self, removed: Collection[int]) -> IsrState:
        proposed = tuple(r for r in self.isr if r not in removed)
        return IsrState(self.isr, self.isr, proposed)


def effective_min_isr(min_insync_replicas: int, replica_count: int) -> int:
    """A min.insync.replicas above the replication factor cannot be met: cap it (as Kafka)."""
    return max(min(min_insync_replicas, replica_count), 1)


def next_high_watermark(
    current: int,
    leader_log_end_offset: int,
    followers: Mapping[int, FollowerFetchState],
    state: IsrState,
    min_isr: int,
    now_ms: int,
    max_lag_ms: int,
    eligible: Callable[[int], bool],
) -> int:
    """The high watermark after this step: `current` or higher. `min_isr` is effective."""
    if len(state.isr) < min_isr:
        return current
    candidate = leader_log_end_offset
    for replica_id, follower in followers.items():
        end = follower.log_end_offset
        if end >= candidate:
            continue
        if replica_id in state.maximal_isr or (
            follower.is_caught_up(leader_log_end_offset, now_ms, max_lag_ms)
            and eligible(replica_id)
        ):
            candidate = end  # -1 (not fetched yet) holds the high watermark where it is
    return max(current, candidate)


def should_expand(
    state: IsrState,
    follower: FollowerFetchState,
    high_watermark: int,
    leader_epoch_start_offset: int,
    eligible: Callable[[int], bool],
) -> bool:
    return (
        state.in_flight is None
        and follower.replica_id not in state.isr
        and eligible(follower.replica_id)
        and follower.log_end_offset >= high_watermark
        and follower.log_end_offset >= leader_epoch_start_offset
    )


def out_of_sync_replicas(
    state: IsrState,
    followers: Mapping[int, FollowerFetchState],
    local_id: int,
    leader_log_end_offset: int,
    now_ms: int,
    max_lag_ms: int,
) -> tuple[int, ...]:
    """ISR followers that have not caught up within `max_lag_ms` (none while a change is in
    flight)."""
    if state.in_flight is not None:
        return ()
    out: list[int] = []
    for replica_id in state.isr:
        if replica_id == local_id:
            continue
        follower = followers.get(replica_id)
        if follower is None or not follower.is_caught_up(leader_log_end_offset, now_ms, max_lag_ms):
            out.append(replica_id)
    return tuple(out)


# Errors that mean this leader's view is stale: stay pending until the next image resets it.
_WAIT_FOR_IMAGE = frozenset(
    {
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.UNKNOWN_TOPIC_ID,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.INVALID_UPDATE_VERSION,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.NEW_LEADER_ELECTED,
    }
)


@dataclass(frozen=True, slots=True)
class AlterOutcome:
    state: IsrState
    partition_epoch: int
    applied: bool  # the ISR changed (the high watermark may move)


def apply_alter_answer(
    state: IsrState,
    proposed: tuple[int, ...],
    leader_epoch: int,
    partition_epoch: int,
    error_code: int,
    answer_leader_epoch: int,
    answer_partition_epoch: int,
    answer_isr: tuple[int, ...],
) -> AlterOutcome:
    """The partition's ISR state after the controller answered the proposal `proposed`
    (Kafka's handleAlterPartitionError / handleAlterPartitionUpdate). An answer to an older
    proposal than the one in flight changes nothing."""
    unchanged = AlterOutcome(state, partition_epoch, False)
    if state.in_flight != proposed:
        return unchanged
    if error_code != ErrorCode.NONE:
        if error_code in _WAIT_FOR_IMAGE:
            return unchanged
        # OPERATION_NOT_ATTEMPTED / INELIGIBLE_REPLICA (surely not applied) or an unexpected
        # error (Kafka retries): back to the committed state, the next check proposes again
        return AlterOutcome(IsrState.committed(state.isr), partition_epoch, False)
    if answer_leader_epoch != leader_epoch or answer_partition_epoch < partition_epoch:
        return AlterOutcome(IsrState.committed(state.isr), partition_epoch, False)
    return AlterOutcome(IsrState.committed(tuple(answer_isr)), answer_partition_epoch, True)
