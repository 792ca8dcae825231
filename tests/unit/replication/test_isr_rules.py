"""The leader's pure rules: follower fetch state, high watermark over the ISR (strict min ISR,
maximal ISR while an expansion is pending, never backwards), ISR expansion and shrink
decisions, and how AlterPartition answers are applied (Kafka's Partition and Replica)."""

from __future__ import annotations

from odradek.common.errors import ErrorCode
from odradek.replication.isr import (
    IsrState,
    apply_alter_answer,
    effective_min_isr,
    next_high_watermark,
    out_of_sync_replicas,
    should_expand,
)
from odradek.replication.replica_state import FollowerFetchState

LAG_MS = 30_000


def follower(replica_id: int, log_end_offset: int, caught_up_ms: int = 0) -> FollowerFetchState:
    state = FollowerFetchState(replica_id)
    state.log_end_offset = log_end_offset
    state.last_caught_up_time_ms = caught_up_ms
    return state


def never(_: int) -> bool:
    return False


def always(_: int) -> bool:
    return True


def hw(
    current: int,
    leader_end: int,
    followers: dict[int, FollowerFetchState],
    state: IsrState,
    min_isr: int = 1,
    now_ms: int = 100_000,
) -> int:
    return next_high_watermark(
        current, leader_end, followers, state, min_isr, now_ms, LAG_MS, never
    )


# --- follower fetch state (Replica.updateFetchState) ------------------------------------------


def test_a_fetch_at_the_leaders_end_is_caught_up_now() -> None:
    state = FollowerFetchState(2)
    state.update(fetch_offset=10, log_start_offset=0, fetch_time_ms=500, leader_log_end_offset=10)
    assert state.log_end_offset == 10
    assert state.last_caught_up_time_ms == 500


def test_a_fetch_reaching_the_previous_fetchs_end_was_caught_up_then() -> None:
    state = FollowerFetchState(2)
    state.update(10, 0, fetch_time_ms=500, leader_log_end_offset=12)  # behind: not caught up
    assert not state.is_caught_up(12, 500, LAG_MS)
    state.update(12, 0, fetch_time_ms=900, leader_log_end_offset=20)  # reached what 500 saw
    assert state.last_caught_up_time_ms == 500


