"""Kafka record batches, magic v2: the unit the broker stores and serves.

Batch layout (big-endian), 61-byte header then the records section:

    0  baseOffset           int64   \\ not covered by the CRC: the broker
    8  batchLength          int32    | rewrites baseOffset and
    12 partitionLeaderEpoch int32   /  partitionLeaderEpoch in place
    16 magic                int8    (2)
    17 crc                  uint32  CRC32C of bytes 21..end
    21 attributes           int16   bits 0-2 codec, 3 LogAppendTime, 4 transactional, 5 control
    23 lastOffsetDelta      int32
    27 baseTimestamp        int64
    35 maxTimestamp         int64
    43 producerId           int64
    51 producerEpoch        int16
    53 baseSequence         int32
    57 recordsCount         int32
    61 records...

The hot path (`validate_batches`, `assign_offsets`) works per batch and never per record: it
checks framing, magic, the CRC32C over everything the producer wrote, and that lastOffsetDelta
agrees with recordsCount. Kafka's validator also walks each record's offset delta; doing that in
Python would cost more than the rest of a produce, and the CRC already rejects any batch that
was altered after the producer built it, so a record-level walk is left to the places that
decode records anyway (`decode_records`: tools, tests, compaction, legacy conversion).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from odradek.common.errors import CorruptRecordError, InvalidRecordError
from odradek.protocol.codec import write_uvarint
from odradek.protocol.compression import compress, decompress

HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the part batchLength does not count
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
MAX_TIMESTAMP_OFFSET = 35

ATTR_CODEC_MASK = 0x07
ATTR_LOG_APPEND_TIME = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20

NO_PRODUCER_ID = -1
NO_TIMESTAMP = -1

_HEADER = struct.Struct(">qiibIhiqqqhii")
_OFFSET_AND_EPOCH = struct.Struct(">q")
_EPOCH = struct.Struct(">i")
_TIMESTAMP = struct.Struct(">q")
_CRC = struct.Struct(">I")


_crc32c_function: Callable[[bytes | bytearray | memoryview], int] | None = None


def crc32c(data: bytes | bytearray | memoryview) -> int:
    # imported on first use: the crc32c package pulls in importlib.metadata, which would add
    # ~20 ms to every start-up and to tools that never check a CRC
    global _crc32c_function
    if _crc32c_function is None:
        from crc32c import crc32c as function

        _crc32c_function = function
    return int(_crc32c_function(data))


@dataclass(frozen=True, slots=True)
class BatchHeader:
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & ATTR_CODEC_MASK

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def timestamp_type(self) -> int:
        """0 CreateTime, 1 LogAppendTime."""
        return 1 if self.attributes & ATTR_LOG_APPEND_TIME else 0


def read_header(buf: bytes | bytearray | memoryview, position: int = 0) -> BatchHeader:
    return BatchHeader(*_HEADER.unpack_from(buf, position))


def iter_batches(buf: bytes | bytearray | memoryview) -> Iterator[tuple[int, BatchHeader]]:
    """Yield (position, header) of each whole batch; stops at a partial trailing batch."""
    position = 0
    end = len(buf)
    while position + HEADER_SIZE <= end:
        header = read_header(buf, position)
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD or position + header.size > end:
            return
        yield position, header
        position += header.size


@dataclass(frozen=True, slots=True)
class ValidatedBatches:
    """What the log needs to know of a producer's record set after validation."""

    headers: tuple[BatchHeader, ...]
    positions: tuple[int, ...]
    records_count: int
    max_timestamp: int
    offset_of_max_timestamp_delta: int  # offset delta, relative to the first batch's first offset


def validate_batches(buf: bytes | bytearray | memoryview, max_batch_bytes: int) -> ValidatedBatches:
    """Check a produced record set batch by batch: framing, magic, CRC32C, counts, size.

    Raises CorruptRecordError (CORRUPT_MESSAGE) for framing and CRC problems,
    InvalidRecordError (INVALID_RECORD) for inconsistent fields; RecordTooLargeError is left to
    the caller, which knows the topic's max.message.bytes.
    """
    view = memoryview(buf)
    end = len(view)
    if end == 0:
        raise InvalidRecordError("empty record set")
    headers: list[BatchHeader] = []
    positions: list[int] = []
    position = 0
    count = 0
    max_timestamp = NO_TIMESTAMP
    max_timestamp_delta = 0
    relative = 0
    while position < end:
        if end - position < HEADER_SIZE:
            raise CorruptRecordError("record set ends inside a batch header")
        header = read_header(view, position)
        if header.magic != 2:
            raise CorruptRecordError(f"unsupported magic {header.magic} (only v2 batches)")
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
            raise CorruptRecordError(f"batch length {header.batch_length} is too small")
        size = header.size
        if position + size > end:
            raise CorruptRecordError("record set ends inside a batch")
        if size > max_batch_bytes:
            from odradek.common.errors import RecordTooLargeError

            raise RecordTooLargeError(
                f"batch of {size} bytes exceeds the limit of {max_batch_bytes} bytes"
            )
        if crc32c(view[position + ATTRIBUTES_OFFSET : position + size]) != header.crc:
            raise CorruptRecordError("batch CRC32C does not match its contents")
        if header.records_count <= 0 and not header.is_control:
            raise InvalidRecordError("batch holds no records")
        if header.last_offset_delta != header.records_count - 1:
            raise InvalidRecordError(
                f"lastOffsetDelta {header.last_offset_delta} does not match"
                f" recordsCount {header.records_count}"
            )
        if header.max_timestamp > max_timestamp:
            max_timestamp = header.max_timestamp
            max_timestamp_delta = relative + header.last_offset_delta
        headers.append(header)
        positions.append(position)
        count += header.records_count
        relative += header.last_offset_delta + 1
        position += size
    return ValidatedBatches(
        tuple(headers), tuple(positions), count, max_timestamp, max_timestamp_delta
    )


