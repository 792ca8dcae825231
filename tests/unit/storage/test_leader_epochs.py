"""The leader epoch cache (Kafka's LeaderEpochFileCache rules) and how the log keeps it: appends
assign epochs, truncation and log start moves trim them, the checkpoint survives a restart, is
cut back when it ran ahead of a crashed log, and is rebuilt from the batches when missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from storage_helpers import batch, open_log

from odradek.common.clock import FakeClock
from odradek.common.errors import StorageError
from odradek.storage.fileio import LossyFileIO
from odradek.storage.leader_epochs import CHECKPOINT_NAME, LeaderEpochCache

DIR = Path("/data/orders-0")


@pytest.fixture
def fileio() -> LossyFileIO:
    io = LossyFileIO()
    io.mkdir(DIR)
    return io


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def cache_with(fileio: LossyFileIO, *entries: tuple[int, int]) -> LeaderEpochCache:
    cache = LeaderEpochCache(fileio, DIR)
    for epoch, start in entries:
        cache.assign(epoch, start)
    return cache


# --- the cache --------------------------------------------------------------------------------


def test_end_offsets_follow_kafkas_rules(fileio: LossyFileIO) -> None:
    cache = cache_with(fileio, (1, 0), (3, 100), (6, 250))
    assert cache.end_offset_for(6, 400) == (6, 400)  # the latest epoch ends at the log end
    assert cache.end_offset_for(3, 400) == (3, 250)
    assert cache.end_offset_for(4, 400) == (3, 250)  # the largest epoch at or below 4
    assert cache.end_offset_for(0, 400) == (0, 0)  # below every entry: the first start
    assert cache.end_offset_for(7, 400) == (-1, -1)  # above every entry: unknown
    assert cache.end_offset_for(-1, 400) == (-1, -1)
    assert LeaderEpochCache(fileio, Path("/none")).end_offset_for(0, 5) == (-1, -1)


def test_an_entry_that_contradicts_later_ones_replaces_them(fileio: LossyFileIO) -> None:
    cache = cache_with(fileio, (1, 0), (3, 100), (6, 250))
    cache.assign(6, 300)  # the same epoch, later: nothing new
    cache.assign(5, 200)  # after a truncation to 200 and a new leader at epoch 5
    assert cache.entries() == [(1, 0), (3, 100), (5, 200)]
    cache.assign(5, 150)  # the same epoch starting earlier replaces it
    assert cache.entries() == [(1, 0), (3, 100), (5, 150)]
    cache.assign(-1, 400)  # batches without an epoch change nothing
    assert cache.entries() == [(1, 0), (3, 100), (5, 150)]


def test_truncation_from_either_end(fileio: LossyFileIO) -> None:
    cache = cache_with(fileio, (1, 0), (3, 100), (6, 250))
    cache.truncate_from_end(250)
    assert cache.entries() == [(1, 0), (3, 100)]
    cache.truncate_from_start(120)
    assert cache.entries() == [(3, 120)]
    cache.truncate_from_start(120)
    assert cache.entries() == [(3, 120)]


def test_the_checkpoint_round_trips_and_a_bad_one_is_refused(fileio: LossyFileIO) -> None:
    cache_with(fileio, (1, 0), (3, 100))
    assert fileio.read_file(DIR / CHECKPOINT_NAME) == b"0\n2\n1 0\n3 100\n"
    again = LeaderEpochCache(fileio, DIR)
    assert again.load() and again.entries() == [(1, 0), (3, 100)]
    fileio.replace_file(DIR / CHECKPOINT_NAME, b"0\n3\n1 0\n")
    with pytest.raises(StorageError):
        LeaderEpochCache(fileio, DIR).load()


# --- kept by the log --------------------------------------------------------------------------


def test_appends_assign_epochs_and_a_restart_keeps_them(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    for epoch in (0, 0, 2, 2, 5):
        log.append_as_leader(batch(10), leader_epoch=epoch)
    assert log.leader_epochs.entries() == [(0, 0), (2, 20), (5, 40)]
    assert log.end_offset_for_epoch(2) == (2, 40)
    assert log.end_offset_for_epoch(5) == (5, 50)
    log.close()
    reopened = open_log(DIR, fileio, clock, clean_shutdown=True)
    assert reopened.leader_epochs.entries() == [(0, 0), (2, 20), (5, 40)]


def test_truncation_and_a_moved_log_start_trim_the_epochs(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    for epoch in (0, 2, 5):
        log.append_as_leader(batch(10), leader_epoch=epoch)
    log.truncate_to(25)  # the batch at 20-29 goes whole
    assert log.leader_epochs.entries() == [(0, 0), (2, 10)]
    log.append_as_leader(batch(10), leader_epoch=7)
    log.roll()
    log.delete_records_before(15)
    assert log.leader_epochs.entries() == [(2, 15), (7, 20)]


def test_truncating_at_the_log_end_drops_an_epoch_with_nothing_in_it(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    """A replica became leader at epoch 7 (its start is the log end) and lost the leadership
    before appending; its new leader knows epochs up to 5 and says the log diverges at (5, end
    of log). Truncating to that end must forget epoch 7, or the follower's next fetch carries
    last fetched epoch 7 again and gets the same answer for ever."""
    log = open_log(DIR, fileio, clock)
    for epoch in (2, 5):
        log.append_as_leader(batch(10), leader_epoch=epoch)
    log.assign_epoch_start_offset(7, log.log_end_offset)
    assert log.latest_epoch == 7
    log.truncate_to(20)
    assert log.log_end_offset == 20
    assert log.leader_epochs.entries() == [(2, 0), (5, 10)]
    assert log.latest_epoch == 5
    assert log.end_offset_for_epoch(5) == (5, 20)


def test_a_checkpoint_ahead_of_a_crashed_log_is_cut_back(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(batch(10), leader_epoch=0)
    log.flush()
    log.append_as_leader(batch(10), leader_epoch=4)  # the epoch's file is written, the data not
    fileio.crash()
    reopened = open_log(DIR, fileio, clock)
    assert reopened.log_end_offset == 10
    assert reopened.leader_epochs.entries() == [(0, 0)]
    assert reopened.end_offset_for_epoch(4) == (-1, -1)


def test_a_missing_checkpoint_is_rebuilt_from_the_batches(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    for epoch in (1, 1, 3):
        log.append_as_leader(batch(5), leader_epoch=epoch)
    log.close()
    fileio.delete(DIR / CHECKPOINT_NAME)
    reopened = open_log(DIR, fileio, clock, clean_shutdown=True)
    assert reopened.leader_epochs.entries() == [(1, 0), (3, 10)]
    assert fileio.exists(DIR / CHECKPOINT_NAME)


def test_follower_appends_take_the_epochs_their_batches_carry(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    leader = open_log(Path("/data/leader-0"), fileio, clock)
    leader.append_as_leader(batch(3), leader_epoch=2)
    leader.append_as_leader(batch(3), leader_epoch=6)
    copied = leader.read(0, 1 << 20, min_one_message=True).records
    follower = open_log(DIR, fileio, clock)
    follower.append_as_follower(copied)
    assert follower.leader_epochs.entries() == [(2, 0), (6, 3)]
