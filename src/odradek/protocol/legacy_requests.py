"""Codecs of the old request versions kio has no schema for (Kafka 4 dropped them).

Produce v0-v2 responses, Fetch v0-v3, ListOffsets v0 and OffsetCommit v0-v1, all
non-flexible (int16 string lengths, int32 array and bytes lengths), laid out as Kafka 3.x's
JSON schemas describe them. Every length read from the wire is checked against the bytes left;
a short or inconsistent body is a ProtocolError (the connection closes, as for any request
that cannot be parsed).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from odradek.protocol.codec import ProtocolError

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")


class _Reader:
    __slots__ = ("buf", "end", "position")

    def __init__(self, buf: bytes | bytearray | memoryview, position: int) -> None:
        self.buf = memoryview(buf)
        self.position = position
        self.end = len(self.buf)

    def _take(self, count: int) -> int:
        start = self.position
        if count < 0 or start + count > self.end:
            raise ProtocolError("request is truncated")
        self.position = start + count
        return start

    def int16(self) -> int:
        return int(_INT16.unpack_from(self.buf, self._take(2))[0])

    def int32(self) -> int:
        return int(_INT32.unpack_from(self.buf, self._take(4))[0])

    def int64(self) -> int:
        return int(_INT64.unpack_from(self.buf, self._take(8))[0])

    def string(self) -> str | None:
        length = self.int16()
        if length < 0:
            return None
        start = self._take(length)
        try:
            return bytes(self.buf[start : start + length]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("request holds a string that is not UTF-8") from exc

    def name(self) -> str:
        value = self.string()
        if value is None:
            raise ProtocolError("null name in request")
        return value

    def count(self) -> int:
        """An array length: -1 (null) reads as empty; each element takes at least one byte."""
        count = self.int32()
        if count > self.end - self.position:
            raise ProtocolError("array length exceeds the request size")
        return max(count, 0)


def _string(value: str) -> bytes:
    data = value.encode()
    return _INT16.pack(len(data)) + data


def _frame(body: bytearray) -> bytes:
    return _INT32.pack(len(body)) + bytes(body)


# --- Produce v0-v2 response ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegacyProducePartitionResult:
    partition: int
    error_code: int
    base_offset: int
    log_append_time_ms: int


def encode_legacy_produce_response(
    version: int,
    correlation_id: int,
    topics: Sequence[tuple[str, Sequence[LegacyProducePartitionResult]]],
) -> bytes:
    """v0: [name, [partition, error, base_offset]]; v1 adds throttle_time_ms at the end; v2
    adds log_append_time_ms per partition."""
    body = bytearray(_INT32.pack(correlation_id))
    body += _INT32.pack(len(topics))
    for name, partitions in topics:
        body += _string(name)
        body += _INT32.pack(len(partitions))
        for p in partitions:
            body += struct.pack(">ihq", p.partition, p.error_code, p.base_offset)
            if version >= 2:
                body += _INT64.pack(p.log_append_time_ms)
    if version >= 1:
        body += _INT32.pack(0)  # throttle_time_ms
    return _frame(body)


# --- Fetch v0-v3 ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegacyFetchPartition:
    partition: int
    fetch_offset: int
    partition_max_bytes: int


@dataclass(frozen=True, slots=True)
class LegacyFetchRequest:
    replica_id: int
    max_wait_ms: int
    min_bytes: int
    max_bytes: int  # v3+; 2**31-1 before
    topics: tuple[tuple[str, tuple[LegacyFetchPartition, ...]], ...]


def decode_legacy_fetch_request(
    frame: bytes | bytearray | memoryview, position: int, version: int
) -> LegacyFetchRequest:
    reader = _Reader(frame, position)
    replica_id = reader.int32()
    max_wait_ms = reader.int32()
    min_bytes = reader.int32()
    max_bytes = reader.int32() if version >= 3 else 2**31 - 1
    topics = []
    for _ in range(reader.count()):
        name = reader.name()
        partitions = tuple(
            LegacyFetchPartition(reader.int32(), reader.int64(), reader.int32())
            for _ in range(reader.count())
        )
        topics.append((name, partitions))
    return LegacyFetchRequest(replica_id, max_wait_ms, min_bytes, max_bytes, tuple(topics))


@dataclass(frozen=True, slots=True)
class LegacyFetchPartitionResult:
    partition: int
    error_code: int
    high_watermark: int
    records: bytes


def encode_legacy_fetch_response(
    version: int,
    correlation_id: int,
    topics: Sequence[tuple[str, Sequence[LegacyFetchPartitionResult]]],
) -> list[bytes]:
    """v0: [name, [partition, error, high_watermark, records]]; v1+ start with
    throttle_time_ms. Record sets go out as their own buffers."""
    pieces: list[bytes] = []
    current = bytearray(_INT32.pack(correlation_id))
    if version >= 1:
        current += _INT32.pack(0)
    current += _INT32.pack(len(topics))
    for name, partitions in topics:
        current += _string(name)
        current += _INT32.pack(len(partitions))
        for p in partitions:
            current += struct.pack(
                ">ihqi", p.partition, p.error_code, p.high_watermark, len(p.records)
            )
            if len(p.records) > 4096:
                pieces.append(bytes(current))
                pieces.append(p.records)
                current = bytearray()
            else:
                current += p.records
    pieces.append(bytes(current))
    pieces.insert(0, _INT32.pack(sum(len(piece) for piece in pieces)))
    return pieces


# --- ListOffsets v0 ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegacyListOffsetsPartition:
    partition: int
    timestamp: int
    max_num_offsets: int


def decode_list_offsets_v0_request(
    frame: bytes | bytearray | memoryview, position: int
) -> tuple[int, tuple[tuple[str, tuple[LegacyListOffsetsPartition, ...]], ...]]:
    """(replica_id, [(topic, [(partition, timestamp, max_num_offsets)])])."""
    reader = _Reader(frame, position)
    replica_id = reader.int32()
    topics = []
    for _ in range(reader.count()):
        name = reader.name()
        partitions = tuple(
            LegacyListOffsetsPartition(reader.int32(), reader.int64(), reader.int32())
            for _ in range(reader.count())
        )
        topics.append((name, partitions))
    return replica_id, tuple(topics)


def encode_list_offsets_v0_response(
    correlation_id: int,
    topics: Sequence[tuple[str, Sequence[tuple[int, int, Sequence[int]]]]],
) -> bytes:
    """[name, [partition, error_code, [offset]]] from (partition, error, offsets) tuples."""
    body = bytearray(_INT32.pack(correlation_id))
    body += _INT32.pack(len(topics))
    for name, partitions in topics:
        body += _string(name)
        body += _INT32.pack(len(partitions))
        for partition, error_code, offsets in partitions:
            body += struct.pack(">ihi", partition, error_code, len(offsets))
            for offset in offsets:
                body += _INT64.pack(offset)
    return _frame(body)


# --- OffsetCommit v0-v1 --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegacyCommitPartition:
    partition_index: int
    committed_offset: int
    commit_timestamp: int  # v1 only; -1 otherwise
    committed_metadata: str | None


@dataclass(frozen=True, slots=True)
class LegacyCommitTopic:
    name: str
    partitions: tuple[LegacyCommitPartition, ...]


@dataclass(frozen=True, slots=True)
class LegacyOffsetCommitRequest:
    """Field names as the kio entities of later versions, so one commit path serves all."""

    group_id: str
    generation_id_or_member_epoch: int
    member_id: str
    topics: tuple[LegacyCommitTopic, ...]


def decode_legacy_offset_commit_request(
    frame: bytes | bytearray | memoryview, position: int, version: int
) -> LegacyOffsetCommitRequest:
    """v0: group_id, [topic, [partition, offset, metadata]]; v1 adds generation_id and
    member_id after the group and a commit timestamp per partition."""
    reader = _Reader(frame, position)
    group_id = reader.name()
    generation = -1
    member_id = ""
    if version >= 1:
        generation = reader.int32()
        member_id = reader.name()
    topics = []
    for _ in range(reader.count()):
        name = reader.name()
        partitions = []
        for _ in range(reader.count()):
            partition = reader.int32()
            offset = reader.int64()
            timestamp = reader.int64() if version >= 1 else -1
            partitions.append(LegacyCommitPartition(partition, offset, timestamp, reader.string()))
        topics.append(LegacyCommitTopic(name, tuple(partitions)))
    return LegacyOffsetCommitRequest(group_id, generation, member_id, tuple(topics))


def encode_legacy_offset_commit_response(
    correlation_id: int, topics: Sequence[tuple[str, Sequence[tuple[int, int]]]]
) -> bytes:
    """[name, [partition, error_code]] (v0 and v1 alike)."""
    body = bytearray(_INT32.pack(correlation_id))
    body += _INT32.pack(len(topics))
    for name, partitions in topics:
        body += _string(name)
        body += _INT32.pack(len(partitions))
        for partition, error_code in partitions:
            body += struct.pack(">ih", partition, error_code)
    return _frame(body)
