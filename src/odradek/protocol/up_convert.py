"""Up-conversion of a produced v0/v1 message set into one magic v2 batch (Produce v0-v2).

What Kafka 3.x does when a topic's message format is v2 and an old producer writes to it
(LogValidator: convertAndAssignOffsetsNonCompressed, validateMessagesAndAssignOffsetsCompressed):
every message is checked (CRC32, framing), a compressed set must be a single wrapper whose inner
messages are uncompressed and of the wrapper's magic, and the records become one v2 batch with
the producer's codec, keys, values and timestamps (none for magic 0; the wrapper's for a
LogAppendTime wrapper). Offsets are assigned later by the log, as for any batch; the batch
carries no producer id. Runs only for old producers: modern Produce never comes here.

One deliberate difference: Kafka 3.x trims a partial message at the end of a produced set
(or of a wrapper's inner set) and acknowledges the rest, and acknowledges a set holding no
whole message with offset -1 without appending anything; here such a set is refused whole
with CORRUPT_MESSAGE, as a truncated v2 batch is, so a client never gets a success for
records that were dropped.
"""

from __future__ import annotations

import struct

from odradek.common.errors import InvalidRecordError
from odradek.protocol.codec import write_uvarint
from odradek.protocol.compression import CompressionType, compress
from odradek.protocol.legacy_records import NO_TIMESTAMP, LegacyMessage, inner_messages
from odradek.protocol.legacy_records import iter_messages as iter_legacy_messages
from odradek.protocol.records import crc32c


def varint(value: int) -> bytes:
    """A zigzag signed varint, as v2 record fields use."""
    return write_uvarint((value << 1) ^ (value >> 63))


def bytes_field(data: bytes | None) -> bytes:
    return varint(-1) if data is None else varint(len(data)) + data


def legacy_records(buf: bytes | bytearray | memoryview) -> tuple[list[LegacyMessage], int]:
    """The records of a produced v0/v1 message set and its codec; raises CorruptRecordError
    or InvalidRecordError as Kafka's validator answers bad input."""
    shallow = list(iter_legacy_messages(buf))
    if not shallow:
        raise InvalidRecordError("Record batch has no batches at all")
    magic = shallow[0].magic
    for message in shallow:
        if message.magic != magic:
            raise InvalidRecordError(
                f"Batch magic {message.magic} is not the same as the first batch's magic"
                f" byte {magic}"
            )
    codec = CompressionType.NONE
    for message in shallow:
        if message.compression != CompressionType.NONE:
            codec = CompressionType(message.compression)
    if codec == CompressionType.NONE:
        return shallow, codec
    if len(shallow) > 1:
        raise InvalidRecordError("Compressed outer record has more than one batch")
    return inner_messages(shallow[0]), codec


def encode_v2_batch(
    records: list[tuple[int, bytes | None, bytes | None]], codec: int, base_offset: int = 0
) -> bytearray:
    """One v2 batch of (timestamp, key, value) records, no producer id, offsets 0..n-1 from
    `base_offset`; timestamps as given (NO_TIMESTAMP allowed)."""
    base_timestamp = records[0][0]
    max_timestamp = max(timestamp for timestamp, _, _ in records)
    body = bytearray()
    for delta, (timestamp, key, value) in enumerate(records):
        record = bytearray(b"\x00")
        record += varint(timestamp - base_timestamp)
        record += varint(delta)
        record += bytes_field(key)
        record += bytes_field(value)
        record += b"\x00"  # no headers
        body += varint(len(record))
        body += record
    payload = compress(codec, bytes(body))
    after_crc = struct.pack(
        ">hiqqqhii",
        codec,
        len(records) - 1,
        base_timestamp,
        max_timestamp,
        -1,
        -1,
        -1,
        len(records),
    )
    after_crc += payload
    batch = bytearray(struct.pack(">qiib", base_offset, len(after_crc) + 9, -1, 2))
    batch += struct.pack(">I", crc32c(after_crc))
    batch += after_crc
    return batch


def up_convert(buf: bytes | bytearray | memoryview) -> bytearray:
    """A produced v0/v1 message set as one v2 batch (a writable buffer the log can assign
    offsets in)."""
    messages, codec = legacy_records(buf)
    return encode_v2_batch(
        [(m.timestamp if m.magic > 0 else NO_TIMESTAMP, m.key, m.value) for m in messages],
        codec,
    )
