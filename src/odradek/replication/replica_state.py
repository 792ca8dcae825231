"""What a partition leader knows of each follower: where its log ends and when it last caught up.

Kafka's Replica.updateFetchState: a follower that fetches from offset F has everything below F,
so its log end offset is F. It was caught up at the time of this fetch when F reaches the
leader's log end offset as it was when this fetch was read, and it was caught up at the time of
its previous fetch when F reaches what the leader's log end offset was then (it has since read
everything that fetch could see). `last_caught_up_time_ms` only moves forward. A follower is in
sync (`is_caught_up`) when its log ends where the leader's does, or it caught up no longer than
replica.lag.time.max.ms ago.

Pure state: no I/O, no clock of its own (callers pass monotonic milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass

UNKNOWN_OFFSET = -1
# "Never": monotonic clocks may start near 0, so 0 would read as "recently" (Kafka's wall
# clock makes its 0 ancient).
NEVER_MS = -(2**62)


@dataclass(slots=True)
class FollowerFetchState:
    replica_id: int
    log_end_offset: int = UNKNOWN_OFFSET
    log_start_offset: int = UNKNOWN_OFFSET
    last_caught_up_time_ms: int = NEVER_MS
    last_fetch_leader_log_end_offset: int = UNKNOWN_OFFSET
    last_fetch_time_ms: int = NEVER_MS

    def update(
        self,
        fetch_offset: int,
        log_start_offset: int,
        fetch_time_ms: int,
        leader_log_end_offset: int,
    ) -> None:
        """A fetch from `fetch_offset`, read when the leader's log ended at
        `leader_log_end_offset`."""
        if fetch_offset >= leader_log_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, fetch_time_ms)
        elif fetch_offset >= self.last_fetch_leader_log_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, self.last_fetch_time_ms)
        self.log_end_offset = fetch_offset
        self.log_start_offset = log_start_offset
        self.last_fetch_leader_log_end_offset = leader_log_end_offset
        self.last_fetch_time_ms = fetch_time_ms

    def reset(self, now_ms: int, leader_log_end_offset: int, in_sync: bool) -> None:
        """This node just became leader: nothing is known of the follower's log yet; one in
        the ISR is taken as caught up now, so it is not dropped before it can fetch."""
        self.log_end_offset = UNKNOWN_OFFSET
        self.log_start_offset = UNKNOWN_OFFSET
        self.last_caught_up_time_ms = now_ms if in_sync else NEVER_MS
        self.last_fetch_leader_log_end_offset = leader_log_end_offset if in_sync else UNKNOWN_OFFSET
        self.last_fetch_time_ms = now_ms if in_sync else NEVER_MS

    def is_caught_up(self, leader_log_end_offset: int, now_ms: int, max_lag_ms: int) -> bool:
        return (
            leader_log_end_offset == self.log_end_offset
            or now_ms - self.last_caught_up_time_ms <= max_lag_ms
        )
