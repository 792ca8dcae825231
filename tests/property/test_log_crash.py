"""After any crash, a reopened log is a prefix of what was appended, holding every batch that
was appended before the last flush, with indexes that agree with the log."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from odradek.common.clock import FakeClock
from odradek.common.errors import KafkaError
from odradek.protocol import records
from odradek.storage.fileio import LossyFileIO
from odradek.storage.index import OffsetIndex, TimeIndex
from odradek.storage.log import Log, LogConfig
from odradek.storage.segment import LogSegment

DIR = Path("/data/orders-0")

batch_spec = st.tuples(
    st.integers(min_value=1, max_value=3),  # records
    st.integers(min_value=0, max_value=40),  # value bytes
    st.integers(min_value=-30, max_value=30),  # timestamp jitter
)
append = st.tuples(st.just("append"), st.lists(batch_spec, min_size=1, max_size=3))
operation = st.one_of(
    append,
    append,
    append,
    append,
    st.tuples(st.just("flush"), st.booleans()),  # and whether the checkpoint is written
    st.tuples(st.just("crash"), st.sampled_from([0, 0, 7, 61, 200])),  # torn bytes kept
    st.tuples(st.just("reopen"), st.just(0)),
)


def split_batches(data: bytes) -> list[bytes]:
    return [data[p : p + h.size] for p, h in records.iter_batches(data)]


def read_all(log: Log) -> list[bytes]:
    batches: list[bytes] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 30).records
        assert data, f"nothing at {offset} below the log end {log.log_end_offset}"
        found = split_batches(data)
        assert b"".join(found) == data
        batches.extend(found)
        offset = records.read_header(found[-1]).next_offset
    assert offset == log.log_end_offset
    return batches


def check_indexes(fileio: LossyFileIO, log: Log) -> None:
    for segment in log.segments:
        data = fileio.read_file(segment.log_path)
        assert len(data) == segment.size
        headers = dict(records.iter_batches(data))
        assert sum(h.size for h in headers.values()) == len(data)
        on_disk = OffsetIndex(fileio, segment.offset_index.path, segment.base_offset, 1 << 20)
        assert on_disk.entries() == segment.offset_index.entries()
        for offset, position in segment.offset_index.entries():
            assert position in headers, "offset index entry off a batch boundary"
            assert headers[position].last_offset == offset
        max_so_far: dict[int, int] = {}
        running = records.NO_TIMESTAMP
        for header in headers.values():
            running = max(running, header.max_timestamp)
            max_so_far[header.last_offset] = running
        on_disk_time = TimeIndex(fileio, segment.time_index.path, segment.base_offset, 1 << 20)
        assert on_disk_time.entries() == segment.time_index.entries()
        for timestamp, offset in segment.time_index.entries():
            assert offset in max_so_far, "time index entry at no batch's last offset"
            assert max_so_far[offset] == timestamp
        check_segment_state(segment, list(headers.values()))


def check_segment_state(segment: LogSegment, headers: list[records.BatchHeader]) -> None:
    if headers:
        assert segment.next_offset == headers[-1].next_offset
        assert segment.max_timestamp == max(h.max_timestamp for h in headers)
    else:
        assert segment.next_offset == segment.base_offset


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    segment_bytes=st.sampled_from([250, 600, 2000]),
    index_interval_bytes=st.sampled_from([1, 150, 4096]),
    operations=st.lists(operation, min_size=5, max_size=60),
)
def test_a_crash_leaves_a_prefix_holding_every_flushed_batch(
    segment_bytes: int, index_interval_bytes: int, operations: list[tuple[str, object]]
) -> None:
    run(LossyFileIO(), segment_bytes, index_interval_bytes, operations, note=event)


@settings(max_examples=30, derandomize=True, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), segment_bytes=st.sampled_from([250, 600]))
def test_long_histories(seed: int, segment_bytes: int) -> None:
    """Hundreds of operations per example: many rolls, flushes and crashes in one history."""
    rng = random.Random(seed)
    operations: list[tuple[str, object]] = []
    for _ in range(300):
        roll = rng.random()
        if roll < 0.75:
            specs = [
                (rng.randint(1, 3), rng.randint(0, 40), rng.randint(-30, 30))
                for _ in range(rng.randint(1, 3))
            ]
            operations.append(("append", specs))
        elif roll < 0.9:
            operations.append(("flush", rng.random() < 0.7))
        elif roll < 0.97:
            operations.append(("crash", rng.choice([0, 7, 61, 200])))
        else:
            operations.append(("reopen", 0))
    run(LossyFileIO(), segment_bytes, rng.choice([1, 150, 4096]), operations, note=event)


class FsyncIgnoringFileIO(LossyFileIO):
    """A disk that acknowledges fsync of .log files without making them durable."""

    def __init__(self) -> None:
        super().__init__()
        self.log_handles: set[int] = set()

    def open(self, path: Path, *, create: bool = False) -> int:
        handle = super().open(path, create=create)
        if path.suffix == ".log":
            self.log_handles.add(handle)
        return handle

    def fsync(self, handle: int) -> None:
        if handle not in self.log_handles:
            super().fsync(handle)


def test_negative_control_a_lying_fsync_is_caught() -> None:
    operations: list[tuple[str, object]] = [
        ("append", [(1, 10, 0)]),
        ("flush", True),
        ("append", [(2, 10, 0)]),
        ("flush", True),
        ("crash", 0),
    ]
    run(LossyFileIO(), 3000, 4096, operations)
    with pytest.raises(AssertionError, match="flushed batch was lost"):
        run(FsyncIgnoringFileIO(), 3000, 4096, operations)


def run(
    fileio: LossyFileIO,
    segment_bytes: int,
    index_interval_bytes: int,
    operations: list[tuple[str, object]],
    note: Callable[[str], object] = lambda _: None,
) -> None:
    clock = FakeClock(wall_ms=1_000_000)
    config = LogConfig(segment_bytes=segment_bytes, index_interval_bytes=index_interval_bytes)
    log = Log.open(DIR, config, fileio=fileio, clock=clock)
    written: list[bytes] = []  # every batch appended, offsets assigned, in order
    flushed = 0  # how many of them the last flush made durable
    checkpointed_recovery_point = 0
    for step, (kind, argument) in enumerate(operations):
        clock.advance(10)
        if kind == "append":
            assert isinstance(argument, list)
            produced = bytearray()
            for count, value_size, jitter in argument:
                produced += records.encode_batch(
                    [(b"k", b"v" * value_size, [])] * count,
                    timestamp_ms=clock.wall_ms() + jitter,
                )
            if len(produced) > segment_bytes:
                with pytest.raises(KafkaError):
                    log.append_as_leader(produced, leader_epoch=step)
                continue
            result = log.append_as_leader(produced, leader_epoch=step)
            assert result.first_offset == (
                records.read_header(written[-1]).next_offset if written else 0
            )
            written.extend(split_batches(bytes(produced)))
        elif kind == "flush":
            recovery_point = log.flush()
            assert recovery_point == log.log_end_offset
            flushed = len(written)
            if argument:
                checkpointed_recovery_point = recovery_point
        elif kind in ("crash", "reopen"):
            if kind == "crash":
                assert isinstance(argument, int)
                fileio.crash(keep_unsynced_bytes=argument)
            else:
                log.close()
                flushed = len(written)
                checkpointed_recovery_point = log.recovery_point
            log = Log.open(
                DIR,
                config,
                fileio=fileio,
                clock=clock,
                recovery_point=checkpointed_recovery_point,
                clean_shutdown=kind == "reopen",
            )
            surviving = read_all(log)
            assert surviving == written[: len(surviving)], "not a prefix of what was written"
            assert len(surviving) >= flushed, "a flushed batch was lost"
            check_indexes(fileio, log)
            note(f"{kind}: {len(surviving)} batches in {len(log.segments)} segments survive")
            written = surviving
            flushed = len(written)  # what survived a crash is on disk
            expected_end = records.read_header(written[-1]).next_offset if written else 0
            assert log.log_end_offset == expected_end
            assert log.recovery_point <= log.log_end_offset
    assert read_all(log) == written
    check_indexes(fileio, log)
