"""Shared builders for the storage tests."""

from __future__ import annotations

from pathlib import Path

from odradek.common.clock import FakeClock
from odradek.protocol import records
from odradek.storage.fileio import FileIO
from odradek.storage.log import Log, LogConfig


def batch(
    count: int = 1, value_size: int = 10, timestamp_ms: int = 1_000, key: bytes | None = b"k"
) -> bytearray:
    """A producer's batch (offsets not yet assigned) of `count` records."""
    return bytearray(
        records.encode_batch([(key, b"v" * value_size, [])] * count, timestamp_ms=timestamp_ms)
    )


def open_log(
    directory: Path,
    fileio: FileIO,
    clock: FakeClock,
    config: LogConfig | None = None,
    **kwargs: int,
) -> Log:
    return Log.open(directory, config or LogConfig(), fileio=fileio, clock=clock, **kwargs)


def base_offsets(data: bytes) -> list[int]:
    return [header.base_offset for _, header in records.iter_batches(data)]


def read_all(log: Log) -> bytes:
    """Every batch from log_start_offset to the end, read segment by segment."""
    out = bytearray()
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 30).records
        assert data, f"no data at offset {offset} below log end {log.log_end_offset}"
        out += data
        last = None
        for _, header in records.iter_batches(data):
            last = header
        assert last is not None
        offset = last.next_offset
    return bytes(out)
