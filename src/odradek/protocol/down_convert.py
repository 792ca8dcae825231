"""Down-conversion of stored v2 batches to a v0/v1 message set, for Fetch v0-v3.

As Kafka 3.x does it (RecordsUtil.downConvert, LazyDownConversionRecords), batch by batch:
control batches are dropped; producer ids, sequences and the transactional flag are lost;
headers are dropped (v0/v1 have none); magic 0 has no timestamps. An uncompressed batch
becomes one message per record at or after the fetch offset. A compressed batch becomes one
wrapper message with the same codec holding all its records (relative inner offsets for magic
1, absolute for magic 0; the wrapper carries the last offset and the max timestamp). A
LogAppendTime batch keeps that timestamp type (magic 1) and its append time.

A zstd batch cannot be expressed in v0/v1: the partition gets UNSUPPORTED_COMPRESSION_TYPE
when the read starts with one (what comes before it is returned first), as Kafka answers.

Size: the set is cut at the last whole message within `max_bytes`. When not even the first
fits, a reader that may exceed the limit (Fetch v3, KIP-74) gets it whole; an older one gets
its first `max_bytes` bytes, a partial message, which old clients read as "message larger than
the fetch size" just as with Kafka. Only the conversion paths run this.
"""

from __future__ import annotations

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.compression import CompressionType
from odradek.protocol.legacy_records import (
    ATTR_LOG_APPEND_TIME,
    compress_message_set,
    encode_message,
)
from odradek.protocol.records import HEADER_SIZE, LOG_OVERHEAD, decode_records, read_header


def _convert_batch(batch: memoryview, to_magic: int, fetch_offset: int) -> list[bytes]:
    header, records = decode_records(batch)
    timestamp_attribute = ATTR_LOG_APPEND_TIME if to_magic > 0 and header.timestamp_type == 1 else 0
    codec = header.compression
    if codec == CompressionType.NONE:
        return [
            encode_message(r.offset, to_magic, timestamp_attribute, r.timestamp, r.key, r.value)
            for r in records
            if r.offset >= fetch_offset
        ]
    if not records:
        return []
    base = records[0].offset if to_magic > 0 else 0
    inner = b"".join(
        encode_message(r.offset - base, to_magic, timestamp_attribute, r.timestamp, r.key, r.value)
        for r in records
    )
    if header.timestamp_type == 1:
        wrapper_timestamp = header.max_timestamp
    else:
        wrapper_timestamp = max(r.timestamp for r in records)
    return [
        encode_message(
            records[-1].offset,
            to_magic,
            codec | timestamp_attribute,
            wrapper_timestamp,
            None,
            compress_message_set(codec, inner, to_magic),
        )
    ]


def down_convert(
    batches: bytes | bytearray | memoryview,
    to_magic: int,
    fetch_offset: int,
    max_bytes: int,
    *,
    min_one_message: bool,
) -> bytes:
    """Whole v2 batches (a partial trailing one is ignored) as a magic `to_magic` message set
    of at most `max_bytes` (see the module docstring for the first message)."""
    view = memoryview(batches)
    end = len(view)
    out = bytearray()
    position = 0
    while position + HEADER_SIZE <= end:
        header = read_header(view, position)
        size = header.size
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD or position + size > end:
            break
        batch = view[position : position + size]
        position += size
        if header.is_control:
            continue
        if header.compression == CompressionType.ZSTD:
            # v0/v1 have no zstd (Kafka: UNSUPPORTED_COMPRESSION_TYPE). What precedes the
            # batch is returned first, so a reader gets the error only where it is stuck.
            if out:
                break
            raise KafkaError(
                "Down-conversion of zstandard-compressed batches is not supported",
                ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
            )
        if header.magic < 2:  # cannot happen (the log stores v2 only); passed on unchanged
            entries = [bytes(batch)]
        else:
            entries = _convert_batch(batch, to_magic, fetch_offset)
        for entry in entries:
            if len(out) + len(entry) > max_bytes:
                if not out:
                    out += entry if min_one_message else entry[: max(max_bytes, 0)]
                return bytes(out)
            out += entry
    return bytes(out)
