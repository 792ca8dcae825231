"""What both coordinator runtimes (group and transaction) share around their cores: calling an
entry point that answers through a callback, and one timer that follows the core's next
deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from odradek.common.clock import Clock

T = TypeVar("T")


async def call_core(start: Callable[[Callable[[T], None]], None], drive: Callable[[], None]) -> T:
    """Start an entry point of a core with a `respond` callback, carry out what it queued
    (`drive`), and wait for the answer (which may come at once or after writes complete)."""
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    def respond(result: T) -> None:
        if not future.done():  # a client that went away cancelled it
            future.set_result(result)

    start(respond)
    drive()
    return await future


class DeadlineTimer:
    def __init__(self, clock: Clock, fire: Callable[[int], None]) -> None:
        self.clock = clock
        self._fire_at = fire  # called with the wall clock time once the deadline has passed
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: int | None = None

    def arm(self, deadline: int | None) -> None:
        """Fire at `deadline` (wall ms; None: never), replacing any earlier arming."""
        if deadline == self._deadline:
            return
        self.cancel()
        self._deadline = deadline
        if deadline is None:
            return
        delay_s = max(deadline - self.clock.wall_ms(), 0) / 1000
        self._timer = asyncio.get_running_loop().call_later(delay_s, self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._deadline = None

    def _fire(self) -> None:
        self._timer = None
        self._deadline = None
        self._fire_at(self.clock.wall_ms())
