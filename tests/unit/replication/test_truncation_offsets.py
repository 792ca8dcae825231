"""Where a follower's log diverges from its leader's: the leader's diverging_epoch answer and
the follower's truncation offset (KIP-101 / KIP-279, Kafka's Partition.readRecords and
AbstractFetcherThread.getOffsetTruncationState), over real leader epoch caches."""

from __future__ import annotations

from pathlib import Path

import pytest

from odradek.common.errors import ErrorCode, KafkaError
from odradek.replication.truncation import Truncation, diverging_epoch, truncation_offset
from odradek.storage.fileio import LossyFileIO
from odradek.storage.leader_epochs import LeaderEpochCache


def cache(*entries: tuple[int, int]) -> LeaderEpochCache:
    fileio = LossyFileIO()
    fileio.mkdir(Path("/data/t-0"))
    epochs = LeaderEpochCache(fileio, Path("/data/t-0"))
    for epoch, start in entries:
        epochs.assign(epoch, start)
    return epochs


def lookup(epochs: LeaderEpochCache, log_end_offset: int):  # type: ignore[no-untyped-def]
    return lambda epoch: epochs.end_offset_for(epoch, log_end_offset)


# Leader: epoch 1 from 0, epoch 3 from 10, log end 15.
LEADER = cache((1, 0), (3, 10))


def leader_answer(last_fetched_epoch: int, fetch_offset: int) -> tuple[int, int] | None:
    return diverging_epoch(last_fetched_epoch, fetch_offset, 0, lookup(LEADER, 15))


def test_a_prefix_of_the_leaders_log_does_not_diverge() -> None:
    assert leader_answer(3, 15) is None
    assert leader_answer(3, 12) is None
    assert leader_answer(1, 10) is None  # epoch 1 ends at 10 on the leader too


def test_records_of_an_epoch_past_its_end_on_the_leader_diverge() -> None:
    # the follower wrote epoch 1 up to 12 under an old leader; the leader's epoch 1 ends at 10
    assert leader_answer(1, 12) == (1, 10)


def test_an_epoch_the_leader_never_had_diverges_at_the_largest_one_below() -> None:
    # the follower's last epoch is 2 (a leader that lost its records): the leader has 1 below
    assert leader_answer(2, 11) == (1, 10)
    # even when its log ends where the leader's epoch 1 does: its last batch is not the leader's
    assert leader_answer(2, 10) == (1, 10)


def test_an_unknown_epoch_or_a_fetch_below_the_log_start_is_out_of_range() -> None:
    with pytest.raises(KafkaError) as unknown:
        leader_answer(7, 20)
    assert unknown.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    with pytest.raises(KafkaError) as below:
        diverging_epoch(3, 4, 5, lookup(LEADER, 15))
    assert below.value.code == ErrorCode.OFFSET_OUT_OF_RANGE


def test_follower_truncates_to_the_leaders_end_of_a_shared_epoch() -> None:
    follower = cache((1, 0))  # epoch 1 up to its log end 12
    assert truncation_offset(1, 10, 12, 0, lookup(follower, 12)) == Truncation(10, True)


def test_follower_truncates_to_its_own_end_of_a_shared_epoch_when_shorter() -> None:
    # follower: epoch 1 from 0, epoch 2 from 8 (never reached the leader), log end 11
    follower = cache((1, 0), (2, 8))
    assert truncation_offset(1, 10, 11, 0, lookup(follower, 11)) == Truncation(8, True)


def test_an_epoch_the_follower_does_not_know_truncates_partway_and_asks_again() -> None:
    # leader says epoch 3 ends at 14; the follower has 1 then 4 (from 9): truncate to the
    # end of its largest epoch below 3 (epoch 1 ends at 9) and fetch again
    follower = cache((1, 0), (4, 9))
    assert truncation_offset(3, 14, 12, 0, lookup(follower, 12)) == Truncation(9, False)


def test_never_truncates_above_the_log_end() -> None:
    follower = cache((1, 0))
    assert truncation_offset(1, 50, 12, 0, lookup(follower, 12)) == Truncation(12, True)


def test_an_unknown_end_on_the_leader_falls_back_to_the_high_watermark() -> None:
    follower = cache((1, 0))
    assert truncation_offset(-1, -1, 12, 7, lookup(follower, 12)) == Truncation(7, True)


def test_a_follower_without_epochs_takes_the_leaders_offset() -> None:
    follower = cache()
    assert truncation_offset(2, 6, 12, 0, lookup(follower, 12)) == Truncation(6, True)
