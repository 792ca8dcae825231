"""Compression codecs of Kafka record batches (attributes bits 0-2), via cramjam.

The broker stores batches as the producer compressed them; it decompresses only to look inside
(dump-log, validation of legacy formats, compaction). Snappy arrives either raw (librdkafka) or
in xerial framing (the Java client); both are read.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Any

from odradek.common.errors import CorruptRecordError, ErrorCode, KafkaError

_XERIAL_MAGIC = b"\x82SNAPPY\x00"


class CompressionType(IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4

    @classmethod
    def from_name(cls, name: str) -> CompressionType:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown compression type {name!r}") from None


def _cramjam() -> Any:
    import cramjam  # imported on first use, to keep start-up fast

    return cramjam


def _snappy_decompress(data: bytes | memoryview) -> bytes:
    raw = bytes(data)
    if not raw.startswith(_XERIAL_MAGIC):
        return bytes(_cramjam().snappy.decompress_raw(raw))
    # xerial framing: 8-byte magic, two int32 versions, then (int32 length, raw block)*
    out = bytearray()
    position = 16
    while position < len(raw):
        if position + 4 > len(raw):
            raise CorruptRecordError("truncated xerial snappy block header")
        (length,) = struct.unpack_from(">i", raw, position)
        position += 4
        if length < 0 or position + length > len(raw):
            raise CorruptRecordError("truncated xerial snappy block")
        out += bytes(_cramjam().snappy.decompress_raw(raw[position : position + length]))
        position += length
    return bytes(out)


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    """Decompress a batch's records section; raises CorruptRecordError on bad input."""
    try:
        if codec == CompressionType.NONE:
            return bytes(data)
        if codec == CompressionType.GZIP:
            return bytes(_cramjam().gzip.decompress(bytes(data)))
        if codec == CompressionType.SNAPPY:
            return _snappy_decompress(data)
        if codec == CompressionType.LZ4:
            return bytes(_cramjam().lz4.decompress(bytes(data)))
        if codec == CompressionType.ZSTD:
            return bytes(_cramjam().zstd.decompress(bytes(data)))
    except KafkaError:
        raise
    except Exception as exc:  # cramjam raises its own DecompressionError and ValueError
        raise CorruptRecordError(f"cannot decompress {CompressionType(codec).name}: {exc}") from exc
    raise KafkaError(f"unknown compression codec {codec}", ErrorCode.UNSUPPORTED_COMPRESSION_TYPE)


def compress(codec: int, data: bytes) -> bytes:
    if codec == CompressionType.NONE:
        return data
    if codec == CompressionType.GZIP:
        return bytes(_cramjam().gzip.compress(data))
    if codec == CompressionType.SNAPPY:
        return bytes(_cramjam().snappy.compress_raw(data))
    if codec == CompressionType.LZ4:
        return bytes(_cramjam().lz4.compress(data))
    if codec == CompressionType.ZSTD:
        return bytes(_cramjam().zstd.compress(data))
    raise KafkaError(f"unknown compression codec {codec}", ErrorCode.UNSUPPORTED_COMPRESSION_TYPE)
