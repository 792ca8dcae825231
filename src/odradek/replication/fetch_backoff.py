"""Which partitions of a fetch loop sit out a backoff after an error (Kafka's
AbstractFetcherThread.delayPartitions).

A partition whose fetch failed (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_ID, a fencing error: the
leader's image and ours disagree for now) waits replica.fetch.backoff.ms before it is fetched
again; the other partitions of the loop keep fetching without pause. Were the whole loop to back
off instead, one partition whose leader lags in metadata would slow every partition the loop
follows, and a follower could fall behind a busy leader for good. A new leader epoch ends the
wait at once: the error was about the old one.

Pure state: no I/O, no clock of its own (callers pass monotonic milliseconds).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class FetchBackoff(Generic[K]):
    def __init__(self, backoff_ms: int) -> None:
        self.backoff_ms = backoff_ms
        self._delayed: dict[K, tuple[int, int]] = {}  # key -> (until ms, leader epoch)

    def delay(self, key: K, leader_epoch: int, now_ms: int) -> None:
        """The fetch of `key` at `leader_epoch` failed at `now_ms`."""
        self._delayed[key] = (now_ms + self.backoff_ms, leader_epoch)

    def ready(self, epochs: Mapping[K, int], now_ms: int) -> list[K]:
        """The keys of `epochs` (key -> its current leader epoch) that may be fetched now;
        forgets the delays that are over or no longer apply."""
        for key in [k for k in self._delayed if k not in epochs]:
            del self._delayed[key]
        out: list[K] = []
        for key, epoch in epochs.items():
            delayed = self._delayed.get(key)
            if delayed is not None:
                until_ms, delayed_epoch = delayed
                if now_ms < until_ms and delayed_epoch == epoch:
                    continue
                del self._delayed[key]
            out.append(key)
        return out

    def next_ready_ms(self) -> int | None:
        """When the earliest delay ends (None: nothing is delayed)."""
        return min((until for until, _ in self._delayed.values()), default=None)
