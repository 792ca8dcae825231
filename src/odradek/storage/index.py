"""Sparse indexes of one log segment: `.index` (offset -> position) and `.timeindex`.

File formats (Kafka's, big-endian, no header):

    .index      8-byte entries:  int32 relative offset, int32 position in the .log file
    .timeindex  12-byte entries: int64 timestamp,       int32 relative offset

Relative offsets are offsets minus the segment's base offset. Invariants:

- entries are strictly increasing in offset (and, in the time index, in timestamp);
- the file holds exactly the entries, so its size is a multiple of the entry size (Kafka
  preallocates and trims on close; these files are appended to and never hold padding);
- an offset index entry (o, p) says the batch starting at position p ends at offset o (Kafka
  indexes a batch's last offset), so the batch holding any offset t >= o starts at or after p:
  a lookup of t returns the largest entry with o <= t and the reader scans forward from p;
- a time index entry (t, o) says the largest timestamp among offsets <= o is t.

Entries are also kept in memory (arrays), so lookups never touch the file. The segment decides
when to add an entry (every `log.index.interval.bytes` of log); these classes only store them.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

from odradek.storage.fileio import FileIO

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")


class _IndexFile:
    """The file under an index: opened at construction, whole entries read back once."""

    ENTRY_SIZE: int

    def __init__(self, fileio: FileIO, path: Path, base_offset: int, max_index_bytes: int) -> None:
        self.fileio = fileio
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(1, max_index_bytes // self.ENTRY_SIZE)
        self._handle = fileio.open(path, create=True)

    def _read_entries(self) -> bytes:
        """The file's whole entries; a partial trailing entry (a torn write) is cut off."""
        data = self.fileio.pread(self._handle, self.fileio.size(self._handle), 0)
        usable = len(data) - len(data) % self.ENTRY_SIZE
        if usable != len(data):
            self.fileio.truncate(self._handle, usable)
        return data[:usable]

    def flush(self) -> None:
        self.fileio.fsync(self._handle)

    @property
    def handle(self) -> int:
        return self._handle

    def close(self) -> None:
        self.fileio.close(self._handle)


