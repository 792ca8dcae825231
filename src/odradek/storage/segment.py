"""One log segment: `<base offset>.log` with its `.index`, `.timeindex` and `.txnindex`.

Files, named with the base offset zero-padded to 20 digits (`00000000000000000000.log`):

    .log        v2 record batches back to back, exactly as produced (after offset assignment);
                no header, no padding: the first batch starts at position 0
    .index      see `index.OffsetIndex`
    .timeindex  see `index.TimeIndex`
    .txnindex   see `txn_index.TransactionIndex` (only once a transaction aborts here)

Invariants:

- every batch's offsets are >= the base offset and < base offset + 2**31 (relative offsets are
  int32 in the indexes), and batches are in increasing offset order;
- `size` is the length of the .log file and always falls on a batch boundary;
- `next_offset` is the last batch's last offset + 1 (the base offset while empty);
- index entries only point at batch boundaries below `size`.

A segment is appended to only by its log, on the event loop thread; `flush()` may run on another
thread (it only fsyncs). A segment never decodes records on the hot path: append looks at the
batch headers its log already parsed, and reads scan batch headers only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from odradek.protocol import records
from odradek.protocol.records import HEADER_SIZE, LOG_OVERHEAD, BatchHeader
from odradek.storage.fileio import Buffer, FileIO
from odradek.storage.index import OffsetIndex, TimeIndex
from odradek.storage.txn_index import TXN_INDEX_SUFFIX, TransactionIndex

DELETED_SUFFIX = ".deleted"  # a retired segment's files, deleted after file.delete.delay.ms

logger = logging.getLogger(__name__)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"

MAX_RELATIVE_OFFSET = 2**31 - 1

_SCAN_CHUNK_BYTES = 16384
_RECOVERY_CHUNK_BYTES = 1 << 20

# One appended batch, as its log saw it: (position in the appended buffer, last offset,
# max timestamp, size in bytes). Plain tuples: there is one per produced batch.
AppendedBatch = tuple[int, int, int, int]


def file_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


def parse_base_offset(name: str) -> int | None:
    """Base offset of a segment file name such as `00000000000000000042.log`, else None."""
    stem, dot, _ = name.partition(".")
    if not dot or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


class LogSegment:
    def __init__(
        self,
        fileio: FileIO,
        directory: Path,
        base_offset: int,
        *,
        index_interval_bytes: int,
        max_index_bytes: int,
        created_ms: int,
        file_suffix: str = "",
    ) -> None:
        """`file_suffix` (`.cleaned`) names the files of a segment the log cleaner is still
        writing, see `rename_files`."""
        self.fileio = fileio
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        self.file_suffix = file_suffix
        self.log_path = directory / (file_name(base_offset, LOG_SUFFIX) + file_suffix)
        self.offset_index = OffsetIndex(
            fileio,
            directory / (file_name(base_offset, INDEX_SUFFIX) + file_suffix),
            base_offset,
            max_index_bytes,
        )
        self.time_index = TimeIndex(
            fileio,
            directory / (file_name(base_offset, TIME_INDEX_SUFFIX) + file_suffix),
            base_offset,
            max_index_bytes,
        )
        self.txn_index = TransactionIndex(
            fileio,
            directory / (file_name(base_offset, TXN_INDEX_SUFFIX) + file_suffix),
            base_offset,
        )
        self._log = fileio.open(self.log_path, create=True)
        self.size = fileio.size(self._log)
        self.next_offset = base_offset
        self.max_timestamp = records.NO_TIMESTAMP
        self.offset_of_max_timestamp = base_offset  # last offset of the batch holding it
        self.rolling_base_timestamp: int | None = None  # first batch's max timestamp
        self.created_ms = created_ms
        self._bytes_since_last_index_entry = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self.size})"

    # --- appending -------------------------------------------------------------------------

    def append(self, data: Buffer, batches: Sequence[AppendedBatch]) -> None:
        """Append whole batches in one write and index them; `batches` describes `data`."""
        position = self.size
        self.fileio.write(self._log, data)
        self._index_batches(position, batches)
        self.size += len(data)

    def _index_batches(self, position: int, batches: Sequence[AppendedBatch]) -> None:
        interval = self.index_interval_bytes
        for relative_position, last_offset, max_timestamp, size in batches:
            if max_timestamp > self.max_timestamp:
                self.max_timestamp = max_timestamp
                self.offset_of_max_timestamp = last_offset
            if self._bytes_since_last_index_entry > interval:
                self.offset_index.append(last_offset, position + relative_position)
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
                self._bytes_since_last_index_entry = 0
            self._bytes_since_last_index_entry += size
        if batches:
            if self.rolling_base_timestamp is None:
                self.rolling_base_timestamp = batches[0][2]
            self.next_offset = batches[-1][1] + 1

    def can_hold(self, last_offset: int) -> bool:
        return last_offset - self.base_offset <= MAX_RELATIVE_OFFSET

    @property
    def indexes_full(self) -> bool:
        return self.offset_index.is_full or self.time_index.is_full

    def time_waited_for_roll(self, now_ms: int, max_timestamp_in_records: int) -> int:
        """Kafka's rule: from the first batch's timestamp when known, else from creation."""
        if self.rolling_base_timestamp is not None and self.rolling_base_timestamp >= 0:
            return max_timestamp_in_records - self.rolling_base_timestamp
        return now_ms - self.created_ms

    def on_become_inactive(self) -> None:
        """The log rolled past this segment: record its largest timestamp in the time index."""
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)

    # --- reading ---------------------------------------------------------------------------

    def _headers(self, position: int, end: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each batch from `position` up to `end`, reading only headers.

        Stops at the first header that cannot be a batch (a torn or corrupt tail).
        """
        buffer = b""
        buffer_start = 0
        while position + HEADER_SIZE <= end:
            offset_in_buffer = position - buffer_start
            if offset_in_buffer < 0 or offset_in_buffer + HEADER_SIZE > len(buffer):
                buffer = self.fileio.pread(
                    self._log, min(max(_SCAN_CHUNK_BYTES, HEADER_SIZE), end - position), position
                )
                buffer_start = position
                offset_in_buffer = 0
                if len(buffer) < HEADER_SIZE:
                    return
            header = records.read_header(buffer, offset_in_buffer)
            if (
                header.magic != 2
                or header.batch_length < HEADER_SIZE - LOG_OVERHEAD
                or position + header.size > end
            ):
                return
            yield position, header
            position += header.size

    def find_batch(self, offset: int, end: int | None = None) -> tuple[int, BatchHeader] | None:
        """(position, header) of the first batch whose last offset is >= `offset`."""
        _, position = self.offset_index.lookup(offset)
        for found in self._headers(position, self.size if end is None else end):
            if found[1].last_offset >= offset:
                return found
        return None

    def read(
        self,
        start_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        max_position: int | None = None,
        min_one_message: bool = True,
    ) -> bytes:
        """Whole batches from the one holding `start_offset`, within `max_bytes`.

        Batches whose base offset is >= `max_offset` are left out, and so is anything at or
        past `max_position`. With `min_one_message`, the first batch is returned even when it
        is larger than `max_bytes`. Returns b"" when nothing qualifies.
        """
        return self.read_batches(
            start_offset,
            max_bytes,
            max_offset=max_offset,
            max_position=max_position,
            min_one_message=min_one_message,
        )[0]

    def read_batches(
        self,
        start_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        max_position: int | None = None,
        min_one_message: bool = True,
    ) -> tuple[bytes, int]:
        """`read`, with the offset after the last batch returned (-1 when none is)."""
        end = self.size if max_position is None else min(max_position, self.size)
        start: int | None = None
        stop = 0
        last: BatchHeader | None = None
        _, scan_from = self.offset_index.lookup(start_offset)
        for position, header in self._headers(scan_from, end):
            if start is None:
                if header.last_offset < start_offset:
                    continue
                if max_offset is not None and header.base_offset >= max_offset:
                    return b"", -1
                start = position
                if header.size > max_bytes:
                    if not min_one_message:
                        return b"", -1
                    stop = position + header.size
                    last = header
                    break
                stop = position + header.size
                last = header
                continue
            if max_offset is not None and header.base_offset >= max_offset:
                break
            if position + header.size - start > max_bytes:
                break
            stop = position + header.size
            last = header
        if start is None or last is None:
            return b"", -1
        return self.fileio.pread(self._log, stop - start, start), last.next_offset

    def iter_batches(
        self, chunk_bytes: int = _RECOVERY_CHUNK_BYTES, end: int | None = None
    ) -> Iterator[tuple[BatchHeader, memoryview]]:
        """Every whole batch from the start of the file up to `end` (default: `size`), read
        `chunk_bytes` at a time (more for a larger batch): how the log cleaner reads."""
        end = self.size if end is None else min(end, self.size)
        position = 0
        while position + HEADER_SIZE <= end:
            data = self.fileio.pread(
                self._log, min(max(chunk_bytes, HEADER_SIZE), end - position), position
            )
            first = records.read_header(data)
            if first.size > len(data):
                if position + first.size > end:
                    return
                data = self.fileio.pread(self._log, first.size, position)
            view = memoryview(data)
            consumed = 0
            for batch_position, header in records.iter_batches(data):
                yield header, view[batch_position : batch_position + header.size]
                consumed = batch_position + header.size
            if consumed == 0:
                return
            position += consumed

    def read_batch_at(self, position: int, size: int) -> bytes:
        return self.fileio.pread(self._log, size, position)

    def find_offset_by_timestamp(
        self, timestamp_ms: int, start_offset: int
    ) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after `start_offset` whose timestamp
        is >= `timestamp_ms`, or None if this segment has none."""
        if self.max_timestamp < timestamp_ms:
            return None
        search_from = max(self.time_index.lookup_below(timestamp_ms), start_offset)
        _, scan_from = self.offset_index.lookup(search_from)
        for position, header in self._headers(scan_from, self.size):
            if header.last_offset < start_offset or header.max_timestamp < timestamp_ms:
                continue
            _, batch_records = records.decode_records(self.read_batch_at(position, header.size))
            for record in batch_records:
                if record.offset >= start_offset and record.timestamp >= timestamp_ms:
                    return record.offset, record.timestamp
        return None

    def max_timestamp_record(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record holding this segment's largest timestamp."""
        if self.max_timestamp < 0 or self.size == 0:
            return None
        found = self.find_batch(self.offset_of_max_timestamp)
        if found is None:
            return None
        position, header = found
        _, batch_records = records.decode_records(self.read_batch_at(position, header.size))
        for record in batch_records:
            if record.timestamp == header.max_timestamp:
                return record.offset, record.timestamp
        return header.last_offset, header.max_timestamp

    # --- loading, recovery, truncation -----------------------------------------------------

    def load(self) -> bool:
        """Trust the files (a segment below the recovery point), checking they agree.

        Rebuilds the in-memory state from the index tails. Returns False when the files are
        inconsistent and the segment must be recovered instead.
        """
        if not self.offset_index.is_consistent_with(self.size):
            return False
        if not self._rescan_tail():
            return False
        return self.time_index.is_consistent_with(
            self.next_offset
        ) and self.txn_index.is_consistent_with(self.next_offset)

    def _rescan_tail(self) -> bool:
        """Set next offset, max timestamp and the rolling timestamp from the last index entry on.

        Returns False if the batches after the last index entry do not reach the end of file.
        """
        self.next_offset = self.base_offset
        self.max_timestamp = records.NO_TIMESTAMP
        self.offset_of_max_timestamp = self.base_offset
        self.rolling_base_timestamp = None
        self._bytes_since_last_index_entry = 0
        last_time_entry = self.time_index.last_entry()
        if last_time_entry is not None:
            self.max_timestamp, self.offset_of_max_timestamp = last_time_entry
        if self.size == 0:
            return True
        _, position = self.offset_index.last_entry()
        end = position
        for batch_position, header in self._headers(position, self.size):
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
            self.next_offset = header.next_offset
            self._bytes_since_last_index_entry += header.size
            end = batch_position + header.size
        if end != self.size:
            return False
        first = next(self._headers(0, self.size), None)
        if first is not None:
            self.rolling_base_timestamp = first[1].max_timestamp
        return True

    def recover(self) -> int:
        """Scan every batch, checking framing and CRC32C; rebuild the offset and time indexes;
        cut the log at the first bad batch. Returns the number of bytes cut off.

        The transaction index is emptied: it depends on the producer state as of this segment's
        start, so its log re-derives it while replaying the batches (as Kafka's
        LogSegment.recover does with its ProducerStateManager)."""
        self.offset_index.reset()
        self.time_index.reset()
        self.txn_index.reset()
        self.next_offset = self.base_offset
        self.max_timestamp = records.NO_TIMESTAMP
        self.offset_of_max_timestamp = self.base_offset
        self.rolling_base_timestamp = None
        self._bytes_since_last_index_entry = 0
        file_size = self.fileio.size(self._log)
        valid_end = 0
        buffer = b""
        buffer_start = 0
        position = 0
        while position + HEADER_SIZE <= file_size:
            if position + HEADER_SIZE > buffer_start + len(buffer):
                buffer = self.fileio.pread(self._log, _RECOVERY_CHUNK_BYTES, position)
                buffer_start = position
            header = records.read_header(buffer, position - buffer_start)
            size = header.size
            if (
                header.magic != 2
                or header.batch_length < HEADER_SIZE - LOG_OVERHEAD
                or position + size > file_size
                or header.base_offset < self.next_offset
                or header.last_offset_delta < 0
                or not self.can_hold(header.last_offset)
            ):
                break
            if position + size > buffer_start + len(buffer):
                buffer = self.fileio.pread(self._log, max(size, _RECOVERY_CHUNK_BYTES), position)
                buffer_start = position
            start = position - buffer_start
            body = memoryview(buffer)[start + records.ATTRIBUTES_OFFSET : start + size]
            if records.crc32c(body) != header.crc:
                break
            self._index_batches(0, ((position, header.last_offset, header.max_timestamp, size),))
            position += size
            valid_end = position
        truncated = file_size - valid_end
        if truncated:
            logger.warning(
                "[LogSegment %s] cutting %d bytes of torn or corrupt data at position %d",
                self.log_path,
                truncated,
                valid_end,
            )
            self.fileio.truncate(self._log, valid_end)
        self.size = valid_end
        return truncated

    def truncate_to(self, offset: int) -> int:
        """Remove every batch whose last offset is >= `offset`; returns bytes removed.

        A batch straddling `offset` goes as a whole (batches are never split), so the new
        next offset may be below `offset`.
        """
        found = self.find_batch(offset)
        if found is None:
            return 0
        position, _ = found
        removed = self.size - position
        self.offset_index.truncate_to(offset)
        self.offset_index.truncate_to_position(position)
        self.time_index.truncate_to(offset)
        self.txn_index.truncate_to(offset)
        self.fileio.truncate(self._log, position)
        self.size = position
        self._rescan_tail()
        return removed

    # --- durability and lifetime -----------------------------------------------------------

    def flush(self) -> None:
        """fsync the log, then its indexes (an index never gets ahead of a durable log)."""
        self.fileio.fsync(self._log)
        self.offset_index.flush()
        self.time_index.flush()
        self.txn_index.flush()

    def close(self) -> None:
        if self._closed:
            return
        self.on_become_inactive()
        self._closed = True
        self.fileio.close(self._log)
        self.offset_index.close()
        self.time_index.close()
        self.txn_index.close()

    def _release(self) -> tuple[Path, ...]:
        """Close the files without flushing them; returns their paths."""
        if not self._closed:
            self._closed = True
            self.fileio.close(self._log)
            self.offset_index.close()
            self.time_index.close()
            self.txn_index.close()
        return (self.log_path, self.offset_index.path, self.time_index.path, self.txn_index.path)

    def retire(self) -> list[Path]:
        """Close the segment and rename its files with the `.deleted` suffix, for deletion
        later (file.delete.delay.ms); returns the renamed paths."""
        renamed = []
        for path in self._release():
            if self.fileio.exists(path):
                target = path.with_name(path.name + DELETED_SUFFIX)
                self.fileio.rename(path, target)
                renamed.append(target)
        return renamed

    def delete(self) -> None:
        for path in self._release():
            self.fileio.delete(path)

    def rename_files(self, file_suffix: str) -> None:
        """Give the files (still open) the suffix `file_suffix` instead of the current one
        ("" for the plain names). The .log file is renamed last: a crash-safe swap relies on a
        `.log` with a suffix meaning every index file beside it has that suffix too."""
        indexes: tuple[OffsetIndex | TimeIndex | TransactionIndex, ...] = (
            self.offset_index,
            self.time_index,
            self.txn_index,
        )
        for index in indexes:
            target = _with_suffix(index.path, self.file_suffix, file_suffix)
            if self.fileio.exists(index.path):
                self.fileio.rename(index.path, target)
            index.path = target
        target = _with_suffix(self.log_path, self.file_suffix, file_suffix)
        self.fileio.rename(self.log_path, target)
        self.log_path = target
        self.file_suffix = file_suffix

    def retire_open(self) -> None:
        """Rename the files with the `.deleted` suffix but keep them open: a reader that took
        this segment before its log dropped it still reads it whole. `delete()` removes the
        renamed files (and closes them) later."""
        for index in (self.offset_index, self.time_index, self.txn_index):
            target = index.path.with_name(index.path.name + DELETED_SUFFIX)
            if self.fileio.exists(index.path):
                self.fileio.rename(index.path, target)
            index.path = target
        target = self.log_path.with_name(self.log_path.name + DELETED_SUFFIX)
        self.fileio.rename(self.log_path, target)
        self.log_path = target


def _with_suffix(path: Path, old: str, new: str) -> Path:
    name = path.name[: len(path.name) - len(old)] if old else path.name
    return path.with_name(name + new)
