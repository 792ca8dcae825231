from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from storage_helpers import base_offsets, batch, open_log, read_all

from odradek.common.clock import FakeClock
from odradek.common.errors import (
    CorruptRecordError,
    KafkaError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from odradek.protocol import records
from odradek.storage.fileio import LossyFileIO, OsFileIO
from odradek.storage.log import Log, LogConfig, parse_partition_dir
from odradek.storage.producer_state import AppendOrigin

DIR = Path("/logs/orders-3")


@pytest.fixture
def fileio() -> LossyFileIO:
    return LossyFileIO()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_ms=1_700_000_000_000)


def test_new_log_has_one_empty_segment_named_like_kafka(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    assert (log.topic, log.partition) == ("orders", 3)
    assert (log.log_start_offset, log.log_end_offset) == (0, 0)
    assert fileio.list_dir(DIR) == [
        "00000000000000000000.index",
        "00000000000000000000.log",
        "00000000000000000000.timeindex",
    ]


def test_parse_partition_dir() -> None:
    assert parse_partition_dir("my-topic-12") == ("my-topic", 12)
    with pytest.raises(ValueError):
        parse_partition_dir("nodash")
    with pytest.raises(ValueError):
        parse_partition_dir("topic-x")


def test_append_assigns_offsets_and_read_returns_whole_batches(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    first = log.append_as_leader(batch(3), leader_epoch=7)
    second = log.append_as_leader(batch(2), leader_epoch=7)
    assert (first.first_offset, first.last_offset, first.records_count) == (0, 2, 3)
    assert (second.first_offset, second.last_offset) == (3, 4)
    assert first.log_append_time_ms == -1
    assert log.log_end_offset == 5

    data = log.read(0, 1 << 20).records
    assert base_offsets(data) == [0, 3]
    header = records.read_header(data)
    assert header.partition_leader_epoch == 7
    # An offset inside a batch returns that whole batch.
    assert base_offsets(log.read(4, 1 << 20).records) == [3]
    _, decoded = records.decode_records(log.read(3, 1 << 20).records)
    assert [r.offset for r in decoded] == [3, 4]


def test_read_bounds(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(batch(1), leader_epoch=0)
    assert log.read(1, 100).records == b""
    with pytest.raises(OffsetOutOfRangeError):
        log.read(2, 100)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100)


def test_max_bytes_and_min_one_message(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock)
    sizes = []
    for _ in range(4):
        produced = batch(1, value_size=100)
        sizes.append(len(produced))
        log.append_as_leader(produced, leader_epoch=0)
    size = sizes[0]
    assert base_offsets(log.read(0, size * 2 + 10).records) == [0, 1]
    assert base_offsets(log.read(0, 10).records) == [0]  # at least one batch
    assert log.read(0, 10, min_one_message=False).records == b""
    assert base_offsets(log.read(1, size, min_one_message=False).records) == [1]


def test_max_offset_is_an_exclusive_bound_on_base_offsets(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    for _ in range(4):
        log.append_as_leader(batch(2), leader_epoch=0)
    assert base_offsets(log.read(0, 1 << 20, max_offset=4).records) == [0, 2]
    assert base_offsets(log.read(0, 1 << 20, max_offset=5).records) == [0, 2, 4]
    assert log.read(4, 1 << 20, max_offset=4).records == b""


def test_roll_by_size_and_read_across_segments(fileio: LossyFileIO, clock: FakeClock) -> None:
    size = len(batch(1, value_size=200))
    config = LogConfig(segment_bytes=size * 3)
    log = open_log(DIR, fileio, clock, config)
    for _ in range(10):
        log.append_as_leader(batch(1, value_size=200), leader_epoch=0)
    assert [s.base_offset for s in log.segments] == [0, 3, 6, 9]
    assert all(s.size <= config.segment_bytes for s in log.segments)
    # A read stays in one segment, then the next read moves on.
    assert base_offsets(log.read(0, 1 << 20).records) == [0, 1, 2]
    assert base_offsets(log.read(3, 1 << 20).records) == [3, 4, 5]
    assert base_offsets(read_all(log)) == list(range(10))
    names = [n for n in fileio.list_dir(DIR) if n.endswith(".log")]
    assert names == [f"{base:020d}.log" for base in (0, 3, 6, 9)]


def test_roll_by_time_uses_first_batch_timestamp(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock, LogConfig(segment_ms=1_000))
    log.append_as_leader(batch(1, timestamp_ms=10_000), leader_epoch=0)
    log.append_as_leader(batch(1, timestamp_ms=11_000), leader_epoch=0)
    assert len(log.segments) == 1
    log.append_as_leader(batch(1, timestamp_ms=11_001), leader_epoch=0)
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_roll_by_time_without_timestamps_uses_the_clock(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock, LogConfig(segment_ms=1_000))
    log.append_as_leader(batch(1, timestamp_ms=-1), leader_epoch=0)
    clock.advance(999)
    log.append_as_leader(batch(1, timestamp_ms=-1), leader_epoch=0)
    assert len(log.segments) == 1
    clock.advance(2)
    log.append_as_leader(batch(1, timestamp_ms=-1), leader_epoch=0)
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_roll_when_index_is_full(fileio: LossyFileIO, clock: FakeClock) -> None:
    config = LogConfig(index_interval_bytes=1, segment_index_bytes=16)
    log = open_log(DIR, fileio, clock, config)
    for i in range(6):
        log.append_as_leader(batch(1, timestamp_ms=1_000 + i), leader_epoch=0)
    assert len(log.segments) > 1
    assert all(len(s.offset_index) <= 2 for s in log.segments)


def test_log_append_time_rewrites_max_timestamp(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock, LogConfig(message_timestamp_type="LogAppendTime"))
    result = log.append_as_leader(batch(2, timestamp_ms=5), leader_epoch=0)
    assert result.log_append_time_ms == clock.wall_ms()
    data = log.read(0, 1 << 20).records
    records.validate_batches(data, 1 << 20)  # the CRC was recomputed
    header, decoded = records.decode_records(data)
    assert header.timestamp_type == 1
    assert header.max_timestamp == clock.wall_ms()
    assert [r.timestamp for r in decoded] == [clock.wall_ms()] * 2


def test_corrupt_batch_is_rejected_and_nothing_appended(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    produced = batch(2)
    produced[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError):
        log.append_as_leader(produced, leader_epoch=0)
    assert log.log_end_offset == 0
    assert log.active_segment.size == 0


def test_oversize_batch_is_rejected(fileio: LossyFileIO, clock: FakeClock) -> None:
    produced = batch(1, value_size=500)
    log = open_log(DIR, fileio, clock, LogConfig(max_message_bytes=len(produced) - 1))
    with pytest.raises(RecordTooLargeError):
        log.append_as_leader(produced, leader_epoch=0)
    log = open_log(Path("/logs/x-0"), fileio, clock, LogConfig(segment_bytes=len(produced) - 1))
    with pytest.raises(KafkaError):
        log.append_as_leader(produced, leader_epoch=0)
    assert log.log_end_offset == 0


def test_several_batches_in_one_append(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock)
    produced = batch(2) + batch(3) + batch(1)
    result = log.append_as_leader(produced, leader_epoch=0)
    assert (result.first_offset, result.last_offset, result.records_count) == (0, 5, 6)
    assert base_offsets(log.read(0, 1 << 20).records) == [0, 2, 5]


def test_offset_for_timestamp_and_max_timestamp(fileio: LossyFileIO, clock: FakeClock) -> None:
    config = LogConfig(segment_bytes=600, index_interval_bytes=100)
    log = open_log(DIR, fileio, clock, config)
    timestamps = [1_000, 1_010, 1_005, 1_030, 1_020, 1_040, 1_040, 1_035]
    for ts in timestamps:
        log.append_as_leader(batch(2, value_size=50, timestamp_ms=ts), leader_epoch=0)
    assert len(log.segments) > 2
    assert log.offset_for_timestamp(0) == (0, 1_000)
    assert log.offset_for_timestamp(1_000) == (0, 1_000)
    assert log.offset_for_timestamp(1_001) == (2, 1_010)
    assert log.offset_for_timestamp(1_011) == (6, 1_030)
    assert log.offset_for_timestamp(1_031) == (10, 1_040)
    assert log.offset_for_timestamp(1_041) is None
    assert log.max_timestamp_offset() == (10, 1_040)


def test_offset_for_timestamp_finds_the_record_inside_a_batch(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(bytearray(_batch_with_timestamps([100, 105, 109])), leader_epoch=0)
    assert log.offset_for_timestamp(101) == (1, 105)
    assert log.offset_for_timestamp(106) == (2, 109)
    assert log.max_timestamp_offset() == (2, 109)


def _batch_with_timestamps(timestamps: list[int]) -> bytes:
    """A CreateTime batch whose records carry the given timestamps (encode_batch stamps one)."""
    base = timestamps[0]
    body = bytearray()
    for delta, ts in enumerate(timestamps):
        record = b"\x00" + _varint(ts - base) + _varint(delta) + _varint(-1) + _varint(1) + b"x"
        record += _varint(0)
        body += _varint(len(record)) + record
    after_crc = (
        struct.pack(
            ">hiqqqhii", 0, len(timestamps) - 1, base, max(timestamps), -1, -1, -1, len(timestamps)
        )
        + body
    )
    return (
        struct.pack(">qiib", 0, len(after_crc) + 9, -1, 2)
        + struct.pack(">I", records.crc32c(after_crc))
        + after_crc
    )


def _varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def test_reopen_restores_everything(fileio: LossyFileIO, clock: FakeClock) -> None:
    config = LogConfig(segment_bytes=500, index_interval_bytes=50)
    log = open_log(DIR, fileio, clock, config)
    for i in range(20):
        log.append_as_leader(batch(2, value_size=30, timestamp_ms=1_000 + i), leader_epoch=1)
    before = read_all(log)
    entries = [(s.offset_index.entries(), s.time_index.entries()) for s in log.segments]
    log.close()
    assert log.recovery_point == 40
    reopened = open_log(DIR, fileio, clock, config, recovery_point=40)
    assert reopened.log_end_offset == 40
    assert read_all(reopened) == before
    reopened_entries = [
        (s.offset_index.entries(), s.time_index.entries()) for s in reopened.segments
    ]
    assert [e[0] for e in reopened_entries] == [e[0] for e in entries]
    assert reopened.offset_for_timestamp(1_010) == (20, 1_010)
    assert reopened.max_timestamp_offset() == (38, 1_019)
    # Appends continue where the log left off.
    assert reopened.append_as_leader(batch(1), leader_epoch=1).first_offset == 40


def test_recovery_cuts_a_torn_tail_and_rebuilds_indexes(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    config = LogConfig(index_interval_bytes=50)
    log = open_log(DIR, fileio, clock, config)
    for _ in range(10):
        log.append_as_leader(batch(1, value_size=40), leader_epoch=0)
    good = read_all(log)
    entries = log.active_segment.offset_index.entries()
    assert entries
    log.close()
    segment_path = DIR / "00000000000000000000.log"
    index_path = DIR / "00000000000000000000.index"
    handle = fileio.open(segment_path)
    fileio.write(handle, bytes(batch(1))[:30])  # half a batch
    fileio.close(handle)
    fileio.replace_file(index_path, b"")  # index lost
    reopened = open_log(DIR, fileio, clock, config)
    assert reopened.log_end_offset == 10
    assert read_all(reopened) == good
    assert reopened.active_segment.offset_index.entries() == entries
    assert len(fileio.read_file(segment_path)) == len(good)


def test_recovery_cuts_at_a_crc_mismatch(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock)
    for _ in range(5):
        log.append_as_leader(batch(1, value_size=40), leader_epoch=0)
    size = len(batch(1, value_size=40))
    log.close()
    segment_path = DIR / "00000000000000000000.log"
    data = bytearray(fileio.read_file(segment_path))
    data[3 * size + 70] ^= 0x01  # inside the records of the fourth batch
    fileio.replace_file(segment_path, bytes(data))
    reopened = open_log(DIR, fileio, clock, recovery_point=5)  # the segment holds offset 5
    assert reopened.log_end_offset == 3
    assert base_offsets(read_all(reopened)) == [0, 1, 2]


def test_recovery_of_garbage_after_the_last_segment_drops_later_segments(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    size = len(batch(1))
    config = LogConfig(segment_bytes=size * 2)
    log = open_log(DIR, fileio, clock, config)
    for _ in range(6):
        log.append_as_leader(batch(1), leader_epoch=0)
    log.close()
    assert [s.base_offset for s in log.segments] == [0, 2, 4]
    middle = DIR / "00000000000000000002.log"
    data = bytearray(fileio.read_file(middle))
    data[size + 30] ^= 0xFF
    fileio.replace_file(middle, bytes(data))
    reopened = open_log(DIR, fileio, clock, config, recovery_point=2)
    assert reopened.log_end_offset == 3
    assert [s.base_offset for s in reopened.segments] == [0, 2]
    assert not fileio.exists(DIR / "00000000000000000004.log")


def test_truncate_to(fileio: LossyFileIO, clock: FakeClock) -> None:
    size = len(batch(2))
    config = LogConfig(segment_bytes=size * 2, index_interval_bytes=1)
    log = open_log(DIR, fileio, clock, config)
    for i in range(6):
        log.append_as_leader(batch(2, timestamp_ms=1_000 + i), leader_epoch=0)
    assert [s.base_offset for s in log.segments] == [0, 4, 8]
    log.truncate_to(7)  # offset 7 is inside the batch at 6: it goes as a whole
    assert log.log_end_offset == 6
    assert [s.base_offset for s in log.segments] == [0, 4]
    assert base_offsets(read_all(log)) == [0, 2, 4]
    assert log.max_timestamp_offset() == (4, 1_002)
    assert all(o < 6 for o, _ in log.active_segment.offset_index.entries())
    assert log.append_as_leader(batch(1), leader_epoch=1).first_offset == 6
    log.truncate_to(0)
    assert (log.log_start_offset, log.log_end_offset) == (0, 0)
    assert log.read(0, 100).records == b""


def test_append_as_follower_keeps_offsets(fileio: LossyFileIO, clock: FakeClock) -> None:
    leader = open_log(DIR, fileio, clock)
    for n in (2, 3, 1):
        leader.append_as_leader(batch(n), leader_epoch=4)
    data = leader.read(0, 1 << 20).records
    follower = open_log(Path("/logs/orders-4"), fileio, clock)
    assert follower.append_as_follower(memoryview(data)) == 6
    assert follower.read(0, 1 << 20).records == data
    with pytest.raises(CorruptRecordError):
        follower.append_as_follower(memoryview(data))  # offsets below the log end


def test_log_start_offset_from_checkpoint(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock)
    for _ in range(5):
        log.append_as_leader(batch(1), leader_epoch=0)
    log.close()
    reopened = open_log(DIR, fileio, clock, recovery_point=5, log_start_offset=2)
    assert reopened.log_start_offset == 2
    with pytest.raises(OffsetOutOfRangeError):
        reopened.read(1, 100)
    assert base_offsets(read_all(reopened)) == [2, 3, 4]


def test_flush_advances_recovery_point_and_survives_a_crash(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(batch(1), leader_epoch=0)
    log.append_as_leader(batch(1), leader_epoch=0)
    assert log.recovery_point == 0
    assert log.flush() == 2
    log.append_as_leader(batch(1), leader_epoch=0)
    fileio.crash()
    reopened = open_log(DIR, fileio, clock, recovery_point=2)
    assert reopened.log_end_offset == 2


def test_delete_removes_the_directory(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(batch(1), leader_epoch=0)
    log.delete()
    assert not fileio.exists(DIR)
    assert not [p for p in fileio.file_paths() if DIR in p.parents]


def test_real_files_have_exact_index_sizes(tmp_path: Path, clock: FakeClock) -> None:
    directory = tmp_path / "orders-0"
    config = LogConfig(segment_bytes=4_000, index_interval_bytes=100)
    log = Log.open(directory, config, fileio=OsFileIO(), clock=clock)
    for i in range(60):
        log.append_as_leader(batch(2, value_size=30, timestamp_ms=1_000 + i), leader_epoch=0)
    expected = read_all(log)
    log.close()
    names = sorted(p.name for p in directory.iterdir())
    assert all(
        re.fullmatch(r"\d{20}\.(log|index|timeindex|snapshot)|leader-epoch-checkpoint", name)
        for name in names
    )
    for path in directory.iterdir():
        if path.suffix == ".index":
            assert path.stat().st_size % 8 == 0
            assert path.stat().st_size > 0
        elif path.suffix == ".timeindex":
            assert path.stat().st_size % 12 == 0
            assert path.stat().st_size > 0
    reopened = Log.open(directory, config, fileio=OsFileIO(), clock=clock, recovery_point=120)
    assert read_all(reopened) == expected
    reopened.close()


def test_delete_records_before_moves_the_start_and_drops_whole_segments(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    size = len(batch(1))
    log = open_log(DIR, fileio, clock, LogConfig(segment_bytes=size * 2))
    for _ in range(6):
        log.append_as_leader(batch(1), leader_epoch=0)
    assert [s.base_offset for s in log.segments] == [0, 2, 4]
    assert log.delete_records_before(3) == 3
    assert log.log_start_offset == 3
    assert [s.base_offset for s in log.segments] == [2, 4]
    assert not fileio.exists(DIR / "00000000000000000000.log")
    assert base_offsets(read_all(log)) == [3, 4, 5]
    assert log.delete_records_before(1) == 3  # never moves back
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(7)
    assert log.delete_records_before(6) == 6
    assert [s.base_offset for s in log.segments] == [4]
    assert log.read(6, 100).records == b""


def test_clean_shutdown_skips_the_recovery_scan(
    fileio: LossyFileIO, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(DIR, fileio, clock, LogConfig(index_interval_bytes=100))
    for i in range(10):
        log.append_as_leader(batch(2, value_size=50, timestamp_ms=1_000 + i), leader_epoch=0)
    expected = read_all(log)
    log.close()

    def no_recovery(self: object) -> int:
        raise AssertionError("recovery scan after a clean shutdown")

    monkeypatch.setattr("odradek.storage.segment.LogSegment.recover", no_recovery)
    reopened = Log.open(
        DIR, LogConfig(), fileio=fileio, clock=clock, recovery_point=20, clean_shutdown=True
    )
    assert reopened.log_end_offset == 20
    assert read_all(reopened) == expected
    assert reopened.max_timestamp_offset() == (18, 1_009)
    with pytest.raises(AssertionError, match="recovery scan"):
        Log.open(DIR, LogConfig(), fileio=fileio, clock=clock, recovery_point=20)


def test_replay_records_reads_every_data_record_across_segments_up_to_an_end(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    config = LogConfig(segment_bytes=len(batch(2, value_size=200)) * 2)
    log = open_log(DIR, fileio, clock, config)
    for n in range(6):
        log.append_as_leader(batch(2, value_size=200, key=b"k%d" % n), leader_epoch=0)
    control = bytearray(
        records.encode_batch(
            [(b"\x00\x00\x00\x01", b"marker", [])], attributes=records.ATTR_CONTROL
        )
    )
    log.append_as_leader(control, leader_epoch=0, origin=AppendOrigin.COORDINATOR)
    assert len(log.segments) > 2
    replayed = list(log.replay_records())
    assert [r.offset for r in replayed] == list(range(12))  # the control record is left out
    assert [r.key for r in replayed[::2]] == [b"k%d" % n for n in range(6)]
    assert [r.offset for r in log.replay_records(end_offset=6)] == list(range(6))
