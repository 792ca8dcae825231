"""Which log the cleaner takes and where it goes on from: only compacted logs, the filthiest one
over min.cleanable.dirty.ratio (or one past max.compaction.lag.ms), nothing above the high
watermark, and the first dirty offset kept in each log dir's `cleaner-offset-checkpoint`
across restarts (Kafka's LogCleanerManager)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from cleaner_helpers import keyed, latest_by_key, records_of

from odradek.common.clock import FakeClock
from odradek.storage.checkpoints import CLEANER_OFFSET_CHECKPOINT, read_offsets_checkpoint
from odradek.storage.cleaner_manager import CleanerConfig, LogCleanerManager
from odradek.storage.cleaner_thread import LogCleaner
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import Log, LogConfig
from odradek.storage.log_manager import LogManager

DIR = Path("/data")
NOW = 1_700_000_000_000
COMPACTED = LogConfig(segment_bytes=300, cleanup_policy=("compact",), file_delete_delay_ms=0)


def manager_with(fileio: LossyFileIO, clock: FakeClock) -> LogManager:
    manager = LogManager([DIR], LogConfig(), fileio=fileio, clock=clock)
    manager.load()
    return manager


def fill(log: Log, versions: int, keys: int = 2, timestamp_ms: int = NOW) -> None:
    for version in range(versions):
        for key in range(keys):
            pair = (b"key-%d" % key, b"value-%03d" % version)
            log.append_as_leader(keyed([pair], timestamp_ms), leader_epoch=0)


def test_only_compacted_logs_over_their_dirty_ratio_are_taken_filthiest_first() -> None:
    fileio, clock = LossyFileIO(), FakeClock(wall_ms=NOW)
    logs = manager_with(fileio, clock)
    plain = logs.get_or_create("plain", 0, LogConfig(segment_bytes=300))
    never = logs.get_or_create("never", 0, replace(COMPACTED, min_cleanable_dirty_ratio=1.0))
    half = logs.get_or_create("half", 0, replace(COMPACTED, min_cleanable_dirty_ratio=0.01))
    heavily = logs.get_or_create("heavily", 0, COMPACTED)
    for log in (plain, never, half, heavily):
        fill(log, versions=10)
    manager = LogCleanerManager(logs)
    cleaner = LogCleaner(manager, CleanerConfig(dedupe_buffer_size=1 << 20), clock)
    assert {c.topic_partition for c in manager.candidates(NOW)} == {
        ("never", 0),
        ("half", 0),
        ("heavily", 0),
    }
    # Three dirty logs of ratio 1.0: "never" needs more than 1.0; the other two are tied.
    cleaned = [cleaner.clean_once(), cleaner.clean_once()]
    assert all(r is not None for r in cleaned)
    assert cleaner.clean_once() is None
    fill(half, versions=10)
    fill(heavily, versions=2)
    ratios = {c.topic_partition: c.cleanable_ratio for c in manager.candidates(NOW)}
    assert 0 < ratios[("heavily", 0)] < ratios[("half", 0)] < 1
    chosen = manager.grab_filthiest_log(NOW)
    assert chosen is not None and chosen.topic_partition == ("half", 0)
    assert all(c.topic_partition != ("half", 0) for c in manager.candidates(NOW))
    manager.release(chosen.topic_partition)


def test_max_compaction_lag_takes_a_log_below_its_dirty_ratio() -> None:
    fileio, clock = LossyFileIO(), FakeClock(wall_ms=NOW)
    logs = manager_with(fileio, clock)
    config = replace(COMPACTED, min_cleanable_dirty_ratio=1.0, max_compaction_lag_ms=60_000)
    log = logs.get_or_create("lagging", 0, config)
    fill(log, versions=10, timestamp_ms=NOW - 120_000)
    manager = LogCleanerManager(logs)
    chosen = manager.grab_filthiest_log(NOW)
    assert chosen is not None and chosen.needs_compaction_now
    manager.release(chosen.topic_partition)
    log.update_config(replace(config, max_compaction_lag_ms=2**63 - 1))
    assert manager.grab_filthiest_log(NOW) is None  # a ratio of 1.0 is never exceeded


def test_nothing_above_the_high_watermark_is_cleaned() -> None:
    fileio, clock = LossyFileIO(), FakeClock(wall_ms=NOW)
    logs = manager_with(fileio, clock)
    log = logs.get_or_create("replicated", 0, COMPACTED)
    fill(log, versions=10)
    manager = LogCleanerManager(logs, high_watermark=lambda _, log: log.segments[1].base_offset)
    chosen = manager.grab_filthiest_log(NOW)
    assert chosen is not None
    assert chosen.first_uncleanable_offset == log.segments[1].base_offset


def test_the_checkpoint_survives_a_restart_and_the_next_cleaning_starts_there() -> None:
    fileio, clock = LossyFileIO(), FakeClock(wall_ms=NOW)
    logs = manager_with(fileio, clock)
    log = logs.get_or_create("users", 0, COMPACTED)
    fill(log, versions=10)
    cleaner = LogCleaner(LogCleanerManager(logs), CleanerConfig(dedupe_buffer_size=1 << 20), clock)
    result = cleaner.clean_once()
    assert result is not None
    on_disk = read_offsets_checkpoint(fileio, DIR / CLEANER_OFFSET_CHECKPOINT)
    assert on_disk == {("users", 0): result.end_offset}
    expected = latest_by_key(log)
    logs.close()

    reloaded = manager_with(fileio, clock)
    log = reloaded.get("users", 0)
    assert log is not None
    log.update_config(COMPACTED)
    manager = LogCleanerManager(reloaded)
    assert manager.checkpoint_of(("users", 0)) == result.end_offset
    assert manager.grab_filthiest_log(NOW) is None  # clean below the active segment
    assert latest_by_key(log) == expected


def test_the_threads_clean_in_the_background_and_stop() -> None:
    fileio, clock = LossyFileIO(), FakeClock(wall_ms=NOW)
    logs = manager_with(fileio, clock)
    log = logs.get_or_create("background", 0, COMPACTED)
    fill(log, versions=10)
    cleaner = LogCleaner(
        LogCleanerManager(logs),
        CleanerConfig(threads=2, backoff_ms=1, dedupe_buffer_size=1 << 20),
        clock,
    )
    cleaner.start()
    threads = [t for t in threading.enumerate() if t.name.startswith("log-cleaner-")]
    assert len(threads) == 2
    try:
        deadline = time.monotonic() + 10
        while cleaner.cleanings == 0:
            assert time.monotonic() < deadline, "no cleaning within 10 s"
            time.sleep(0.01)
    finally:
        cleaner.stop()
    assert not [t for t in threads if t.is_alive()]
    assert len(records_of(log)) < 20


def test_a_corrupt_segment_is_left_as_it_is_and_the_log_is_not_tried_again() -> None:
    fileio, clock = LossyFileIO(), FakeClock(wall_ms=NOW)
    logs = manager_with(fileio, clock)
    log = logs.get_or_create("corrupt", 0, COMPACTED)
    fill(log, versions=10)
    segment = log.segments[1]
    data = fileio._files[segment.log_path].data  # the bytes on "disk"
    data[8:12] = (2**31 - 1).to_bytes(4, "big")  # the first batch's length runs off the file
    before = [(s.base_offset, s.size) for s in log.segments]
    manager = LogCleanerManager(logs)
    cleaner = LogCleaner(manager, CleanerConfig(dedupe_buffer_size=1 << 20), clock)
    assert cleaner.clean_once() is None
    assert manager.uncleanable == {("corrupt", 0)}
    assert [(s.base_offset, s.size) for s in log.segments] == before
    assert not [n for n in fileio.list_dir(log.directory) if n.endswith((".cleaned", ".swap"))]
    assert manager.grab_filthiest_log(NOW) is None
