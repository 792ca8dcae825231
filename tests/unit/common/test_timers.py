"""The keyed deadline queue that cores without I/O schedule their timeouts in."""

from __future__ import annotations

from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.common.timers import Timers

K = TypeVar("K")


def expired(timers: Timers[K], now_ms: int) -> list[K]:
    fired: list[K] = []
    while (key := timers.pop_expired(now_ms)) is not None:
        fired.append(key)
    return fired


def test_keys_fire_earliest_first_at_or_after_their_deadline() -> None:
    timers: Timers[str] = Timers()
    timers.schedule("b", 20)
    timers.schedule("a", 10)
    timers.schedule("c", 30)
    assert timers.next_deadline() == 10
    assert expired(timers, 9) == []
    assert expired(timers, 20) == ["a", "b"]
    assert "a" not in timers and "c" in timers and len(timers) == 1
    assert timers.next_deadline() == 30


def test_scheduling_a_key_again_moves_its_deadline() -> None:
    timers: Timers[str] = Timers()
    timers.schedule("k", 10)
    timers.schedule("k", 50)
    assert timers.deadline("k") == 50
    assert timers.next_deadline() == 50
    assert expired(timers, 49) == []
    timers.schedule("k", 5)  # earlier works too
    assert expired(timers, 5) == ["k"]
    assert timers.next_deadline() is None


def test_cancel_removes_a_key_and_unknown_keys_are_ignored() -> None:
    timers: Timers[str] = Timers()
    timers.schedule("k", 10)
    timers.cancel("k")
    timers.cancel("never")
    assert timers.next_deadline() is None
    assert expired(timers, 100) == []
    assert timers.deadline("k") is None


def test_equal_deadlines_fire_in_scheduling_order() -> None:
    timers: Timers[int] = Timers()
    for key in (3, 1, 2):
        timers.schedule(key, 7)
    timers.schedule(3, 7)  # rescheduled to the same deadline: it now comes last
    assert expired(timers, 7) == [1, 2, 3]


def test_rescheduling_many_times_keeps_the_heap_small() -> None:
    timers: Timers[int] = Timers()
    for round_ in range(1_000):
        timers.schedule(round_ % 3, round_)
    assert len(timers) == 3
    assert len(timers._heap) <= 65  # stale entries are compacted away
    assert expired(timers, 10_000) == [1, 2, 0]  # last scheduled at 997, 998, 999


operation = st.one_of(
    st.tuples(st.just("schedule"), st.integers(0, 5), st.integers(0, 100)),
    st.tuples(st.just("cancel"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("expire"), st.just(0), st.integers(0, 100)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=60))
def test_behaves_like_a_dict_of_deadlines(operations: list[tuple[str, int, int]]) -> None:
    timers: Timers[int] = Timers()
    model: dict[int, tuple[int, int]] = {}  # key -> (deadline, scheduling sequence)
    for sequence, (op, key, value) in enumerate(operations):
        if op == "schedule":
            timers.schedule(key, value)
            model[key] = (value, sequence)
        elif op == "cancel":
            timers.cancel(key)
            model.pop(key, None)
        else:
            due = sorted((d, s, k) for k, (d, s) in model.items() if d <= value)
            assert expired(timers, value) == [k for _, _, k in due]
            for _, _, k in due:
                del model[k]
        assert len(timers) == len(model)
        assert timers.next_deadline() == min((d for d, _ in model.values()), default=None)
        for k, (d, _) in model.items():
            assert timers.deadline(k) == d


def test_a_due_key_rescheduled_by_the_handler_of_another_does_not_fire() -> None:
    timers: Timers[str] = Timers()
    timers.schedule("join", 100)
    timers.schedule("session", 100)
    assert timers.pop_expired(100) == "join"
    timers.schedule("session", 200)  # what handling "join" does
    assert timers.pop_expired(100) is None
    assert timers.pop_expired(200) == "session"
