"""The log cleaner's core on real segment layouts (in memory, losing unsynced bytes on a crash):
latest record per key, tombstones and their delete horizon (KIP-534), transactions, producer
state, the crash-safe segment swap, and which log the manager picks (Kafka's LogCleaner and
LogCleanerManager rules)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from cleaner_helpers import (
    FailingRenames,
    clean,
    clean_from,
    keyed,
    latest_by_key,
    records_of,
)
from storage_helpers import open_log, read_all

from odradek.common.clock import FakeClock
from odradek.common.errors import InvalidConfigError, InvalidRecordError, KafkaError, StorageError
from odradek.protocol import records
from odradek.storage.cleaner import CleaningAbortedError, group_segments
from odradek.storage.cleaner_batches import ATTR_DELETE_HORIZON
from odradek.storage.cleaner_manager import log_to_clean
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import Log, LogConfig
from odradek.storage.producer_state import AppendOrigin
from odradek.storage.txn_index import ControlRecordType, encode_end_transaction_marker

DIR = Path("/logs/users-0")
NOW = 1_700_000_000_000
DAY = 86_400_000


@pytest.fixture
def fileio() -> LossyFileIO:
    return FailingRenames()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_ms=NOW)


def compacted(segment_batches: int = 3, **changes: object) -> LogConfig:
    size = len(keyed([(b"key-0", b"value-000")])) * segment_batches
    config = LogConfig(segment_bytes=size, cleanup_policy=("compact",), file_delete_delay_ms=0)
    return replace(config, **changes)  # type: ignore[arg-type]


def write(log: Log, key: bytes, value: bytes | None, timestamp_ms: int = NOW) -> int:
    return log.append_as_leader(keyed([(key, value)], timestamp_ms), leader_epoch=0).first_offset


def fill(log: Log, versions: int, keys: int) -> dict[bytes, bytes]:
    latest: dict[bytes, bytes] = {}
    for version in range(versions):
        for k in range(keys):
            key, value = f"key-{k}".encode(), f"value-{version:03d}".encode()
            write(log, key, value)
            latest[key] = value
    return latest


def test_the_latest_record_of_each_key_is_kept_below_the_active_segment(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    latest = fill(log, versions=10, keys=3)
    end = log.log_end_offset
    active_base = log.active_segment.base_offset
    result = clean(log, NOW)
    assert result.end_offset == active_base
    assert log.log_end_offset == end
    kept = records_of(log)
    below = [r for r in kept if r.offset < active_base]
    # Nothing below the cleaner point but the latest of each key not rewritten in the active
    # segment; everything in the active segment as it was.
    assert len({r.key for r in below}) == len(below)
    assert latest_by_key(log) == latest
    assert [r.offset for r in kept if r.offset >= active_base] == list(range(active_base, end))
    # Offsets keep their meaning: each record kept has the offset it was written at.
    for record in kept:
        header = records.read_header(log.read(record.offset, 1 << 20).records)
        assert header.base_offset <= record.offset <= header.last_offset


def test_cleaning_groups_small_segments_into_one_within_segment_bytes(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    fill(log, versions=20, keys=2)
    first = clean(log, NOW)  # each full segment shrinks; the next cleaning merges them
    fill(log, versions=4, keys=2)
    before = len(log.segments)
    clean_from(log, first.end_offset, NOW)
    assert len(log.segments) < before / 2
    for segment in log.segments:
        assert segment.size <= log.config.segment_bytes
    groups = group_segments(log.segments[:-1], 1 << 30, 1 << 30, log.log_end_offset)
    assert len(groups) == 1


def test_a_second_cleaning_without_new_writes_changes_nothing(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    fill(log, versions=5, keys=4)
    first = clean(log, NOW)
    data = read_all(log)
    second = clean_from(log, first.end_offset, NOW)
    assert second.end_offset == first.end_offset
    assert read_all(log) == data


def test_a_tombstone_is_kept_until_its_delete_horizon_then_removed(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted(delete_retention_ms=DAY))
    write(log, b"a", b"1")
    write(log, b"b", b"1")
    write(log, b"a", None)
    fill(log, versions=3, keys=1)  # key-0, pushing the tombstone out of the active segment
    clean(log, NOW)
    assert latest_by_key(log)[b"a"] is None  # the tombstone stays, the value before it went
    assert [r.value for r in records_of(log) if r.key == b"a"] == [None]
    horizon_batches = [
        h for _, h in records.iter_batches(read_all(log)) if h.attributes & ATTR_DELETE_HORIZON
    ]
    assert [h.base_timestamp for h in horizon_batches] == [NOW + DAY]
    # Before the horizon a cleaning keeps it; after it, the tombstone goes.
    clean(log, NOW + DAY - 1)
    assert b"a" in latest_by_key(log)
    clean(log, NOW + DAY)
    assert b"a" not in latest_by_key(log)
    assert latest_by_key(log)[b"b"] == b"1"


def test_a_record_timestamp_survives_the_delete_horizon_rewrite(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    log.append_as_leader(keyed([(b"a", b"1"), (b"z", None)], timestamp_ms=NOW - 5), leader_epoch=0)
    fill(log, versions=3, keys=1)
    clean(log, NOW)
    found = {r.key: r.timestamp for r in records_of(log)}
    assert found[b"a"] == NOW - 5 and found[b"z"] == NOW - 5


def test_a_compacted_topic_refuses_a_record_without_a_key(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    with pytest.raises(InvalidRecordError):
        log.append_as_leader(keyed([(b"a", b"1"), (None, b"2")]), leader_epoch=0)
    assert log.log_end_offset == 0
    plain = open_log(Path("/logs/plain-0"), fileio, clock, LogConfig())
    plain.append_as_leader(keyed([(None, b"2")]), leader_epoch=0)


def test_records_above_the_offset_map_are_kept_and_the_next_cleaning_goes_on(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    latest = fill(log, versions=6, keys=5)
    active_base = log.active_segment.base_offset
    first = clean(log, NOW, capacity=4)  # room for 4 keys: the map stops early
    assert first.end_offset < active_base
    assert latest_by_key(log) == latest
    end = first.end_offset
    for _ in range(20):
        if end >= active_base:
            break
        end = clean_from(log, end, NOW, capacity=4).end_offset
    assert end == active_base
    below = [r for r in records_of(log) if r.offset < active_base]
    assert len({r.key for r in below}) == len(below)
    assert latest_by_key(log) == latest


# --- transactions ---------------------------------------------------------------------------


def txn_batch(pid: int, sequence: int, key: bytes, value: bytes) -> bytearray:
    return bytearray(
        records.encode_batch(
            [(key, value, [])],
            producer_id=pid,
            producer_epoch=0,
            base_sequence=sequence,
            timestamp_ms=NOW,
            attributes=records.ATTR_TRANSACTIONAL,
        )
    )


def marker(log: Log, pid: int, control_type: ControlRecordType) -> int:
    batch = encode_end_transaction_marker(
        control_type, 3, producer_id=pid, producer_epoch=0, timestamp_ms=NOW
    )
    return log.append_as_leader(batch, leader_epoch=0, origin=AppendOrigin.COORDINATOR).first_offset


def control_offsets(log: Log) -> list[int]:
    """Offsets of the markers left (a control batch emptied of its marker, kept for its
    header as Kafka keeps one, does not count)."""
    return [
        h.base_offset
        for _, h in records.iter_batches(read_all(log))
        if h.is_control and h.records_count
    ]


def test_aborted_data_goes_and_its_marker_after_a_later_pass_past_the_horizon(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted(delete_retention_ms=DAY))
    origin = AppendOrigin.COORDINATOR
    log.append_as_leader(txn_batch(7, 0, b"a", b"aborted"), leader_epoch=0, origin=origin)
    log.append_as_leader(txn_batch(8, 0, b"b", b"committed"), leader_epoch=0, origin=origin)
    abort_at = marker(log, 7, ControlRecordType.ABORT)
    commit_at = marker(log, 8, ControlRecordType.COMMIT)
    write(log, b"c", b"plain")
    fill(log, versions=3, keys=1)
    clean(log, NOW)
    view = latest_by_key(log)
    assert b"a" not in view and view[b"b"] == b"committed"
    # The abort marker stays while its data was only now removed; the commit marker stays
    # because data of its transaction is still there.
    assert abort_at in control_offsets(log) and commit_at in control_offsets(log)
    clean(log, NOW + 1)
    # The abort marker's transaction is empty now: it gets a delete horizon, then goes.
    assert abort_at in control_offsets(log)
    clean(log, NOW + DAY + 1)
    assert abort_at not in control_offsets(log)
    assert commit_at in control_offsets(log)
    assert latest_by_key(log)[b"b"] == b"committed"


def test_open_transactions_are_not_cleaned(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    write(log, b"a", b"1")
    write(log, b"a", b"2")
    first = log.append_as_leader(
        txn_batch(9, 0, b"a", b"3"), leader_epoch=0, origin=AppendOrigin.COORDINATOR
    ).first_offset
    fill(log, versions=4, keys=1)
    result = clean(log, NOW)
    assert result.end_offset <= first
    assert [r.value for r in records_of(log) if r.key == b"a"][-1] == b"3"


def test_the_last_batch_of_a_producer_is_kept_so_duplicates_are_still_detected(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    idempotent = bytearray(
        records.encode_batch(
            [(b"a", b"1", [])], producer_id=5, producer_epoch=0, base_sequence=0, timestamp_ms=NOW
        )
    )
    log.append_as_leader(bytearray(idempotent), leader_epoch=0)
    write(log, b"a", b"2")  # supersedes the producer's only record
    fill(log, versions=4, keys=1)
    clean(log, NOW)
    assert latest_by_key(log)[b"a"] == b"2"
    producer_batches = [h for _, h in records.iter_batches(read_all(log)) if h.producer_id == 5]
    assert len(producer_batches) == 1 and producer_batches[0].records_count == 0
    log.close()
    reopened = open_log(DIR, fileio, clock, compacted())
    # A retry of the same batch is a duplicate, answered with its original offset.
    again = reopened.append_as_leader(bytearray(idempotent), leader_epoch=0)
    assert again.first_offset == 0 and again.records_count == 0


# --- the swap -------------------------------------------------------------------------------


def test_a_read_holding_a_replaced_segment_still_reads_it_whole(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    fill(log, versions=6, keys=2)
    old = log.segments[0]
    before = old.read(0, 1 << 20)
    clean(log, NOW)
    assert old not in log.segments
    assert old.read(0, 1 << 20) == before
    assert log.delete_retired_files(NOW) > 0
    assert not any(name.endswith(".deleted") for name in fileio.list_dir(DIR))


@pytest.mark.parametrize("fail_at", range(40))
def test_a_kill_at_any_rename_of_the_swap_recovers_to_a_correct_log(
    fileio: FailingRenames, clock: FakeClock, fail_at: int
) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    latest = fill(log, versions=6, keys=2)
    log.flush()
    end = log.log_end_offset
    recovery_point = log.recovery_point
    fileio.renames = 0
    fileio.fail_at = fail_at
    killed = False
    try:
        clean(log, NOW)
    except (StorageError, KafkaError):
        killed = True
    assert killed == (fail_at < 33)  # a cleaning of this layout makes 33 renames
    fileio.fail_at = None
    fileio.crash()
    reopened = open_log(DIR, fileio, clock, compacted(), recovery_point=recovery_point)
    assert reopened.log_end_offset == end
    assert latest_by_key(reopened) == latest
    names = fileio.list_dir(DIR)
    assert not [n for n in names if n.endswith((".swap", ".cleaned"))]
    # Either the old segments or the cleaned one: no offset is covered twice.
    offsets = [r.offset for r in records_of(reopened)]
    assert offsets == sorted(set(offsets))


# --- choosing the log -----------------------------------------------------------------------


def test_the_dirty_ratio_counts_bytes_between_the_checkpoint_and_the_active_segment(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    fill(log, versions=6, keys=2)
    key = (log.topic, log.partition)
    fresh = log_to_clean(key, log, None, NOW, log.log_end_offset)
    assert fresh.clean_bytes == 0 and fresh.cleanable_ratio == 1.0
    result = clean(log, NOW)
    after = log_to_clean(key, log, result.end_offset, NOW, log.log_end_offset)
    assert after.cleanable_bytes == 0 and after.clean_bytes > 0


def test_min_compaction_lag_keeps_recent_segments_dirty_and_max_lag_forces_a_cleaning(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    config = compacted(min_compaction_lag_ms=DAY, max_compaction_lag_ms=2 * DAY)
    log = open_log(DIR, fileio, clock, config)
    for version in range(6):
        write(log, b"a", str(version).encode(), timestamp_ms=NOW - 3 * DAY)
    for version in range(6):
        write(log, b"a", str(version).encode(), timestamp_ms=NOW)
    key = (log.topic, log.partition)
    chosen = log_to_clean(key, log, None, NOW, log.log_end_offset)
    recent = next(s for s in log.segments if s.max_timestamp == NOW)
    assert chosen.first_uncleanable_offset == recent.base_offset
    assert chosen.needs_compaction_now


# --- cleaning next to retention and truncation ----------------------------------------------


class PausingReads(LossyFileIO):
    """Holds the cleaner thread's first read of a .log file until `resume` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.cleaner_thread: int | None = None
        self.reading = threading.Event()
        self.resume = threading.Event()

    def pread(self, handle: int, size: int, position: int) -> bytes:
        if threading.get_ident() == self.cleaner_thread and not self.resume.is_set():
            self.reading.set()
            assert self.resume.wait(10)
        return super().pread(handle, size, position)


