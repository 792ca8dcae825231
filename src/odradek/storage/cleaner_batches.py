"""Looking inside v2 record batches for the log cleaner, and rebuilding the ones it filters.

A batch body (after decompression) is records back to back, each

    varint length | int8 attributes | varint timestamp delta | varint offset delta |
    varint key length (-1: null) | key | varint value length (-1: null, a tombstone) | value |
    varint header count | headers

(signed zigzag varints). Deltas are relative to the batch header's base offset and base
timestamp, so a record's bytes stay valid in a rebuilt batch that keeps both; that is how the
cleaner keeps records without re-encoding them. The one exception is the delete horizon
(KIP-534): attribute bit 0x40 says the base timestamp field holds the time after which the
batch's tombstones and markers may be removed, and the record timestamp deltas are then relative
to that horizon, so setting it re-encodes each record's timestamp delta.

Rebuilt batches keep the header's base offset, last offset delta, producer id, epoch, base
sequence, partition leader epoch and attributes (so the producer state a replay derives from them
stays what it was); an empty batch (no records left) keeps all of them too, as Kafka writes it.

Also here: the check that a record set for a compacted topic has a key on every record
(Kafka's LogValidator), the only per-record look at produced data.

Pure functions; no I/O.
"""

from __future__ import annotations

import struct

from odradek.common.errors import CorruptRecordError, InvalidRecordError
from odradek.protocol import records
from odradek.protocol.codec import write_uvarint
from odradek.protocol.compression import compress, decompress
from odradek.protocol.records import HEADER_SIZE, BatchHeader

ATTR_DELETE_HORIZON = 0x40

_PREFIX = struct.Struct(">qiib")
_AFTER_CRC = struct.Struct(">hiqqqhii")
_CRC = struct.Struct(">I")

# One record as the cleaner sees it: (offset, timestamp, key, has value, start, end), start and
# end delimiting its bytes (length prefix included) in the decompressed body.
RawRecord = tuple[int, int, bytes | None, bool, int, int]


def delete_horizon_ms(header: BatchHeader) -> int | None:
    """The batch's delete horizon (KIP-534), or None when it has none yet."""
    if header.attributes & ATTR_DELETE_HORIZON:
        return header.base_timestamp
    return None


def _varint(body: bytes, position: int) -> tuple[int, int]:
    byte = body[position]
    if byte < 0x80:  # the common case: one byte
        return (byte >> 1) ^ -(byte & 1), position + 1
    result = byte & 0x7F
    shift = 7
    position += 1
    while True:
        if position >= len(body) or shift > 63:
            raise CorruptRecordError("bad varint in a record")
        byte = body[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), position
        shift += 7


def batch_body(batch: bytes | memoryview, header: BatchHeader) -> bytes:
    """The batch's records, decompressed."""
    return decompress(header.compression, memoryview(batch)[HEADER_SIZE : header.size])


def iter_records(body: bytes, header: BatchHeader) -> list[RawRecord]:
    """Every record of a decompressed body, with its key and whether it has a value."""
    found: list[RawRecord] = []
    position = 0
    base_offset = header.base_offset
    base_timestamp = header.base_timestamp
    log_append_time = header.timestamp_type == 1
    end_of_body = len(body)
    for _ in range(header.records_count):
        start = position
        length, position = _varint(body, position)
        end = position + length
        if length < 0 or end > end_of_body:
            raise CorruptRecordError("record runs past the end of the batch")
        position += 1  # attributes
        timestamp_delta, position = _varint(body, position)
        offset_delta, position = _varint(body, position)
        key_length, position = _varint(body, position)
        key: bytes | None = None
        if key_length >= 0:
            key = body[position : position + key_length]
            position += key_length
        value_length, position = _varint(body, position)
        timestamp = header.max_timestamp if log_append_time else base_timestamp + timestamp_delta
        found.append((base_offset + offset_delta, timestamp, key, value_length >= 0, start, end))
        position = end
    return found


def _rebase(body: bytes, record: RawRecord, new_base_timestamp: int) -> bytes:
    """The record's bytes with its timestamp delta taken relative to `new_base_timestamp`."""
    _, timestamp, _, _, start, end = record
    _, position = _varint(body, start)
    attributes = body[position : position + 1]
    _, after_delta = _varint(body, position + 1)
    delta = timestamp - new_base_timestamp
    inner = attributes + write_uvarint((delta << 1) ^ (delta >> 63)) + body[after_delta:end]
    return write_uvarint((len(inner) << 1) ^ (len(inner) >> 63)) + inner


def build_batch(
    header: BatchHeader,
    body: bytes,
    kept: list[RawRecord],
    *,
    delete_horizon: int | None,
) -> bytes:
    """The batch holding only the `kept` records of `body` (maybe none), with the delete
    horizon `delete_horizon` when given (else the batch's own, if any)."""
    attributes = header.attributes
    base_timestamp = header.base_timestamp
    if delete_horizon is not None and not attributes & ATTR_DELETE_HORIZON:
        attributes |= ATTR_DELETE_HORIZON
        base_timestamp = delete_horizon
        payload = b"".join(_rebase(body, record, delete_horizon) for record in kept)
    else:
        payload = b"".join(body[record[4] : record[5]] for record in kept)
    max_timestamp = header.max_timestamp
    if kept and header.timestamp_type == 0:
        max_timestamp = max(record[1] for record in kept)
    if kept:
        payload = compress(header.compression, payload)
    after_crc = (
        _AFTER_CRC.pack(
            attributes,
            header.last_offset_delta,
            base_timestamp,
            max_timestamp,
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            len(kept),
        )
        + payload
    )
    return (
        _PREFIX.pack(header.base_offset, len(after_crc) + 9, header.partition_leader_epoch, 2)
        + _CRC.pack(records.crc32c(after_crc))
        + after_crc
    )


def require_keys(
    buffer: bytes | bytearray | memoryview, validated: records.ValidatedBatches, topic: str
) -> None:
    """Raise InvalidRecordError (INVALID_RECORD) when a data record has no key: a compacted
    topic cannot keep it (Kafka's LogValidator.validateKey)."""
    view = memoryview(buffer)
    for position, header in zip(validated.positions, validated.headers, strict=True):
        if header.is_control:
            continue
        batch = view[position : position + header.size]
        for record in iter_records(batch_body(batch, header), header):
            if record[2] is None:
                raise InvalidRecordError(
                    f"Compacted topic cannot accept message without key in topic partition {topic}."
                )
