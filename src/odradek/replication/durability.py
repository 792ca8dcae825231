"""Group commit: one fsync covers every acks=all append that is waiting on it.

Waiters ask for durability up to an offset; if no fsync of that log is running, one starts in
a worker thread. When it finishes, every waiter at or below the new recovery point is released
and, if appends arrived meanwhile, the next fsync starts at once: under load the log is fsync'd
back to back and each fsync acknowledges a whole group of produce requests.

With followers, durability of an acks=all append also needs the in-sync followers to have it
(they fsync before they fetch again, so a fetch offset they report is durable there): the
partition sets `wait_replicated`, awaited after the local fsync, which ends once the high
watermark covers the offset. A leader alone has its high watermark at its log end, so that
wait returns at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from odradek.common.errors import StorageError

logger = logging.getLogger(__name__)


class GroupCommit:
    def __init__(self, flush: Callable[[], int], recovery_point: Callable[[], int]) -> None:
        self._flush = flush
        self._recovery_point = recovery_point
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._flushing = False
        self.wait_replicated: Callable[[int], Awaitable[None]] | None = None

    async def wait_durable(self, end_offset: int) -> None:
        """Return once every offset below `end_offset` has been fsync'd (and replicated to
        the ISR, see `wait_replicated`)."""
        if self._recovery_point() < end_offset:
            await self.wait_flushed(end_offset)
        if self.wait_replicated is not None:
            await self.wait_replicated(end_offset)

    async def wait_flushed(self, end_offset: int) -> None:
        """Return once every offset below `end_offset` has been fsync'd here (a follower
        before its next fetch)."""
        if self._recovery_point() >= end_offset:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((end_offset, future))
        if not self._flushing:
            self._start()
        await future

    def request_flush(self) -> None:
        """Start an fsync without waiting on it (flush.messages / flush.ms policy)."""
        if not self._flushing:
            self._start()

    def _start(self) -> None:
        self._flushing = True
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, self._flush).add_done_callback(self._done)

    def _done(self, finished: asyncio.Future[int]) -> None:
        self._flushing = False
        error = finished.exception()
        if error is not None:
            logger.error("[GroupCommit] fsync failed: %s", error)
        recovery_point = self._recovery_point()
        remaining: list[tuple[int, asyncio.Future[None]]] = []
        for end_offset, future in self._waiters:
            if future.done():
                continue
            if error is not None:
                future.set_exception(StorageError(f"fsync failed: {error}"))
            elif end_offset <= recovery_point:
                future.set_result(None)
            else:
                remaining.append((end_offset, future))
        self._waiters = remaining
        if remaining:
            self._start()
