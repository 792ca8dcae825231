"""Fetch response encoding on the hot path, v4-v16: records go out as their own buffers.

The response is built as a list of small encoded pieces with each partition's record bytes
left as the buffer the log read them into, so the socket's `writelines` sends them without
another copy. Layout: throttle_time_ms, error_code + session_id (v7+), then per topic its name
(or id, v13+) and per partition: index, error_code, high_watermark, last_stable_offset,
log_start_offset (v5+), aborted_transactions (nullable), preferred_read_replica (v11+),
records; v12+ are flexible (compact lengths, empty tagged fields except a replica's
diverging_epoch, tagged field 0 of a partition).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from odradek.protocol.codec import write_uvarint as _uvarint

_PARTITION_HEAD = struct.Struct(">ihqq")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
_EPOCH_END = struct.Struct(">iq")


@dataclass(frozen=True, slots=True)
class FetchPartitionData:
    partition_index: int
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    aborted_transactions: Sequence[tuple[int, int]] | None  # (producer_id, first_offset)
    records: bytes
    diverging_epoch: tuple[int, int] | None = None  # v12+ (epoch, end offset), to a replica


@dataclass(frozen=True, slots=True)
class FetchTopicData:
    name: str
    topic_id: bytes
    partitions: Sequence[FetchPartitionData]


def encode_fetch_response(
    version: int,
    correlation_id: int,
    error_code: int,
    session_id: int,
    topics: Sequence[FetchTopicData],
) -> list[bytes]:
    """The whole response frame (size prefix included) as a list of buffers."""
    flexible = version >= 12
    head = bytearray(_INT32.pack(correlation_id))
    if flexible:
        head += b"\x00"  # response header v1: no tagged fields
    head += _INT32.pack(0)  # throttle_time_ms
    if version >= 7:
        head += struct.pack(">hi", error_code, session_id)

    def array_length(count: int) -> bytes:
        return _uvarint(count + 1) if flexible else _INT32.pack(count)

    head += array_length(len(topics))
    pieces: list[bytes] = []
    current = head
    for topic in topics:
        if version >= 13:
            current += topic.topic_id
        else:
            name = topic.name.encode()
            current += (
                _uvarint(len(name) + 1) + name
                if flexible
                else (struct.pack(">h", len(name)) + name)
            )
        current += array_length(len(topic.partitions))
        for partition in topic.partitions:
            current += _PARTITION_HEAD.pack(
                partition.partition_index,
                partition.error_code,
                partition.high_watermark,
                partition.last_stable_offset,
            )
            if version >= 5:
                current += _INT64.pack(partition.log_start_offset)
            aborted = partition.aborted_transactions
            if aborted is None:
                current += b"\x00" if flexible else _INT32.pack(-1)
            else:
                current += array_length(len(aborted))
                for producer_id, first_offset in aborted:
                    current += struct.pack(">qq", producer_id, first_offset)
                    if flexible:
                        current += b"\x00"
            if version >= 11:
                current += _INT32.pack(-1)  # preferred_read_replica
            records = partition.records
            current += _uvarint(len(records) + 1) if flexible else _INT32.pack(len(records))
            if len(records) > 4096:
                pieces.append(bytes(current))
                pieces.append(records)
                current = bytearray()
            else:
                current += records
            if flexible:
                diverging = partition.diverging_epoch
                if diverging is None:
                    current += b"\x00"  # partition tagged fields
                else:  # one tagged field: tag 0, DivergingEpoch (epoch, end_offset, no tags)
                    current += b"\x01\x00\x0d" + _EPOCH_END.pack(*diverging) + b"\x00"
        if flexible:
            current += b"\x00"  # topic tagged fields
    if flexible:
        current += b"\x00"  # response tagged fields
    pieces.append(bytes(current))
    total = sum(len(piece) for piece in pieces)
    pieces.insert(0, _INT32.pack(total))
    return pieces
