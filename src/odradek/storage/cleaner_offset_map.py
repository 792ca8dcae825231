"""The log cleaner's offset map: key -> offset of the key's latest record in the dirty section.

Kafka's SkimpyOffsetMap stores a 16-byte MD5 of each key plus an 8-byte offset in a fixed
buffer (`log.cleaner.dedupe.buffer.size` split over the cleaner threads, filled to
`log.cleaner.io.buffer.load.factor`). Here the keys themselves are the dict keys (no hash
collisions to reason about), and the same budget bounds how many entries one cleaning may hold:
`capacity` = buffer bytes / 24 * load factor, as Kafka counts its slots. A cleaning whose dirty
section has more distinct keys stops building at a batch boundary and cleans up to there; the
next cleaning goes on from that point.

No I/O.
"""

from __future__ import annotations

BYTES_PER_ENTRY = 24  # Kafka's MD5 (16 bytes) + offset (8 bytes)


class OffsetMap:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"an offset map needs room for at least one key, not {capacity}")
        self.capacity = capacity
        self._offsets: dict[bytes, int] = {}
        # Offsets above this one were not looked at: records there are kept as they are.
        self.latest_offset = -1

    @classmethod
    def for_buffer(cls, buffer_bytes: int, load_factor: float) -> OffsetMap:
        return cls(max(1, int(buffer_bytes // BYTES_PER_ENTRY * load_factor)))

    def __len__(self) -> int:
        return len(self._offsets)

    def clear(self) -> None:
        self._offsets.clear()
        self.latest_offset = -1

    def has_room_for(self, records: int) -> bool:
        """Whether `records` more keys surely fit (each record might bring a new key)."""
        return len(self._offsets) + records <= self.capacity

    def put(self, key: bytes, offset: int) -> None:
        self._offsets[key] = offset

    def get(self, key: bytes) -> int:
        """The latest offset of `key`, -1 if the dirty section does not hold it."""
        return self._offsets.get(key, -1)

    @property
    def utilization(self) -> float:
        return len(self._offsets) / self.capacity