class OffsetIndex(_IndexFile):
    ENTRY_SIZE = 8

    def __init__(self, fileio: FileIO, path: Path, base_offset: int, max_index_bytes: int) -> None:
        super().__init__(fileio, path, base_offset, max_index_bytes)
        flat: array[int] = array("i")
        flat.frombytes(self._read_entries())
        if sys.byteorder == "little":
            flat.byteswap()
        self._relative_offsets: array[int] = flat[0::2]
        self._positions: array[int] = flat[1::2]

    def __len__(self) -> int:
        return len(self._positions)

    @property
    def is_full(self) -> bool:
        return len(self._positions) >= self.max_entries

    @property
    def size_bytes(self) -> int:
        return len(self._positions) * self.ENTRY_SIZE

    def last_entry(self) -> tuple[int, int]:
        """(offset, position) of the last entry, or (base_offset, 0) when empty."""
        if not self._positions:
            return self.base_offset, 0
        return self.base_offset + self._relative_offsets[-1], self._positions[-1]

    def entries(self) -> list[tuple[int, int]]:
        return [
            (self.base_offset + relative, position)
            for relative, position in zip(self._relative_offsets, self._positions, strict=True)
        ]

    def append(self, offset: int, position: int) -> None:
        relative = offset - self.base_offset
        if self._relative_offsets and relative <= self._relative_offsets[-1]:
            return
        self.fileio.write(self._handle, _OFFSET_ENTRY.pack(relative, position))
        self._relative_offsets.append(relative)
        self._positions.append(position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the largest entry with offset <= `offset`, else (base, 0)."""
        index = bisect_right(self._relative_offsets, offset - self.base_offset) - 1
        if index < 0:
            return self.base_offset, 0
        return self.base_offset + self._relative_offsets[index], self._positions[index]

    def truncate_to(self, offset: int) -> None:
        """Drop every entry with offset >= `offset`."""
        keep = bisect_left(self._relative_offsets, offset - self.base_offset)
        self._truncate_entries(keep)

    def truncate_to_position(self, position: int) -> None:
        """Drop every entry pointing at `position` or beyond (the log was cut there)."""
        keep = bisect_left(self._positions, position)
        self._truncate_entries(keep)

    def _truncate_entries(self, keep: int) -> None:
        if keep >= len(self._positions):
            return
        del self._relative_offsets[keep:]
        del self._positions[keep:]
        self.fileio.truncate(self._handle, keep * self.ENTRY_SIZE)

    def reset(self) -> None:
        self._truncate_entries(0)

    def is_consistent_with(self, log_size: int) -> bool:
        """Entries increase and point inside a log of `log_size` bytes (a load sanity check)."""
        positions = self._positions
        relatives = self._relative_offsets
        for i in range(1, len(positions)):
            if positions[i] <= positions[i - 1] or relatives[i] <= relatives[i - 1]:
                return False
        return not positions or (positions[0] >= 0 and positions[-1] < log_size)


class TimeIndex(_IndexFile):
    ENTRY_SIZE = 12

    def __init__(self, fileio: FileIO, path: Path, base_offset: int, max_index_bytes: int) -> None:
        super().__init__(fileio, path, base_offset, max_index_bytes)
        self._timestamps: list[int] = []
        self._relative_offsets: array[int] = array("i")
        for timestamp, relative in _TIME_ENTRY.iter_unpack(self._read_entries()):
            self._timestamps.append(timestamp)
            self._relative_offsets.append(relative)

    def __len__(self) -> int:
        return len(self._timestamps)

    @property
    def is_full(self) -> bool:
        return len(self._timestamps) >= self.max_entries

    def last_entry(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the last entry."""
        if not self._timestamps:
            return None
        return self._timestamps[-1], self.base_offset + self._relative_offsets[-1]

    def entries(self) -> list[tuple[int, int]]:
        return [
            (timestamp, self.base_offset + relative)
            for timestamp, relative in zip(self._timestamps, self._relative_offsets, strict=True)
        ]

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add (timestamp, offset) if it moves the index forward in time (Kafka's rule)."""
        relative = offset - self.base_offset
        if self._timestamps and (
            timestamp <= self._timestamps[-1] or relative < self._relative_offsets[-1]
        ):
            return
        if self._timestamps and relative == self._relative_offsets[-1]:
            return
        self.fileio.write(self._handle, _TIME_ENTRY.pack(timestamp, relative))
        self._timestamps.append(timestamp)
        self._relative_offsets.append(relative)

    def lookup_below(self, timestamp: int) -> int:
        """Offset of the last entry whose timestamp is < `timestamp` (base offset if none).

        Every record at or before that offset has a smaller timestamp, so the search for the
        first record with a timestamp >= `timestamp` can start at the batch holding it.
        """
        index = bisect_left(self._timestamps, timestamp) - 1
        if index < 0:
            return self.base_offset
        return self.base_offset + self._relative_offsets[index]

    def truncate_to(self, offset: int) -> None:
        """Drop every entry with offset >= `offset`."""
        keep = bisect_left(self._relative_offsets, offset - self.base_offset)
        if keep >= len(self._timestamps):
            return
        del self._timestamps[keep:]
        del self._relative_offsets[keep:]
        self.fileio.truncate(self._handle, keep * self.ENTRY_SIZE)

    def reset(self) -> None:
        if self._timestamps:
            self._timestamps.clear()
            del self._relative_offsets[:]
            self.fileio.truncate(self._handle, 0)

    def is_consistent_with(self, next_offset: int) -> bool:
        for i in range(1, len(self._timestamps)):
            if self._timestamps[i] <= self._timestamps[i - 1]:
                return False
            if self._relative_offsets[i] < self._relative_offsets[i - 1]:
                return False
        return not self._timestamps or self.base_offset + self._relative_offsets[-1] < next_offset