def test_retention_during_a_cleaning_stops_it_and_deletes_what_it_read(clock: FakeClock) -> None:
    fileio = PausingReads()
    log = open_log(DIR, fileio, clock, compacted(cleanup_policy=("compact", "delete")))
    latest = fill(log, versions=6, keys=2)
    outcome: list[BaseException | int] = []

    def cleaning() -> None:
        fileio.cleaner_thread = threading.get_ident()
        try:
            outcome.append(clean(log, NOW).end_offset)
        except BaseException as exc:  # reported to the test below
            outcome.append(exc)

    cleaner = threading.Thread(target=cleaning)
    cleaner.start()
    assert fileio.reading.wait(10)
    retention = threading.Thread(
        target=log.delete_records_before, args=(log.segments[1].base_offset,)
    )
    retention.start()
    deadline = time.monotonic() + 10
    while not log.cleaning_interrupted:  # retention now waits for the cleaner to let go
        assert time.monotonic() < deadline
        time.sleep(0.001)
    fileio.resume.set()
    cleaner.join(10)
    retention.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], CleaningAbortedError)
    assert log.log_start_offset == log.segments[0].base_offset > 0
    # Nothing was swapped; the next cleaning runs as usual.
    assert not [n for n in fileio.list_dir(DIR) if n.endswith((".cleaned", ".swap"))]
    clean(log, NOW)
    assert latest_by_key(log) == latest


