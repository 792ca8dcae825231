"""The embedded consumer protocol: what Kafka consumers put in JoinGroup and SyncGroup bytes.

The broker treats member metadata and assignments as opaque, except where it must know which
topics a group reads (OffsetDelete refuses subscribed topics; offsets of topics nobody
subscribes to may expire) and for tools that show assignments. Layouts (big-endian):

    Subscription v0-v3: version int16, topics [string], user_data bytes,
                        v1+ owned_partitions [(topic string, [int32])], v2+ generation int32,
                        v3+ rack_id nullable string
    Assignment   v0-v3: version int16, assigned_partitions [(topic string, [int32])],
                        user_data bytes

Newer versions only append fields, so a reader of the first fields also reads them.
"""

from __future__ import annotations

import struct

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def _take(self, size: int) -> bytes:
        end = self.position + size
        if size < 0 or end > len(self.data):
            raise ValueError("consumer protocol bytes are truncated")
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def int16(self) -> int:
        value: int = _INT16.unpack(self._take(2))[0]
        return value

    def int32(self) -> int:
        value: int = _INT32.unpack(self._take(4))[0]
        return value

    def string(self) -> str:
        size = self.int16()
        if size < 0:
            raise ValueError("a topic name is null")
        return self._take(size).decode("utf-8")

    def count(self) -> int:
        count = self.int32()
        if count < 0 or count > len(self.data):
            raise ValueError(f"bad array length {count}")
        return count


def subscription_topics(metadata: bytes) -> list[str]:
    reader = _Reader(metadata)
    if reader.int16() < 0:
        raise ValueError("negative subscription version")
    return [reader.string() for _ in range(reader.count())]


def assignment_partitions(assignment: bytes) -> list[tuple[str, int]]:
    """(topic, partition) pairs of a consumer assignment; empty bytes mean no assignment."""
    if not assignment:
        return []
    reader = _Reader(assignment)
    if reader.int16() < 0:
        raise ValueError("negative assignment version")
    pairs: list[tuple[str, int]] = []
    for _ in range(reader.count()):
        topic = reader.string()
        pairs.extend((topic, reader.int32()) for _ in range(reader.count()))
    return pairs
