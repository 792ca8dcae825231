"""Deadlines for cores without I/O: keyed timers that the I/O edge fires by polling.

A core schedules `timers.schedule(key, deadline_ms)` (scheduling a key again moves its
deadline), cancels with `timers.cancel(key)`, and when `timers.next_deadline()` has passed takes
the due keys one at a time with `timers.pop_expired(now_ms)`, handling each before taking the
next: a handler may reschedule or cancel keys that are also due, and those must not fire.
Nothing here reads a clock or sleeps, so a test drives time by passing whatever `now_ms` it
likes.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Timers(Generic[K]):
    def __init__(self) -> None:
        # key -> its live heap entry's (deadline, sequence); other heap entries are stale
        self._deadlines: dict[K, tuple[int, int]] = {}
        self._heap: list[tuple[int, int, K]] = []
        self._sequence = itertools.count()

    def __contains__(self, key: K) -> bool:
        return key in self._deadlines

    def __len__(self) -> int:
        return len(self._deadlines)

    def deadline(self, key: K) -> int | None:
        entry = self._deadlines.get(key)
        return None if entry is None else entry[0]

    def schedule(self, key: K, deadline_ms: int) -> None:
        sequence = next(self._sequence)
        self._deadlines[key] = (deadline_ms, sequence)
        heapq.heappush(self._heap, (deadline_ms, sequence, key))
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._deadlines):
            self._compact()

    def cancel(self, key: K) -> None:
        self._deadlines.pop(key, None)

    def cancel_where(self, matches: Callable[[K], bool]) -> None:
        """Cancel every key for which `matches` is true."""
        for key in [k for k in self._deadlines if matches(k)]:
            del self._deadlines[key]

    def next_deadline(self) -> int | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_expired(self, now_ms: int) -> K | None:
        """The earliest key whose deadline is at or before `now_ms`, removed; None if none."""
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now_ms:
            return None
        _, _, key = heapq.heappop(self._heap)
        del self._deadlines[key]
        return key

    def _drop_stale(self) -> None:
        """Pop heap entries that were cancelled or rescheduled since they were pushed."""
        heap = self._heap
        while heap and self._deadlines.get(heap[0][2]) != heap[0][:2]:
            heapq.heappop(heap)

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._deadlines.get(entry[2]) == entry[:2]]
        heapq.heapify(self._heap)
