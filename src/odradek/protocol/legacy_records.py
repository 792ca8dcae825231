"""Kafka's old message formats, magic v0 and v1: decoding and encoding of message sets.

Only the conversion paths use this (Produce v0-v2 up-conversion, Fetch v0-v3 down-conversion);
the log stores magic v2 batches only. A message set is a sequence of entries:

    offset int64, message_size int32, then the message (message_size bytes):
    crc uint32 (CRC32 of everything after it), magic int8 (0 or 1), attributes int8
    (bits 0-2 codec, bit 3 LogAppendTime for magic 1), timestamp int64 (magic 1 only),
    key bytes (int32 length, -1 null), value bytes (int32 length, -1 null)

A compressed message (codec bits set) is a wrapper whose value is a compressed message set of
uncompressed inner messages with the wrapper's magic. Magic 1 inner offsets are relative (0..n-1)
and the wrapper carries the absolute offset of the last one; magic 0 inner offsets are absolute.
Snappy inside a wrapper is written in xerial framing, as Kafka's Java client writes it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from odradek.common.errors import CorruptRecordError, InvalidRecordError
from odradek.protocol.compression import CompressionType, compress, decompress

LOG_OVERHEAD = 12  # offset + message_size
MAGIC_OFFSET = 16  # of the entry: after offset, size and crc
RECORD_OVERHEAD_V0 = 14  # crc, magic, attributes, key length, value length
RECORD_OVERHEAD_V1 = 22  # ... plus the timestamp
ATTR_CODEC_MASK = 0x07
ATTR_LOG_APPEND_TIME = 0x08
NO_TIMESTAMP = -1

_ENTRY_HEAD = struct.Struct(">qiIbb")  # offset, size, crc, magic, attributes
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
_XERIAL_HEADER = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024


@dataclass(frozen=True, slots=True)
class LegacyMessage:
    offset: int
    magic: int
    attributes: int
    timestamp: int  # NO_TIMESTAMP for magic 0
    key: bytes | None
    value: bytes | None
    size: int  # of the whole entry, LOG_OVERHEAD included

    @property
    def compression(self) -> int:
        return self.attributes & ATTR_CODEC_MASK

    @property
    def log_append_time(self) -> bool:
        return self.magic > 0 and bool(self.attributes & ATTR_LOG_APPEND_TIME)


def _read_bytes(buf: memoryview, position: int, end: int) -> tuple[bytes | None, int]:
    if position + 4 > end:
        raise CorruptRecordError("message ends inside a length")
    (length,) = _INT32.unpack_from(buf, position)
    position += 4
    if length < 0:
        return None, position
    if position + length > end:
        raise CorruptRecordError("message field runs past the end of the message")
    return bytes(buf[position : position + length]), position + length


def iter_messages(
    buf: bytes | bytearray | memoryview, *, allow_partial_tail: bool = False
) -> Iterator[LegacyMessage]:
    """The messages of a message set, each checked (size, magic, CRC32, field lengths).

    Raises CorruptRecordError (CORRUPT_MESSAGE) for anything malformed, a set that ends
    inside an entry included unless `allow_partial_tail` (a fetched set may end so).
    """
    view = memoryview(buf)
    end = len(view)
    position = 0
    while position < end:
        if end - position < LOG_OVERHEAD:
            if allow_partial_tail:
                return
            raise CorruptRecordError("message set ends inside an entry header")
        offset, size = struct.unpack_from(">qi", view, position)
        if size < RECORD_OVERHEAD_V0:
            raise CorruptRecordError(
                f"Record size {size} is less than the minimum record overhead"
                f" ({RECORD_OVERHEAD_V0})"
            )
        message_end = position + LOG_OVERHEAD + size
        if message_end > end:
            if allow_partial_tail:
                return
            raise CorruptRecordError("message set ends inside a message")
        _, _, crc, magic, attributes = _ENTRY_HEAD.unpack_from(view, position)
        if magic not in (0, 1):
            raise CorruptRecordError(f"Invalid magic found in record: {magic}")
        if magic == 1 and size < RECORD_OVERHEAD_V1:
            raise CorruptRecordError(f"Record size {size} is too small for magic 1")
        if zlib.crc32(view[position + MAGIC_OFFSET : message_end]) != crc:
            raise CorruptRecordError(f"Record is corrupt (stored crc = {crc})")
        field = position + MAGIC_OFFSET + 2
        timestamp = NO_TIMESTAMP
        if magic == 1:
            (timestamp,) = _INT64.unpack_from(view, field)
            field += 8
        key, field = _read_bytes(view, field, message_end)
        value, field = _read_bytes(view, field, message_end)
        if field != message_end:
            raise CorruptRecordError("message size does not match its fields")
        yield LegacyMessage(offset, magic, attributes, timestamp, key, value, size + LOG_OVERHEAD)
        position = message_end


def inner_messages(wrapper: LegacyMessage) -> list[LegacyMessage]:
    """The messages inside a compressed wrapper, with absolute offsets and the timestamps a
    reader sees (the wrapper's for LogAppendTime). Raises InvalidRecordError (INVALID_RECORD)
    for nested compression, a magic other than the wrapper's, a null or empty inner set, a
    zstd wrapper, a magic 1 wrapper offset below its last relative inner offset (but 0, which
    some librdkafka versions send); CorruptRecordError for bad bytes, a truncated inner set
    included (Kafka drops a partial inner tail silently; refusing it loses nothing unseen)."""
    if wrapper.compression == CompressionType.ZSTD:
        raise InvalidRecordError(
            f"Invalid wrapper compressionType found in legacy deep record iterator {wrapper.magic}"
        )
    if wrapper.value is None:
        raise InvalidRecordError(
            f"Found invalid compressed record set with null value (magic = {wrapper.magic})"
        )
    value = wrapper.value
    if wrapper.magic == 0 and wrapper.compression == CompressionType.LZ4:
        value = _fix_lz4_header_checksum(value)
    inner = list(iter_messages(decompress(wrapper.compression, value)))
    if not inner:
        raise InvalidRecordError("Found invalid compressed record set with no inner records")
    for message in inner:
        if message.magic != wrapper.magic:
            raise InvalidRecordError(
                f"Compressed message magic {message.magic} does not match wrapper magic"
                f" {wrapper.magic}"
            )
        if message.compression != CompressionType.NONE:
            raise InvalidRecordError(
                "Compressed outer record should not have an inner record with a compression"
                " attribute set"
            )
    if wrapper.magic == 0:
        return inner
    last_relative = inner[-1].offset
    if wrapper.offset != 0 and wrapper.offset < last_relative:  # 0: some librdkafka versions
        raise InvalidRecordError(
            f"Found invalid wrapper offset in compressed v1 message set, wrapper offset"
            f" '{wrapper.offset}' is less than the last inner message offset '{last_relative}'"
            " and it is not zero."
        )
    base = 0 if wrapper.offset == 0 else wrapper.offset - last_relative
    return [
        LegacyMessage(
            base + m.offset,
            m.magic,
            m.attributes,
            wrapper.timestamp if wrapper.log_append_time else m.timestamp,
            m.key,
            m.value,
            m.size,
        )
        for m in inner
    ]


def encode_message(
    offset: int,
    magic: int,
    attributes: int,
    timestamp: int,
    key: bytes | None,
    value: bytes | None,
) -> bytes:
    """One message set entry."""
    body = bytearray(struct.pack(">bb", magic, attributes))
    if magic > 0:
        body += _INT64.pack(timestamp)
    for field in (key, value):
        if field is None:
            body += _INT32.pack(-1)
        else:
            body += _INT32.pack(len(field))
            body += field
    crc = zlib.crc32(body)
    return struct.pack(">qiI", offset, len(body) + 4, crc) + body


def compress_message_set(codec: int, data: bytes, magic: int = 1) -> bytes:
    """A wrapper's value as Kafka's Java client writes it, which is what old clients read:
    snappy in xerial framing, lz4 as a frame of independent 64 KiB blocks (old readers such
    as Kafka's own and kafka-go's refuse linked blocks), gzip as is."""
    if codec == CompressionType.SNAPPY:
        out = bytearray(_XERIAL_HEADER)
        for start in range(0, len(data), _XERIAL_BLOCK):
            block = compress(codec, data[start : start + _XERIAL_BLOCK])
            out += _INT32.pack(len(block))
            out += block
        return bytes(out)
    if codec == CompressionType.LZ4:
        return _lz4_frame(data)
    return compress(codec, data)


_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_LZ4_DESCRIPTOR = b"\x60\x40"  # version 1, independent blocks, no checksums; 64 KiB blocks
_LZ4_BLOCK = 64 * 1024
_MASK = 0xFFFFFFFF
_PRIME1, _PRIME2, _PRIME3, _PRIME4, _PRIME5 = (
    2654435761,
    2246822519,
    3266489917,
    668265263,
    374761393,
)


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK


def _xxh32_short(data: bytes) -> int:
    """xxHash32 (seed 0) of fewer than 16 bytes: the LZ4 frame header checksum."""
    h = (_PRIME5 + len(data)) & _MASK
    position = 0
    while position + 4 <= len(data):
        lane = int.from_bytes(data[position : position + 4], "little")
        h = (_rotl((h + lane * _PRIME3) & _MASK, 17) * _PRIME4) & _MASK
        position += 4
    for byte in data[position:]:
        h = (_rotl((h + byte * _PRIME5) & _MASK, 11) * _PRIME1) & _MASK
    h = ((h ^ (h >> 15)) * _PRIME2) & _MASK
    h = ((h ^ (h >> 13)) * _PRIME3) & _MASK
    return h ^ (h >> 16)


def _fix_lz4_header_checksum(frame: bytes) -> bytes:
    """Kafka ignores the LZ4 header checksum of magic 0, where clients wrote it computed
    over the frame magic too (KAFKA-3160); set the right one so the frame decodes."""
    if len(frame) < 7 or frame[:4] != _LZ4_MAGIC:
        return frame  # not a frame: decompression reports it
    flags = frame[4]
    end = 6 + (8 if flags & 0x08 else 0) + (4 if flags & 0x01 else 0)
    if len(frame) <= end:
        return frame
    checksum = (_xxh32_short(frame[4:end]) >> 8) & 0xFF
    return frame[:end] + bytes([checksum]) + frame[end + 1 :]


def _lz4_frame(data: bytes) -> bytes:
    # Kafka writes magic 0 frames with the header checksum computed over the frame magic too
    # (KAFKA-3160), which Java clients before 0.10 checked; sarama and other LZ4 libraries
    # reject it, while every reader that knows of it (Kafka 0.10+, librdkafka) ignores or
    # repairs it. So the checksum is the right one, for magic 0 as well.
    out = bytearray(_LZ4_MAGIC + _LZ4_DESCRIPTOR)
    out.append((_xxh32_short(_LZ4_DESCRIPTOR) >> 8) & 0xFF)
    import cramjam  # imported on first use, as compression.py does

    for start in range(0, len(data), _LZ4_BLOCK):
        chunk = data[start : start + _LZ4_BLOCK]
        block = bytes(cramjam.lz4.compress_block(chunk, store_size=False))
        if len(block) >= len(chunk):
            out += struct.pack("<I", len(chunk) | 0x80000000)  # stored uncompressed
            out += chunk
        else:
            out += struct.pack("<I", len(block))
            out += block
    out += b"\x00\x00\x00\x00"  # end mark
    return bytes(out)