def assign_offsets(
    buf: bytearray | memoryview,
    validated: ValidatedBatches,
    first_offset: int,
    leader_epoch: int,
    log_append_time_ms: int | None,
) -> int:
    """Rewrite baseOffset and partitionLeaderEpoch of every batch in place; returns next offset.

    With `log_append_time_ms` (topic message.timestamp.type=LogAppendTime) the batch's
    LogAppendTime bit and maxTimestamp are set and its CRC recomputed, as Kafka does.
    """
    view = memoryview(buf)
    offset = first_offset
    for position, header in zip(validated.positions, validated.headers, strict=True):
        _OFFSET_AND_EPOCH.pack_into(view, position, offset)
        _EPOCH.pack_into(view, position + 12, leader_epoch)
        if log_append_time_ms is not None:
            attributes = header.attributes | ATTR_LOG_APPEND_TIME
            struct.pack_into(">h", view, position + ATTRIBUTES_OFFSET, attributes)
            _TIMESTAMP.pack_into(view, position + MAX_TIMESTAMP_OFFSET, log_append_time_ms)
            end = position + header.size
            _CRC.pack_into(view, position + CRC_OFFSET, crc32c(view[position + 21 : end]))
        offset += header.last_offset_delta + 1
    return offset


# --- per-record encoding: tools, tests, internal topics --------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


def _read_varint(buf: bytes, position: int) -> tuple[int, int]:
    shift = 0
    result = 0
    while True:
        if position >= len(buf):
            raise CorruptRecordError("record ends inside a varint")
        byte = buf[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise CorruptRecordError("varint is too long")
    return (result >> 1) ^ -(result & 1), position


def _read_bytes(buf: bytes, position: int) -> tuple[bytes | None, int]:
    length, position = _read_varint(buf, position)
    if length < 0:
        return None, position
    if position + length > len(buf):
        raise CorruptRecordError("record field runs past the end of the batch")
    return buf[position : position + length], position + length


def decode_records(batch: bytes | bytearray | memoryview) -> tuple[BatchHeader, list[Record]]:
    """Decode one whole batch into its records (decompressing if needed)."""
    header = read_header(batch)
    body = decompress(header.compression, memoryview(batch)[HEADER_SIZE : header.size])
    records: list[Record] = []
    position = 0
    for _ in range(header.records_count):
        length, position = _read_varint(body, position)
        end = position + length
        if length < 0 or end > len(body):
            raise CorruptRecordError("record runs past the end of the batch")
        position += 1  # attributes (unused)
        timestamp_delta, position = _read_varint(body, position)
        offset_delta, position = _read_varint(body, position)
        key, position = _read_bytes(body, position)
        value, position = _read_bytes(body, position)
        header_count, position = _read_varint(body, position)
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(header_count):
            name, position = _read_bytes(body, position)
            header_value, position = _read_bytes(body, position)
            headers.append(((name or b"").decode("utf-8", "replace"), header_value))
        if position != end:
            raise CorruptRecordError("record length does not match its fields")
        timestamp = header.base_timestamp + timestamp_delta
        if header.timestamp_type == 1:
            timestamp = header.max_timestamp
        records.append(
            Record(header.base_offset + offset_delta, timestamp, key, value, tuple(headers))
        )
    return header, records


def _varint(value: int) -> bytes:
    """A zigzag-encoded signed varint, as record fields use."""
    return write_uvarint((value << 1) ^ (value >> 63))


def _bytes_field(data: bytes | None) -> bytes:
    if data is None:
        return _varint(-1)
    return _varint(len(data)) + data


def encode_batch(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]],
    *,
    base_offset: int = 0,
    timestamp_ms: int = 0,
    compression: int = 0,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
    attributes: int = 0,
) -> bytes:
    """Build one v2 batch of (key, value, headers) records, all stamped `timestamp_ms`."""
    body = bytearray()
    for delta, (key, value, headers) in enumerate(records):
        record = bytearray(b"\x00")
        record += _varint(0)  # timestamp delta
        record += _varint(delta)
        record += _bytes_field(key)
        record += _bytes_field(value)
        record += _varint(len(headers))
        for name, header_value in headers:
            record += _bytes_field(name.encode())
            record += _bytes_field(header_value)
        body += _varint(len(record)) + record
    payload = compress(compression, bytes(body))
    attrs = (attributes & ~ATTR_CODEC_MASK) | compression
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            attrs,
            len(records) - 1,
            timestamp_ms,
            timestamp_ms,
            producer_id,
            producer_epoch,
            base_sequence,
            len(records),
        )
        + payload
    )
    batch_length = len(after_crc) + 9  # leader epoch + magic + crc
    return (
        struct.pack(">qiib", base_offset, batch_length, partition_leader_epoch, 2)
        + _CRC.pack(crc32c(after_crc))
        + after_crc
    )