def test_a_truncation_below_the_checkpoint_makes_the_cut_part_dirty_again(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, compacted())
    fill(log, versions=6, keys=2)
    result = clean(log, NOW)
    log.truncate_to(result.end_offset - 2)
    cut = log.log_end_offset
    assert cut <= result.end_offset - 2
    fill(log, versions=4, keys=2)  # the log grows past the old checkpoint again
    key = (log.topic, log.partition)
    chosen = log_to_clean(key, log, result.end_offset, NOW, log.log_end_offset)
    assert chosen.first_dirty_offset <= cut


@pytest.mark.parametrize("codec", [1, 2, 3, 4], ids=["gzip", "snappy", "lz4", "zstd"])
def test_a_compressed_batch_is_rebuilt_with_its_codec(
    fileio: LossyFileIO, clock: FakeClock, codec: int
) -> None:
    log = open_log(DIR, fileio, clock, compacted(segment_batches=2))
    pairs: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]] = [
        (b"a", b"old", []),
        (b"b", b"kept", [("h", b"1")]),
        (b"a", b"new", []),
        (b"c", None, []),
    ]
    batch = bytearray(records.encode_batch(pairs, timestamp_ms=NOW, compression=codec))
    log.append_as_leader(batch, leader_epoch=0)
    fill(log, versions=4, keys=1)
    clean(log, NOW)
    first = read_all(log)
    header = records.read_header(first)
    assert header.compression == codec
    kept = records.decode_records(first[: header.size])[1]
    assert [(r.offset, r.key, r.value, r.headers) for r in kept] == [
        (1, b"b", b"kept", (("h", b"1"),)),
        (2, b"a", b"new", ()),
        (3, b"c", None, ()),
    ]


def test_compaction_configs_are_checked_as_kafka_checks_them() -> None:
    with pytest.raises(InvalidConfigError, match=r"min\.cleanable\.dirty\.ratio"):
        LogConfig(min_cleanable_dirty_ratio=1.5)
    with pytest.raises(InvalidConfigError, match=r"min\.compaction\.lag\.ms"):
        LogConfig(min_compaction_lag_ms=10, max_compaction_lag_ms=5)
    assert LogConfig(cleanup_policy=("compact", "delete")).compact
    assert not LogConfig().compact