def test_a_follower_that_never_catches_up_falls_out_of_sync_after_the_lag() -> None:
    state = FollowerFetchState(2)
    state.update(5, 0, fetch_time_ms=1_000, leader_log_end_offset=5)
    for now in range(2_000, 40_000, 1_000):  # it keeps fetching but stays behind a growing log
        state.update(5 + now // 1_000, 0, now, leader_log_end_offset=10 + now // 100)
    assert state.is_caught_up(10 + 39_000 // 100, 31_000, LAG_MS)
    assert not state.is_caught_up(10 + 39_000 // 100, 31_001, LAG_MS)
    assert state.is_caught_up(state.log_end_offset, 10**9, LAG_MS)  # at the leader's end


def test_a_follower_that_never_fetched_is_not_caught_up_even_at_clock_zero() -> None:
    state = FollowerFetchState(2)
    assert not state.is_caught_up(10, 0, LAG_MS)
    state.update(3, 0, fetch_time_ms=0, leader_log_end_offset=10)
    assert not state.is_caught_up(10, 0, LAG_MS)


def test_reset_takes_isr_members_as_caught_up_now() -> None:
    state = follower(2, 50, caught_up_ms=0)
    state.reset(now_ms=7_000, leader_log_end_offset=60, in_sync=True)
    assert state.log_end_offset == -1
    assert state.is_caught_up(60, 7_000 + LAG_MS, LAG_MS)
    state.reset(now_ms=7_000, leader_log_end_offset=60, in_sync=False)
    assert not state.is_caught_up(60, 7_000 + LAG_MS, LAG_MS)


# --- high watermark ---------------------------------------------------------------------------


def test_high_watermark_is_the_smallest_log_end_over_the_isr() -> None:
    followers = {2: follower(2, 7), 3: follower(3, 9)}
    assert hw(0, 10, followers, IsrState.committed((1, 2, 3))) == 7
    assert hw(0, 10, followers, IsrState.committed((1, 3))) == 9  # 2 is not in the ISR


def test_high_watermark_never_moves_back() -> None:
    followers = {2: follower(2, 3)}
    assert hw(5, 10, followers, IsrState.committed((1, 2))) == 5


def test_a_follower_that_has_not_fetched_holds_the_high_watermark() -> None:
    followers = {2: follower(2, -1)}
    assert hw(4, 10, followers, IsrState.committed((1, 2))) == 4


def test_strict_min_isr_keeps_the_high_watermark_while_the_isr_is_too_small() -> None:
    followers = {2: follower(2, 10), 3: follower(3, 0)}
    alone = IsrState.committed((1,))
    assert hw(4, 10, followers, alone, min_isr=2) == 4
    assert hw(4, 10, followers, IsrState.committed((1, 2)), min_isr=2) == 10


def test_effective_min_isr_is_capped_at_the_replication_factor() -> None:
    assert effective_min_isr(2, 1) == 1
    assert effective_min_isr(2, 3) == 2
    assert effective_min_isr(1, 3) == 1


def test_a_pending_expansion_counts_the_replica_being_added() -> None:
    followers = {2: follower(2, 10), 3: follower(3, 6)}
    pending = IsrState.committed((1, 2)).expanding(3)
    assert pending.isr == (1, 2) and pending.maximal_isr == (1, 2, 3)
    assert hw(0, 10, followers, pending) == 6


def test_a_pending_shrink_still_counts_the_replica_being_removed() -> None:
    followers = {2: follower(2, 10), 3: follower(3, 6)}
    pending = IsrState.committed((1, 2, 3)).shrinking((3,))
    assert pending.in_flight == (1, 2)
    assert hw(0, 10, followers, pending) == 6


def test_a_caught_up_eligible_replica_outside_the_isr_is_waited_for() -> None:
    followers = {2: follower(2, 10), 3: follower(3, 8, caught_up_ms=100_000)}
    state = IsrState.committed((1, 2))
    waited = next_high_watermark(0, 10, followers, state, 1, 100_000, LAG_MS, always)
    assert waited == 8
    assert next_high_watermark(0, 10, followers, state, 1, 100_000, LAG_MS, never) == 10


# --- expansion and shrink ---------------------------------------------------------------------


def test_expansion_needs_the_high_watermark_and_the_epoch_start() -> None:
    state = IsrState.committed((1, 2))
    assert should_expand(state, follower(3, 10), 10, 5, always)
    assert not should_expand(state, follower(3, 9), 10, 5, always)  # below the high watermark
    assert not should_expand(state, follower(3, 10), 10, 11, always)  # below the epoch start
    assert not should_expand(state, follower(3, 10), 10, 5, never)  # fenced / unregistered
    assert not should_expand(state, follower(2, 10), 10, 5, always)  # already in
    assert not should_expand(state.expanding(3), follower(3, 10), 10, 5, always)  # in flight


def test_shrink_drops_isr_followers_not_caught_up_within_the_lag() -> None:
    state = IsrState.committed((1, 2, 3))
    followers = {2: follower(2, 10, caught_up_ms=0), 3: follower(3, 4, caught_up_ms=50_000)}
    assert out_of_sync_replicas(state, followers, 1, 10, LAG_MS + 1, LAG_MS) == ()
    assert out_of_sync_replicas(state, followers, 1, 12, LAG_MS + 1, LAG_MS) == (2,)
    assert out_of_sync_replicas(state, followers, 1, 12, 90_000, LAG_MS) == (2, 3)
    assert out_of_sync_replicas(state.shrinking((2,)), followers, 1, 12, 90_000, LAG_MS) == ()


def test_an_isr_member_without_fetch_state_is_out_of_sync() -> None:
    assert out_of_sync_replicas(IsrState.committed((1, 4)), {}, 1, 0, 0, LAG_MS) == (4,)


# --- AlterPartition answers -------------------------------------------------------------------


def test_a_successful_answer_commits_the_controllers_isr() -> None:
    pending = IsrState.committed((1, 2)).expanding(3)
    outcome = apply_alter_answer(pending, (1, 2, 3), 4, 7, ErrorCode.NONE, 4, 8, (1, 2, 3))
    assert outcome.applied and outcome.partition_epoch == 8
    assert outcome.state == IsrState.committed((1, 2, 3))


def test_an_answer_of_another_leader_epoch_or_an_older_partition_epoch_is_ignored() -> None:
    pending = IsrState.committed((1, 2)).expanding(3)
    stale = apply_alter_answer(pending, (1, 2, 3), 4, 7, ErrorCode.NONE, 3, 8, (1, 2, 3))
    assert not stale.applied and stale.state == IsrState.committed((1, 2))
    older = apply_alter_answer(pending, (1, 2, 3), 4, 7, ErrorCode.NONE, 4, 6, (1, 2, 3))
    assert not older.applied and older.partition_epoch == 7


def test_errors_that_wait_for_the_next_image_keep_the_proposal_pending() -> None:
    pending = IsrState.committed((1, 2)).expanding(3)
    for error in (ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.INVALID_UPDATE_VERSION):
        outcome = apply_alter_answer(pending, (1, 2, 3), 4, 7, error, -1, -1, ())
        assert outcome.state is pending and not outcome.applied


def test_not_attempted_goes_back_to_the_committed_isr() -> None:
    pending = IsrState.committed((1, 2)).expanding(3)
    for error in (ErrorCode.OPERATION_NOT_ATTEMPTED, ErrorCode.INELIGIBLE_REPLICA):
        outcome = apply_alter_answer(pending, (1, 2, 3), 4, 7, error, -1, -1, ())
        assert outcome.state == IsrState.committed((1, 2))


def test_an_answer_to_an_older_proposal_changes_nothing() -> None:
    pending = IsrState.committed((1, 2)).expanding(3)
    outcome = apply_alter_answer(pending, (1, 2), 4, 7, ErrorCode.NONE, 4, 9, (1, 2))
    assert outcome.state is pending and outcome.partition_epoch == 7
