"""Builders and checkers shared by the log cleaner tests."""

from __future__ import annotations

from pathlib import Path

from storage_helpers import read_all

from odradek.common.clock import FakeClock
from odradek.protocol import records
from odradek.storage.cleaner import Cleaner, CleaningResult
from odradek.storage.cleaner_manager import LogCleanerManager, log_to_clean
from odradek.storage.cleaner_offset_map import OffsetMap
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import Log


def keyed(pairs: list[tuple[bytes | None, bytes | None]], timestamp_ms: int = 1_000) -> bytearray:
    """A batch of (key, value) records; a None value is a tombstone."""
    return bytearray(
        records.encode_batch([(k, v, []) for k, v in pairs], timestamp_ms=timestamp_ms)
    )


def records_of(log: Log) -> list[records.Record]:
    """Every record from the log start, in order (control batches left out)."""
    data = read_all(log)
    found: list[records.Record] = []
    for position, header in records.iter_batches(data):
        if header.is_control:
            continue
        found += records.decode_records(data[position : position + header.size])[1]
    return found


def latest_by_key(log: Log) -> dict[bytes | None, bytes | None]:
    view: dict[bytes | None, bytes | None] = {}
    for record in records_of(log):
        view[record.key] = record.value
    return view


def clean(log: Log, now_ms: int, capacity: int = 1 << 20) -> CleaningResult:
    """One cleaning of the whole cleanable section, as the cleaner thread would do it."""
    chosen = log_to_clean((log.topic, log.partition), log, None, now_ms, log.log_end_offset)
    return clean_from(log, chosen.first_dirty_offset, now_ms, capacity)


def clean_from(log: Log, first_dirty: int, now_ms: int, capacity: int = 1 << 20) -> CleaningResult:
    chosen = log_to_clean((log.topic, log.partition), log, first_dirty, now_ms, log.log_end_offset)
    with log.cleaning_lock:
        return Cleaner(OffsetMap(capacity)).clean(
            log, chosen.first_dirty_offset, chosen.first_uncleanable_offset, now_ms
        )


class FailingRenames(LossyFileIO):
    """A LossyFileIO whose rename number `fail_at` (counting from 0) and every later one fail,
    as a process killed there would leave the disk."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_at: int | None = None
        self.renames = 0

    def rename(self, source: Path, target: Path) -> None:
        if self.fail_at is not None and self.renames >= self.fail_at:
            raise OSError(5, "killed before this rename")
        self.renames += 1
        super().rename(source, target)


__all__ = ["FakeClock", "LogCleanerManager"]
