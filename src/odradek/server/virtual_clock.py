"""A clock tests can move forward, and what a node does when its time jumps.

`VirtualClock` reads the system's clocks plus an offset that `advance()` increases: time keeps
flowing (long-polls, request timeouts and the clients' own timers behave as usual), and a test
jumps ahead instead of sleeping. After a jump, `after_time_jump(node)` runs on the node's event
loop and fires what fell due at once: group members' session and rebalance timeouts,
committed-offset retention, log retention (segments past retention.ms), and fetch long-polls
whose wait is over by the new time. An
acks=all produce's timeout still takes its real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from odradek.server.node import Node


class VirtualClock:
    def __init__(self) -> None:
        self._offset_ms = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    @property
    def offset_ms(self) -> int:
        """How far this clock is ahead of the system's."""
        return self._offset_ms

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self._offset_ms

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000 + self._offset_ms

    def on_advance(self, listener: Callable[[], None]) -> None:
        """Call `listener` (in the advancing thread) after every jump."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def advance_ms(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("time does not go back")
        with self._lock:
            self._offset_ms += ms
        for listener in list(self._listeners):
            listener()

    def advance(self, seconds: float) -> None:
        self.advance_ms(round(seconds * 1000))


def after_time_jump(node: Node) -> None:
    """Fire the node's timers that the jump made due (call on the node's event loop)."""
    runtime = node.group_coordinator
    now_ms = node.clock.wall_ms()
    runtime.core.poll(now_ms)
    runtime.core.expire_offsets(now_ms)
    runtime.drive()
    node.apply_retention()
    node.replica_manager.wake_waiters()  # long-polls look at their deadline again
