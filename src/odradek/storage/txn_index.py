"""The transaction index of one log segment (`.txnindex`) and the transaction markers that fill it.

File format (Kafka's TransactionIndex, big-endian, no header), one 34-byte entry per aborted
transaction whose abort marker is in the segment:

    int16 version (0)
    int64 producer id
    int64 first offset       the transaction's first offset (may be in an earlier segment)
    int64 last offset        the offset of the abort marker
    int64 last stable offset the partition's last stable offset once the abort completed

Invariants: last offsets strictly increase, and each lies in the segment; the file holds
exactly the entries. A segment whose log was recovered rebuilds this file from its batches.
The file is created with the first entry: most segments never see an abort and have none.

A transaction marker is a control batch whose single record has the key int16 version + int16
type (ABORT 0, COMMIT 1) and the value int16 version + int32 coordinator epoch (Kafka's
EndTransactionMarker). `end_transaction_marker` reads it; nothing else here decodes records.

This module does no I/O but through the FileIO it is given.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from odradek.common.errors import CorruptRecordError
from odradek.protocol import records
from odradek.storage.fileio import Buffer, FileIO

TXN_INDEX_SUFFIX = ".txnindex"
ABORTED_TXN_VERSION = 0

_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size
_MARKER_KEY = struct.Struct(">hh")
_MARKER_VALUE = struct.Struct(">hi")


class ControlRecordType(IntEnum):
    ABORT = 0
    COMMIT = 1


@dataclass(frozen=True, slots=True)
class EndTransactionMarker:
    control_type: ControlRecordType
    coordinator_epoch: int


def end_transaction_marker(batch: Buffer) -> EndTransactionMarker:
    """The marker held by one whole control batch; CorruptRecordError if it is not one."""
    _, batch_records = records.decode_records(batch)
    if len(batch_records) != 1:
        raise CorruptRecordError(f"a control batch holds {len(batch_records)} records, not 1")
    key, value = batch_records[0].key, batch_records[0].value
    if key is None or len(key) < _MARKER_KEY.size:
        raise CorruptRecordError("a control record without a key")
    _, control_type = _MARKER_KEY.unpack_from(key)
    if control_type not in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
        raise CorruptRecordError(f"control record type {control_type} is no transaction marker")
    if value is None or len(value) < _MARKER_VALUE.size:
        raise CorruptRecordError("a transaction marker without a value")
    _, coordinator_epoch = _MARKER_VALUE.unpack_from(value)
    return EndTransactionMarker(ControlRecordType(control_type), coordinator_epoch)


def encode_end_transaction_marker(
    control_type: ControlRecordType,
    coordinator_epoch: int,
    *,
    producer_id: int,
    producer_epoch: int,
    timestamp_ms: int,
) -> bytearray:
    """One control batch holding a marker, offsets not yet assigned (what a coordinator
    appends with `AppendOrigin.COORDINATOR`)."""
    return bytearray(
        records.encode_batch(
            [
                (
                    _MARKER_KEY.pack(0, control_type),
                    _MARKER_VALUE.pack(0, coordinator_epoch),
                    [],
                )
            ],
            timestamp_ms=timestamp_ms,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            attributes=records.ATTR_TRANSACTIONAL | records.ATTR_CONTROL,
        )
    )


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int

    def encode(self) -> bytes:
        return _ENTRY.pack(
            ABORTED_TXN_VERSION,
            self.producer_id,
            self.first_offset,
            self.last_offset,
            self.last_stable_offset,
        )


class CorruptIndexError(ValueError):
    pass


def decode_entries(data: bytes) -> list[AbortedTxn]:
    """Whole entries of a .txnindex file; a partial trailing entry (a torn write) is ignored."""
    usable = len(data) - len(data) % _ENTRY.size
    entries = []
    for version, producer_id, first, last, last_stable in _ENTRY.iter_unpack(data[:usable]):
        if version != ABORTED_TXN_VERSION:
            raise CorruptIndexError(f"unknown aborted transaction version {version}")
        entries.append(AbortedTxn(producer_id, first, last, last_stable))
    return entries


class TransactionIndex:
    """The aborted transactions of one segment, kept in memory and appended to its file."""

    def __init__(self, fileio: FileIO, path: Path, base_offset: int) -> None:
        self.fileio = fileio
        self.path = path
        self.base_offset = base_offset
        self._handle: int | None = None
        self.entries: list[AbortedTxn] = []
        if fileio.exists(path):
            self._handle = fileio.open(path)
            data = fileio.pread(self._handle, fileio.size(self._handle), 0)
            try:
                self.entries = decode_entries(data)
            except CorruptIndexError:
                self.entries = []
            if len(self.entries) * _ENTRY.size != len(data):
                fileio.truncate(self._handle, len(self.entries) * _ENTRY.size)

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, aborted: AbortedTxn) -> None:
        if self.entries and aborted.last_offset <= self.entries[-1].last_offset:
            raise ValueError(
                f"aborted transaction at offset {aborted.last_offset} is not after the last"
                f" one, {self.entries[-1].last_offset}, of {self.path}"
            )
        if self._handle is None:
            self._handle = self.fileio.open(self.path, create=True)
        self.fileio.write(self._handle, aborted.encode())
        self.entries.append(aborted)

    def collect(self, fetch_offset: int, upper_bound_offset: int) -> tuple[list[AbortedTxn], bool]:
        """The aborted transactions overlapping [fetch_offset, upper_bound_offset), and whether
        the search is complete (a later segment cannot hold one that overlaps: an entry whose
        last stable offset reaches the upper bound was written after every transaction that
        began below it had ended)."""
        found = []
        for aborted in self.entries:
            if aborted.last_offset >= fetch_offset and aborted.first_offset < upper_bound_offset:
                found.append(aborted)
            if aborted.last_stable_offset >= upper_bound_offset:
                return found, True
        return found, False

    def truncate_to(self, offset: int) -> None:
        """Drop the entries whose abort marker is at or after `offset`."""
        keep = len(self.entries)
        while keep and self.entries[keep - 1].last_offset >= offset:
            keep -= 1
        self._truncate_entries(keep)

    def reset(self) -> None:
        self._truncate_entries(0)

    def _truncate_entries(self, keep: int) -> None:
        if keep >= len(self.entries):
            return
        del self.entries[keep:]
        if self._handle is not None:
            self.fileio.truncate(self._handle, keep * _ENTRY.size)

    def is_consistent_with(self, next_offset: int) -> bool:
        """Entries increase and their markers lie in [base offset, next_offset)."""
        previous = self.base_offset - 1
        for aborted in self.entries:
            if not previous < aborted.last_offset < next_offset:
                return False
            previous = aborted.last_offset
        return True

    def flush(self) -> None:
        if self._handle is not None:
            self.fileio.fsync(self._handle)

    def close(self) -> None:
        if self._handle is not None:
            self.fileio.close(self._handle)
            self._handle = None

    def delete(self) -> None:
        self.close()
        self.fileio.delete(self.path)
