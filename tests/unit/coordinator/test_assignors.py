"""The server-side assignors of KIP-848: Kafka's examples for range, and for uniform the
properties it promises (every subscribed partition once, balance, stickiness, determinism)
checked on random groups."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.coordinator.group.assignors import (
    ASSIGNORS,
    GroupAssignment,
    MemberSubscription,
    PartitionAssignorError,
    assign_range,
    assign_uniform,
)

T1, T2, T3, T4 = (bytes([n]) * 16 for n in (1, 2, 3, 4))


def sub(*topics: bytes, instance_id: str | None = None) -> MemberSubscription:
    return MemberSubscription(frozenset(topics), {}, instance_id)


def owned(assignment: GroupAssignment) -> list[tuple[bytes, int]]:
    return [(t, p) for parts in assignment.values() for t, ps in parts.items() for p in ps]


def sizes(assignment: GroupAssignment) -> dict[str, int]:
    return {m: sum(len(ps) for ps in parts.values()) for m, parts in assignment.items()}


def check_complete(
    members: Mapping[str, MemberSubscription],
    partitions: Mapping[bytes, int],
    result: GroupAssignment,
) -> None:
    """Every member gets an entry; every partition of a subscribed topic goes to exactly one
    member, and only to a subscriber of its topic."""
    assert set(result) == set(members)
    subscribed = {t for m in members.values() for t in m.subscribed_topic_ids}
    expected = sorted((t, p) for t in subscribed for p in range(partitions[t]))
    assert sorted(owned(result)) == expected
    for member_id, parts in result.items():
        assert set(parts) <= members[member_id].subscribed_topic_ids
        assert all(parts.values()), "no empty partition sets"


# --- range --------------------------------------------------------------------------------------


def test_range_co_partitions_homogeneous_members() -> None:
    members = {"m0": sub(T1, T2), "m1": sub(T1, T2)}
    result = assign_range(members, {T1: 3, T2: 3})
    assert result == {
        "m0": {T1: frozenset({0, 1}), T2: frozenset({0, 1})},
        "m1": {T1: frozenset({2}), T2: frozenset({2})},
    }


def test_range_orders_static_members_by_instance_id_before_dynamic_ones() -> None:
    members = {
        "a": sub(T1),
        "z": sub(T1, instance_id="i0"),
        "b": sub(T1, instance_id="i1"),
    }
    result = assign_range(members, {T1: 7})
    assert result == {
        "z": {T1: frozenset({0, 1, 2})},
        "b": {T1: frozenset({3, 4})},
        "a": {T1: frozenset({5, 6})},
    }


def test_range_splits_each_topic_among_its_own_subscribers() -> None:
    members = {"m0": sub(T1), "m1": sub(T1, T2), "m2": sub(T2)}
    result = assign_range(members, {T1: 3, T2: 4})
    assert result == {
        "m0": {T1: frozenset({0, 1})},
        "m1": {T1: frozenset({2}), T2: frozenset({0, 1})},
        "m2": {T2: frozenset({2, 3})},
    }


def test_range_gives_nothing_to_members_beyond_the_partition_count() -> None:
    members = {f"m{i}": sub(T1) for i in range(3)}
    assert assign_range(members, {T1: 2}) == {
        "m0": {T1: frozenset({0})},
        "m1": {T1: frozenset({1})},
        "m2": {},
    }


# --- uniform, examples --------------------------------------------------------------------------


def test_uniform_gives_one_member_everything() -> None:
    result = assign_uniform({"m": sub(T1, T2)}, {T1: 2, T2: 3})
    assert result == {"m": {T1: frozenset({0, 1}), T2: frozenset({0, 1, 2})}}


def test_uniform_keeps_partitions_when_a_member_joins() -> None:
    before = {
        "a": MemberSubscription(frozenset({T1}), {T1: frozenset({0, 1, 2})}),
        "b": MemberSubscription(frozenset({T1}), {T1: frozenset({3, 4, 5})}),
        "c": MemberSubscription(frozenset({T1}), {}),
    }
    result = assign_uniform(before, {T1: 6})
    assert sizes(result) == {"a": 2, "b": 2, "c": 2}
    assert result["a"][T1] < frozenset({0, 1, 2})
    assert result["b"][T1] < frozenset({3, 4, 5})


def test_uniform_drops_partitions_of_unsubscribed_or_shrunk_topics() -> None:
    members = {
        "a": MemberSubscription(frozenset({T1}), {T1: frozenset({0, 7}), T2: frozenset({0})}),
        "b": MemberSubscription(frozenset({T1}), {}),
    }
    result = assign_uniform(members, {T1: 2})
    check_complete(members, {T1: 2}, result)
    assert result["a"] == {T1: frozenset({0})}


def test_uniform_heterogeneous_balances_shared_topics() -> None:
    members = {"a": sub(T1), "b": sub(T1, T2), "c": sub(T2)}
    result = assign_uniform(members, {T1: 6, T2: 6})
    check_complete(members, {T1: 6, T2: 6}, result)
    assert sorted(sizes(result).values()) == [4, 4, 4]


def test_members_without_subscriptions_get_empty_assignments() -> None:
    members = {"a": sub(), "b": sub()}
    for assignor in ASSIGNORS.values():
        assert assignor(members, {}) == {"a": {}, "b": {}}
        assert assignor({}, {}) == {}


def test_a_topic_without_a_partition_count_is_an_error() -> None:
    for assignor in ASSIGNORS.values():
        with pytest.raises(PartitionAssignorError):
            assignor({"a": sub(T1)}, {})


# --- uniform, properties ------------------------------------------------------------------------

TOPICS = [T1, T2, T3, T4]


@st.composite
def groups(draw: st.DrawFn, homogeneous: bool) -> tuple[dict[str, MemberSubscription], dict]:
    partitions = {t: draw(st.integers(0, 12)) for t in TOPICS}
    member_ids = draw(
        st.lists(st.text("abcdef", min_size=1, max_size=3), min_size=1, max_size=7, unique=True)
    )
    common = frozenset(draw(st.sets(st.sampled_from(TOPICS))))
    members: dict[str, MemberSubscription] = {}
    for member_id in member_ids:
        topics = common if homogeneous else frozenset(draw(st.sets(st.sampled_from(TOPICS))))
        # A current assignment that may be stale: other topics, gone partitions, duplicates.
        current = draw(
            st.dictionaries(
                st.sampled_from(TOPICS),
                st.frozensets(st.integers(0, 14), min_size=1, max_size=6),
                max_size=3,
            )
        )
        members[member_id] = MemberSubscription(topics, current)
    return members, partitions


def kept_partitions(members: Mapping[str, MemberSubscription], result: GroupAssignment) -> int:
    return sum(
        len(result[m].get(t, frozenset()) & ps)
        for m, spec in members.items()
        for t, ps in spec.assignment.items()
    )


@settings(max_examples=300, deadline=None)
@given(groups(homogeneous=True))
def test_uniform_homogeneous_is_complete_balanced_and_sticky(group: tuple) -> None:
    members, partitions = group
    result = assign_uniform(members, partitions)
    check_complete(members, partitions, result)
    counts = sizes(result).values()
    assert max(counts) - min(counts) <= 1
    # Sticky: each member keeps its valid current partitions up to the smaller quota; the
    # dedup of current assignments means "valid" counts each partition for one member only.
    subscribed = next(iter(members.values())).subscribed_topic_ids
    total = sum(partitions[t] for t in subscribed)
    floor_quota = total // len(members)
    seen: set[tuple[bytes, int]] = set()
    lower_bound = 0
    for member_id in sorted(members):
        valid = {
            (t, p)
            for t, ps in members[member_id].assignment.items()
            if t in subscribed
            for p in ps
            if p < partitions[t] and (t, p) not in seen
        }
        seen |= valid
        lower_bound += min(len(valid), floor_quota)
    assert kept_partitions(members, result) >= lower_bound


@settings(max_examples=300, deadline=None)
@given(groups(homogeneous=False))
def test_uniform_heterogeneous_is_complete_and_locally_balanced(group: tuple) -> None:
    members, partitions = group
    result = assign_uniform(members, partitions)
    check_complete(members, partitions, result)
    load = sizes(result)
    for topic in TOPICS:
        subscribers = [m for m, spec in members.items() if topic in spec.subscribed_topic_ids]
        holders = [m for m in subscribers if result[m].get(topic)]
        for holder in holders:
            for other in subscribers:
                assert load[holder] - load[other] <= 1, (topic, holder, other, load)


@settings(max_examples=200, deadline=None)
@given(st.booleans().flatmap(groups))
def test_uniform_is_deterministic_and_stable_on_its_own_output(group: tuple) -> None:
    members, partitions = group
    result = assign_uniform(members, partitions)
    reordered = dict(reversed(list(members.items())))
    assert assign_uniform(reordered, dict(reversed(list(partitions.items())))) == result
    again = {
        m: MemberSubscription(spec.subscribed_topic_ids, result[m], spec.instance_id)
        for m, spec in members.items()
    }
    assert assign_uniform(again, partitions) == result


@settings(max_examples=200, deadline=None)
@given(st.booleans().flatmap(groups))
def test_range_is_complete_and_balanced_per_topic(group: tuple) -> None:
    members, partitions = group
    result = assign_range(members, partitions)
    check_complete(members, partitions, result)
    for topic in TOPICS:
        counts = [
            len(result[m].get(topic, ()))
            for m, s in members.items()
            if topic in s.subscribed_topic_ids
        ]
        if counts:
            assert max(counts) - min(counts) <= 1
