"""Produce request decoding on the hot path: record sets stay memoryviews into the frame.

Versions 3-11 (v9+ flexible). The frame is the writable bytearray the connection received, so
the log can rewrite baseOffset and partitionLeaderEpoch in place without copying the records.
Layout: transactional_id, acks int16, timeout_ms int32, [topic name, [partition int32,
records bytes]]; flexible versions use compact lengths and tagged fields.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from odradek.protocol.codec import ProtocolError, read_uvarint, skip_tagged_fields

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


@dataclass(frozen=True, slots=True)
class ProducePartition:
    partition: int
    records: memoryview | None


@dataclass(frozen=True, slots=True)
class ProduceTopic:
    name: str
    partitions: tuple[ProducePartition, ...]


@dataclass(frozen=True, slots=True)
class ProduceRequestData:
    transactional_id: str | None
    acks: int
    timeout_ms: int
    topics: tuple[ProduceTopic, ...]


class _Reader:
    __slots__ = ("buf", "end", "flexible", "position")

    def __init__(self, buf: memoryview, position: int, flexible: bool) -> None:
        self.buf = buf
        self.position = position
        self.end = len(buf)
        self.flexible = flexible

    def _need(self, count: int) -> None:
        if count < 0 or self.position + count > self.end:
            raise ProtocolError("produce request is truncated")

    def int16(self) -> int:
        self._need(2)
        (value,) = _INT16.unpack_from(self.buf, self.position)
        self.position += 2
        return int(value)

    def int32(self) -> int:
        self._need(4)
        (value,) = _INT32.unpack_from(self.buf, self.position)
        self.position += 4
        return int(value)

    def length(self) -> int:
        """Length of a string/bytes/array; -1 for null."""
        if self.flexible:
            value, self.position = read_uvarint(self.buf, self.position)
            return value - 1
        return self.int32()

    def string(self) -> str | None:
        if self.flexible:
            length, self.position = read_uvarint(self.buf, self.position)
            length -= 1
        else:
            length = self.int16()
        if length < 0:
            return None
        self._need(length)
        value = bytes(self.buf[self.position : self.position + length]).decode("utf-8")
        self.position += length
        return value

    def records(self) -> memoryview | None:
        length = self.length()
        if length < 0:
            return None
        self._need(length)
        view = self.buf[self.position : self.position + length]
        self.position += length
        return view

    def array_length(self) -> int:
        count = self.length()
        if count < 0:
            return 0
        if count > self.end - self.position:  # each element takes at least one byte
            raise ProtocolError("array length exceeds the request size")
        return count

    def tagged_fields(self) -> None:
        if self.flexible:
            self.position = skip_tagged_fields(self.buf, self.position)


def decode_produce_request(
    frame: bytearray | memoryview, position: int, version: int
) -> ProduceRequestData:
    reader = _Reader(memoryview(frame), position, flexible=version >= 9)
    try:
        transactional_id = reader.string()
        acks = reader.int16()
        timeout_ms = reader.int32()
        topics: list[ProduceTopic] = []
        for _ in range(reader.array_length()):
            name = reader.string()
            if name is None:
                raise ProtocolError("null topic name in produce request")
            partitions: list[ProducePartition] = []
            for _ in range(reader.array_length()):
                partition = reader.int32()
                records = reader.records()
                reader.tagged_fields()
                partitions.append(ProducePartition(partition, records))
            reader.tagged_fields()
            topics.append(ProduceTopic(name, tuple(partitions)))
        reader.tagged_fields()
    except UnicodeDecodeError as exc:
        raise ProtocolError("produce request holds a string that is not UTF-8") from exc
    return ProduceRequestData(transactional_id, acks, timeout_ms, tuple(topics))


def decode_legacy_produce_request(
    frame: bytearray | memoryview, position: int
) -> ProduceRequestData:
    """Produce v0-v2: acks int16, timeout int32, [topic string, [partition int32, bytes]]."""
    reader = _Reader(memoryview(frame), position, flexible=False)
    acks = reader.int16()
    timeout_ms = reader.int32()
    topics: list[ProduceTopic] = []
    try:
        for _ in range(reader.array_length()):
            name = reader.string() or ""
            partitions = []
            for _ in range(reader.array_length()):
                partitions.append(ProducePartition(reader.int32(), reader.records()))
            topics.append(ProduceTopic(name, tuple(partitions)))
    except UnicodeDecodeError as exc:
        raise ProtocolError("produce request holds a string that is not UTF-8") from exc
    return ProduceRequestData(None, acks, timeout_ms, tuple(topics))
