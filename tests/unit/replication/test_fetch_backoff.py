"""FetchBackoff: a failed partition sits out its backoff; the others of the loop do not."""

from __future__ import annotations

from odradek.replication.fetch_backoff import FetchBackoff


def test_only_the_failed_partition_waits() -> None:
    backoff: FetchBackoff[str] = FetchBackoff(1000)
    backoff.delay("a", leader_epoch=3, now_ms=0)
    assert backoff.ready({"a": 3, "b": 3}, now_ms=10) == ["b"]
    assert backoff.next_ready_ms() == 1000


def test_the_partition_is_fetched_again_once_its_backoff_is_over() -> None:
    backoff: FetchBackoff[str] = FetchBackoff(1000)
    backoff.delay("a", leader_epoch=3, now_ms=0)
    assert backoff.ready({"a": 3}, now_ms=999) == []
    assert backoff.ready({"a": 3}, now_ms=1000) == ["a"]
    assert backoff.next_ready_ms() is None


def test_a_new_leader_epoch_ends_the_wait() -> None:
    backoff: FetchBackoff[str] = FetchBackoff(1000)
    backoff.delay("a", leader_epoch=3, now_ms=0)
    assert backoff.ready({"a": 4}, now_ms=1) == ["a"]
    assert backoff.ready({"a": 3}, now_ms=2) == ["a"]  # the delay is gone, not just skipped


def test_a_partition_that_left_the_loop_is_forgotten() -> None:
    backoff: FetchBackoff[str] = FetchBackoff(1000)
    backoff.delay("a", leader_epoch=3, now_ms=0)
    assert backoff.ready({"b": 1}, now_ms=1) == ["b"]
    assert backoff.next_ready_ms() is None
    assert backoff.ready({"a": 3}, now_ms=2) == ["a"]
