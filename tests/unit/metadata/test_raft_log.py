"""RaftLog: the epoch cache, Kafka's fetch validation, truncation, flushes and snapshots."""

from __future__ import annotations

import pytest

from odradek.metadata.raft.log import Diverging, RaftLog, Snapshot, SnapshotNeeded, ValidOffset
from odradek.metadata.raft.messages import Batch, EpochEndOffset, OffsetAndEpoch


def batch(base: int, epoch: int, count: int = 1) -> Batch:
    return Batch(base, epoch, tuple(b"r" for _ in range(count)))


def sample() -> RaftLog:
    """Epoch 1 at [0, 3), epoch 3 at [3, 5), epoch 4 at [5, 6)."""
    return RaftLog((batch(0, 1, 2), batch(2, 1), batch(3, 3, 2), batch(5, 4)))


def test_end_offset_for_epoch_is_where_the_largest_known_epoch_ends() -> None:
    log = sample()
    assert log.end_offset_for_epoch(1) == OffsetAndEpoch(3, 1)
    assert log.end_offset_for_epoch(2) == OffsetAndEpoch(3, 1)
    assert log.end_offset_for_epoch(3) == OffsetAndEpoch(5, 3)
    assert log.end_offset_for_epoch(9) == OffsetAndEpoch(6, 4)
    assert log.end_offset_for_epoch(0) == OffsetAndEpoch(0, 0)
    assert (log.end_offset, log.last_fetched_epoch) == (6, 4)


@pytest.mark.parametrize(
    ("offset", "epoch", "expected"),
    [
        (0, 0, ValidOffset()),
        (3, 1, ValidOffset()),
        (6, 4, ValidOffset()),
        (4, 3, ValidOffset()),
        (4, 1, Diverging(EpochEndOffset(1, 3))),
        (4, 2, Diverging(EpochEndOffset(1, 3))),
        (7, 4, Diverging(EpochEndOffset(4, 6))),
        (2, 0, Diverging(EpochEndOffset(0, 0))),
    ],
)
def test_fetch_validation(offset: int, epoch: int, expected: object) -> None:
    assert sample().validate_fetch(offset, epoch) == expected


def test_fetch_validation_with_a_snapshot() -> None:
    snapshot = Snapshot(OffsetAndEpoch(3, 1), b"s")
    log = RaftLog((batch(3, 3, 2),), snapshot)
    assert log.validate_fetch(2, 1) == SnapshotNeeded(OffsetAndEpoch(3, 1))
    assert log.validate_fetch(3, 2) == SnapshotNeeded(OffsetAndEpoch(3, 1))
    assert log.validate_fetch(4, 0) == SnapshotNeeded(OffsetAndEpoch(3, 1))
    assert log.validate_fetch(3, 1) == ValidOffset()
    assert log.validate_fetch(4, 1) == Diverging(EpochEndOffset(1, 3))
    assert log.validate_fetch(5, 3) == ValidOffset()


def test_truncation_offset_follows_kafkas_truncate_to_end_offset() -> None:
    log = sample()
    assert log.truncation_offset(EpochEndOffset(3, 4)) == 4  # the same epoch: the smaller end
    assert log.truncation_offset(EpochEndOffset(3, 9)) == 5
    assert log.truncation_offset(EpochEndOffset(2, 9)) == 3  # an epoch we lack: where ours ends
    assert log.truncation_offset(EpochEndOffset(0, 2)) == 2


def test_truncation_drops_epochs_and_caps_pending_flushes() -> None:
    log = sample()
    assert log.flushed_offset == 6  # read back from disk
    log.append(batch(6, 4))
    asked = log.request_flush()
    log.truncate_to(3)
    assert (log.end_offset, log.last_fetched_epoch, log.flushed_offset) == (3, 1, 3)
    log.append(batch(3, 5, 4))
    # The fsync asked for before the truncation cannot vouch for what was written after it.
    assert log.mark_flushed(asked) is False
    assert log.flushed_offset == 3
    assert log.mark_flushed(log.request_flush()) is True
    assert log.flushed_offset == 7
    with pytest.raises(ValueError):
        log.truncate_to(4)  # inside a batch


def test_appends_must_be_contiguous_with_non_decreasing_epochs() -> None:
    log = sample()
    with pytest.raises(ValueError):
        log.append(batch(7, 4))
    with pytest.raises(ValueError):
        log.append(batch(6, 3))


def test_a_snapshot_replaces_the_prefix_and_keeps_the_epoch_cache_after_it() -> None:
    log = RaftLog((batch(0, 1), batch(1, 1), batch(2, 3), batch(3, 3), batch(4, 4)))
    log.install_snapshot(Snapshot(OffsetAndEpoch(3, 3), b"s"))
    assert log.log_start_offset == 3
    assert [b.base_offset for b in log.batches] == [3, 4]
    assert log.end_offset_for_epoch(3) == OffsetAndEpoch(4, 3)
    assert log.end_offset_for_epoch(2) == OffsetAndEpoch(3, 0)
    assert log.epoch_before(3) == 3
    log.install_snapshot(Snapshot(OffsetAndEpoch(5, 4), b"s"))
    assert (log.log_start_offset, log.end_offset, log.last_fetched_epoch) == (5, 5, 4)
    assert log.end_offset_for_epoch(4) == OffsetAndEpoch(5, 4)
    with pytest.raises(ValueError):
        log.install_snapshot(Snapshot(OffsetAndEpoch(9, 4), b"s"))


def test_a_fetched_snapshot_replaces_the_whole_log() -> None:
    log = sample()
    log.reset_to_snapshot(Snapshot(OffsetAndEpoch(9, 5), b"s"))
    assert (log.log_start_offset, log.end_offset, log.flushed_offset) == (9, 9, 9)
    assert log.last_fetched_epoch == 5 and not log.batches


def test_read_returns_whole_batches_from_the_one_holding_the_offset() -> None:
    log = sample()
    assert [b.base_offset for b in log.read(1, 10_000)] == [0, 2, 3, 5]
    assert [b.base_offset for b in log.read(3, 1)] == [3]  # at least one batch
    assert [b.base_offset for b in log.batches_between(2, 5)] == [2, 3]
