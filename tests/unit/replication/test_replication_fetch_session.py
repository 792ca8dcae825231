"""Incremental fetch sessions (KIP-227): ids, epochs, capacity and eviction."""

from __future__ import annotations

import pytest

from odradek.common.errors import ErrorCode
from odradek.replication.fetch_session import (
    FetchSessionCache,
    FetchSessionError,
    SessionPartition,
    _next_epoch,
)


def test_create_gives_distinct_ids_and_epoch_one() -> None:
    cache = FetchSessionCache(max_sessions=10)
    first = cache.create(now_ms=0)
    second = cache.create(now_ms=0)
    assert first is not None and second is not None
    assert first.session_id != second.session_id
    assert first.session_id > 0  # 0 means "no session" on the wire
    assert first.epoch == 1
    assert len(cache) == 2


def test_epochs_follow_one_by_one() -> None:
    cache = FetchSessionCache(max_sessions=10)
    session = cache.create(now_ms=0)
    assert session is not None
    session.partitions[("t", 0)] = SessionPartition(fetch_offset=5, partition_max_bytes=100)
    for epoch in range(1, 6):
        found = cache.get(session.session_id, epoch, now_ms=epoch)
        assert found is session
        assert found.epoch == epoch + 1
        assert found.last_used_ms == epoch
    assert session.partitions[("t", 0)].fetch_offset == 5


@pytest.mark.parametrize("wrong", [0, 2, 3, -1, 100])
def test_wrong_epoch_is_invalid_fetch_session_epoch(wrong: int) -> None:
    cache = FetchSessionCache(max_sessions=10)
    session = cache.create(now_ms=0)
    assert session is not None
    with pytest.raises(FetchSessionError) as info:
        cache.get(session.session_id, wrong, now_ms=1)
    assert info.value.code is ErrorCode.INVALID_FETCH_SESSION_EPOCH
    # a refused request does not advance the epoch
    assert cache.get(session.session_id, 1, now_ms=2).epoch == 2


def test_unknown_id_is_fetch_session_id_not_found() -> None:
    cache = FetchSessionCache(max_sessions=10)
    with pytest.raises(FetchSessionError) as info:
        cache.get(12345, 1, now_ms=0)
    assert info.value.code is ErrorCode.FETCH_SESSION_ID_NOT_FOUND


def test_removed_session_is_not_found() -> None:
    cache = FetchSessionCache(max_sessions=10)
    session = cache.create(now_ms=0)
    assert session is not None
    cache.remove(session.session_id)
    cache.remove(session.session_id)  # twice is harmless
    with pytest.raises(FetchSessionError) as info:
        cache.get(session.session_id, 1, now_ms=0)
    assert info.value.code is ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    assert len(cache) == 0


def test_full_cache_gives_none() -> None:
    cache = FetchSessionCache(max_sessions=2)
    assert cache.create(now_ms=0) is not None
    assert cache.create(now_ms=0) is not None
    assert cache.create(now_ms=0) is None
    assert len(cache) == 2


def test_zero_slots_means_no_sessions() -> None:
    assert FetchSessionCache(max_sessions=0).create(now_ms=0) is None


def test_idle_sessions_are_evicted_to_make_room() -> None:
    cache = FetchSessionCache(max_sessions=2, eviction_ms=1000)
    old = cache.create(now_ms=0)
    used = cache.create(now_ms=0)
    assert old is not None and used is not None
    cache.get(used.session_id, 1, now_ms=900)  # keeps `used` fresh
    assert cache.create(now_ms=1000) is None  # exactly eviction_ms idle: not yet stale
    new = cache.create(now_ms=1001)
    assert new is not None
    with pytest.raises(FetchSessionError) as info:
        cache.get(old.session_id, 1, now_ms=1001)
    assert info.value.code is ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    assert cache.get(used.session_id, 2, now_ms=1001) is used
    assert new.session_id not in (old.session_id, used.session_id)


def test_epoch_wraps_to_one_not_zero() -> None:
    assert _next_epoch(2**31 - 2) == 2**31 - 1
    assert _next_epoch(2**31 - 1) == 1
