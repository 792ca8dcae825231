"""Incremental fetch sessions (KIP-227) as a core without I/O.

A client that opens a session (id 0, epoch 0) gets a session id; later fetches send only the
partitions that changed and get back only the partitions with something new: records, a moved
high watermark / last stable offset / log start offset, or an error. Epochs must follow one by
one; a wrong epoch is INVALID_FETCH_SESSION_EPOCH, an unknown id FETCH_SESSION_ID_NOT_FOUND.
Epoch -1 with id 0 is a plain full fetch without a session.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

from odradek.common.errors import ErrorCode

INITIAL_EPOCH = 0
FINAL_EPOCH = -1


@dataclass(slots=True)
class SessionPartition:
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int = -1
    last_fetched_epoch: int = -1  # v12+; a replica's fetch checks it for divergence
    replica_log_start_offset: int = -1  # a replica's own log start offset
    # what the client was last told, to decide whether an incremental response includes it
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1


PartitionKey = tuple[str, int]


@dataclass(slots=True)
class FetchSession:
    session_id: int
    epoch: int  # the epoch the next request must carry
    partitions: OrderedDict[PartitionKey, SessionPartition] = field(default_factory=OrderedDict)
    last_used_ms: int = 0


class FetchSessionError(Exception):
    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code.name)
        self.code = code


class FetchSessionCache:
    def __init__(self, max_sessions: int, eviction_ms: int = 120_000) -> None:
        self.max_sessions = max_sessions
        self.eviction_ms = eviction_ms
        self._sessions: dict[int, FetchSession] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: int, epoch: int, now_ms: int) -> FetchSession:
        """The session an incremental fetch continues; checks and advances its epoch."""
        session = self._sessions.get(session_id)
        if session is None:
            raise FetchSessionError(ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
        if session.epoch != epoch:
            raise FetchSessionError(ErrorCode.INVALID_FETCH_SESSION_EPOCH)
        session.epoch = _next_epoch(epoch)
        session.last_used_ms = now_ms
        return session

    def create(self, now_ms: int) -> FetchSession | None:
        """A new session, or None when the cache is full (the fetch is then sessionless)."""
        self._evict(now_ms)
        if len(self._sessions) >= self.max_sessions:
            return None
        session = FetchSession(next(self._ids), _next_epoch(INITIAL_EPOCH), last_used_ms=now_ms)
        self._sessions[session.session_id] = session
        return session

    def remove(self, session_id: int) -> None:
        self._sessions.pop(session_id, None)

    def _evict(self, now_ms: int) -> None:
        stale = [
            sid for sid, s in self._sessions.items() if now_ms - s.last_used_ms > self.eviction_ms
        ]
        for session_id in stale:
            del self._sessions[session_id]


def _next_epoch(epoch: int) -> int:
    return 1 if epoch >= 2**31 - 1 else epoch + 1
