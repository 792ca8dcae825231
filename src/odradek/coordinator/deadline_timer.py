"""One asyncio timer that follows a core's next deadline: what both coordinator runtimes use
to call their core's `poll` when a deadline passes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from odradek.common.clock import Clock


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
