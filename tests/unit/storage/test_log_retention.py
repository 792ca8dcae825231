"""Retention on real segment layouts, driven by a fake clock: whole segments past retention.ms
(by their newest record) or beyond retention.bytes are deleted, the log start offset moves to
the first segment kept, an expired active segment is rolled first, and only cleanup.policy
`delete` deletes anything. Kafka's UnifiedLog.deleteOldSegments rules."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from storage_helpers import batch, open_log

from odradek.common.clock import FakeClock
from odradek.common.errors import OffsetOutOfRangeError
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import Log, LogConfig

DIR = Path("/logs/clicks-0")
HOUR = 3_600_000
NOW = 1_700_000_000_000


@pytest.fixture
def fileio() -> LossyFileIO:
    return LossyFileIO()


def filled(fileio: LossyFileIO, config: LogConfig, ages_h: list[int]) -> Log:
    """A log with one 2-record batch per age (hours before NOW), 3 batches per segment."""
    log = open_log(DIR, fileio, FakeClock(wall_ms=NOW), config)
    for age in ages_h:
        log.append_as_leader(batch(2, value_size=50, timestamp_ms=NOW - age * HOUR), leader_epoch=0)
    return log


def segment_config(**changes: object) -> LogConfig:
    size = len(batch(2, value_size=50)) * 3
    return replace(LogConfig(segment_bytes=size), **changes)  # type: ignore[arg-type]


def test_segments_whose_newest_record_is_past_retention_ms_go(fileio: LossyFileIO) -> None:
    log = filled(fileio, segment_config(retention_ms=10 * HOUR), [30, 29, 28, 20, 12, 11, 5, 4])
    assert [s.base_offset for s in log.segments] == [0, 6, 12]
    size = log.size_bytes
    # The second segment's newest record (11 h) is past 10 h too; the third (4 h) is not.
    assert log.apply_retention(NOW) == 12
    assert [s.base_offset for s in log.segments] == [12]
    assert log.size_bytes < size
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 1 << 20)
    assert log.read(12, 1 << 20).records
    assert log.apply_retention(NOW) == 12  # nothing more is due


def test_when_every_segment_expired_the_active_one_rolls_and_the_log_starts_at_its_end(
    fileio: LossyFileIO,
) -> None:
    log = filled(fileio, segment_config(retention_ms=HOUR), [9, 8, 7, 6])
    assert log.apply_retention(NOW) == 8 == log.log_end_offset
    assert log.size_bytes == 0
    assert log.append_as_leader(batch(1), leader_epoch=0).first_offset == 8


def test_retention_bytes_keeps_the_newest_segments_within_the_limit(fileio: LossyFileIO) -> None:
    one_segment = len(batch(2, value_size=50)) * 3
    config = segment_config(retention_ms=-1, retention_bytes=one_segment + 10)
    log = filled(fileio, config, [1] * 8)  # segments of 3, 3 and 2 batches
    # Only whole segments that fit in the excess over the limit go (Kafka's rule): the excess
    # is 5 batches less 10 bytes, which the first segment (3 batches) fits in and the second
    # no longer does.
    assert log.apply_retention(NOW) == 6
    assert [s.base_offset for s in log.segments] == [6, 12]


@pytest.mark.parametrize(
    "changes",
    [{"cleanup_policy": ("compact",)}, {"retention_ms": -1}],
    ids=["compacted", "forever"],
)
def test_nothing_goes_without_delete_policy_or_with_infinite_retention(
    fileio: LossyFileIO, changes: dict[str, object]
) -> None:
    log = filled(fileio, segment_config(**{"retention_ms": HOUR, **changes}), [30, 29, 28, 27])
    assert log.apply_retention(NOW) == 0
    assert len(log.segments) == 2


def retired_files(fileio: LossyFileIO) -> list[str]:
    return sorted(p.name for p in fileio.file_paths() if p.name.endswith(".deleted"))


def test_deleted_segments_files_wait_for_file_delete_delay_ms(fileio: LossyFileIO) -> None:
    config = segment_config(retention_ms=10 * HOUR, file_delete_delay_ms=60_000)
    log = filled(fileio, config, [30, 29, 28, 2])
    assert log.apply_retention(NOW) == 6
    assert retired_files(fileio) == [
        "00000000000000000000.index.deleted",
        "00000000000000000000.log.deleted",
        "00000000000000000000.timeindex.deleted",
    ]
    assert log.delete_retired_files(NOW + 59_999) == 0
    assert log.delete_retired_files(NOW + 60_000) == 3
    assert retired_files(fileio) == []


def test_retired_files_left_by_a_stop_are_removed_when_the_log_opens(fileio: LossyFileIO) -> None:
    config = segment_config(retention_ms=10 * HOUR, file_delete_delay_ms=60_000)
    log = filled(fileio, config, [30, 29, 28, 2])
    log.apply_retention(NOW)
    log.close()
    assert retired_files(fileio)
    open_log(DIR, fileio, FakeClock(wall_ms=NOW), config)
    assert retired_files(fileio) == []


def test_without_a_delay_files_go_at_once(fileio: LossyFileIO) -> None:
    log = filled(fileio, segment_config(retention_ms=10 * HOUR, file_delete_delay_ms=0), [30] * 4)
    assert log.apply_retention(NOW) == 8
    assert retired_files(fileio) == []
    assert not fileio.exists(DIR / "00000000000000000000.log")
