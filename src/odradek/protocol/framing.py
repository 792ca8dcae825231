"""Sans-io framing of Kafka requests: a 4-byte big-endian size, then that many bytes.

`FrameDecoder` follows asyncio's BufferedProtocol shape (`get_buffer` / `buffer_updated`) so
the kernel writes straight into our buffers: small frames are sliced out of a staging buffer,
and a frame larger than the staging buffer is received directly into its own bytearray (the
produce path rewrites offsets in place there, so no record byte is copied twice). `feed` is the
plain-bytes entry for tests. A size below zero or above the limit is a `FramingError`: the
connection must be closed, as Kafka does, before anything of that size is allocated.
"""

from __future__ import annotations

from collections import deque

STAGING_BYTES = 64 * 1024


class FramingError(Exception):
    pass


class FrameDecoder:
    def __init__(self, max_frame_bytes: int, staging_bytes: int = STAGING_BYTES) -> None:
        self._max = max_frame_bytes
        self._staging = bytearray(staging_bytes)
        self._start = 0
        self._end = 0
        self._frame: bytearray | None = None
        self._filled = 0
        self._frames: deque[bytearray] = deque()

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        if self._frame is not None:
            return memoryview(self._frame)[self._filled :]
        if self._end == len(self._staging) or (self._start and self._start == self._end):
            pending = self._end - self._start
            self._staging[:pending] = self._staging[self._start : self._end]
            self._start, self._end = 0, pending
        return memoryview(self._staging)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._frame is not None:
            self._filled += nbytes
            if self._filled == len(self._frame):
                self._frames.append(self._frame)
                self._frame = None
            return
        self._end += nbytes
        self._parse()

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            target = self.get_buffer()
            count = min(len(target), len(view))
            target[:count] = view[:count]
            view = view[count:]
            self.buffer_updated(count)

    def next_frame(self) -> bytearray | None:
        return self._frames.popleft() if self._frames else None

    def _parse(self) -> None:
        staging = self._staging
        while self._end - self._start >= 4:
            start = self._start
            size = int.from_bytes(staging[start : start + 4], "big", signed=True)
            if size < 0 or size > self._max:
                raise FramingError(f"invalid request size {size} (limit {self._max})")
            available = self._end - start - 4
            if available >= size:
                self._frames.append(staging[start + 4 : start + 4 + size])
                self._start = start + 4 + size
                continue
            if size + 4 > len(staging):
                frame = bytearray(size)
                frame[:available] = staging[start + 4 : self._end]
                self._frame, self._filled = frame, available
                self._start = self._end = 0
            break
        if self._start == self._end:
            self._start = self._end = 0
