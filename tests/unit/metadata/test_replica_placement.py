"""Striped, rack-aware replica placement (Kafka's StripedReplicaPlacer) and its use by
CreateTopics/CreatePartitions once brokers have registered."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from cluster_helpers import cluster
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.controller import NewTopic, TopicController
from odradek.metadata.placement import StripedReplicaPlacer, UsableBroker
from odradek.metadata.records import BrokerRegistrationChangeRecord, PartitionRecord


def brokers(spec: dict[int, str | None], fenced: set[int] | None = None) -> list[UsableBroker]:
    return [UsableBroker(b, rack, b in (fenced or set())) for b, rack in spec.items()]


def test_no_racks_spreads_leaders_over_every_broker() -> None:
    placer = StripedReplicaPlacer(brokers({1: None, 2: None, 3: None}), random.Random(1))
    placement = placer.place(3, 3)
    assert all(sorted(p) == [1, 2, 3] for p in placement)
    assert sorted(p[0] for p in placement) == [1, 2, 3]


def test_rack_aware_each_partition_spans_racks() -> None:
    spec: dict[int, str | None] = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    placement = StripedReplicaPlacer(brokers(spec), random.Random(7)).place(12, 3)
    for replicas in placement:
        assert {spec[r] for r in replicas} == {"a", "b", "c"}
    leaders = Counter(p[0] for p in placement)
    assert set(leaders) == set(spec) and max(leaders.values()) - min(leaders.values()) <= 1


def test_fenced_broker_never_leads_a_new_partition() -> None:
    placer = StripedReplicaPlacer(brokers({1: None, 2: None, 3: None}, {2}), random.Random(3))
    placement = placer.place(20, 3)
    assert all(p[0] != 2 for p in placement)


def test_unfenced_brokers_are_used_before_fenced_ones() -> None:
    placer = StripedReplicaPlacer(brokers({1: None, 2: None, 3: None}, {3}), random.Random(3))
    assert all(3 not in p for p in placer.place(10, 2))


@pytest.mark.parametrize(
    ("rule", "spec", "fenced", "rf", "message"),
    [
        ("rf must be positive", {1: None}, set(), 0, "the replication factor must be positive"),
        ("rf at most brokers", {1: None, 2: None}, set(), 3, "only 2 broker(s) are registered"),
        ("someone unfenced", {1: None, 2: None}, {1, 2}, 1, "All brokers are currently fenced."),
    ],
)
def test_placement_errors_are_invalid_replication_factor(
    rule: str, spec: dict[int, str | None], fenced: set[int], rf: int, message: str
) -> None:
    with pytest.raises(KafkaError) as err:
        StripedReplicaPlacer(brokers(spec, fenced), random.Random(0)).place(1, rf)
    assert err.value.code == ErrorCode.INVALID_REPLICATION_FACTOR, rule
    assert message in str(err.value)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.integers(0, 30), st.sampled_from([None, "a", "b", "c"]), min_size=1, max_size=8
    ),
    st.data(),
)
def test_placement_invariants(spec: dict[int, str | None], data: st.DataObject) -> None:
    fenced = data.draw(st.sets(st.sampled_from(sorted(spec))))
    if len(fenced) == len(spec):
        fenced.discard(min(spec))
    rf = data.draw(st.integers(1, len(spec)))
    count = data.draw(st.integers(1, 20))
    placer = StripedReplicaPlacer(brokers(spec, fenced), random.Random(data.draw(st.integers())))
    racks = {spec[b] for b in spec}
    for replicas in placer.place(count, rf):
        assert len(replicas) == rf == len(set(replicas))
        assert set(replicas) <= set(spec)
        assert replicas[0] not in fenced
        assert len({spec[r] for r in replicas}) == min(rf, len(racks))


def new_topic(name: str, partitions: int, rf: int) -> NewTopic:
    return NewTopic(name, partitions, rf, {}, {})


def test_create_topic_places_on_registered_brokers_not_constructor_ids() -> None:
    image = cluster((4, 5, 6))
    controller = TopicController([1], 1, 1, random.Random(0))
    _, records = controller.create_topic(image, new_topic("t", 6, 2), set())
    partitions = [r for r in records if isinstance(r, PartitionRecord)]
    assert len(partitions) == 6
    for record in partitions:
        assert set(record.replicas) <= {4, 5, 6} and record.isr == record.replicas
        assert record.leader == record.replicas[0]


def test_create_topic_isr_holds_only_active_replicas() -> None:
    image = cluster((1, 2), fenced=(2,))
    controller = TopicController([1], 1, 1, random.Random(0))
    _, records = controller.create_topic(image, new_topic("t", 4, 2), set())
    for record in records:
        if isinstance(record, PartitionRecord):
            assert record.leader == 1 and record.isr == (1,)


def test_create_topic_with_too_few_registered_brokers() -> None:
    controller = TopicController([1, 2, 3], 1, 1, random.Random(0))
    with pytest.raises(KafkaError) as err:
        controller.create_topic(cluster((1, 2)), new_topic("t", 1, 3), set())
    assert err.value.code == ErrorCode.INVALID_REPLICATION_FACTOR
    assert str(err.value) == (
        "Unable to replicate the partition 3 time(s): The target replication factor of 3"
        " cannot be reached because only 2 broker(s) are registered."
    )


def test_manual_assignment_on_fenced_brokers_only_is_invalid_replica_assignment() -> None:
    image = cluster((1, 2)).apply([BrokerRegistrationChangeRecord(2, 102, fenced=1)])
    controller = TopicController([1, 2], 1, 1)
    request = NewTopic("t", -1, -1, {0: [2]}, {})
    with pytest.raises(KafkaError) as err:
        controller.create_topic(image, request, set())
    assert err.value.code == ErrorCode.INVALID_REPLICA_ASSIGNMENT


def test_manual_assignment_to_unregistered_broker_is_refused() -> None:
    controller = TopicController([1, 2, 3], 1, 1)
    with pytest.raises(KafkaError) as err:
        controller.create_topic(cluster((1, 2)), NewTopic("t", -1, -1, {0: [3]}, {}), set())
    assert err.value.code == ErrorCode.INVALID_REPLICA_ASSIGNMENT


def test_create_partitions_uses_registered_brokers() -> None:
    image = cluster((1, 2, 3))
    controller = TopicController([1], 1, 1, random.Random(5))
    _, records = controller.create_topic(image, new_topic("t", 1, 3), set())
    image = image.apply(records)
    added = controller.create_partitions(image, "t", 4, None)
    assert [r.partition_id for r in added] == [1, 2, 3]
    assert all(sorted(r.replicas) == [1, 2, 3] for r in added)


@pytest.mark.parametrize(
    ("rule", "assignments", "message"),
    [
        (
            "numbered from 0",
            {1: [1]},
            "partitions should be a consecutive 0-based integer sequence",
        ),
        ("non-empty", {0: []}, "includes an empty replica list"),
        ("registered", {0: [1, 7]}, "includes broker 7, but no such broker is registered"),
        ("no broker twice", {0: [2, 2]}, "includes the broker 2 more than once"),
        (
            "same replica count as the first partition",
            {0: [1, 2], 1: [1]},
            "includes a partition with 1 replica(s), but this is not consistent with previous"
            " partitions, which have 2 replica(s)",
        ),
    ],
)
def test_manual_assignment_rules_are_invalid_replica_assignment(
    rule: str, assignments: dict[int, list[int]], message: str
) -> None:
    controller = TopicController([1, 2], 1, 1)
    with pytest.raises(KafkaError) as err:
        controller.create_topic(cluster((1, 2)), NewTopic("t", -1, -1, assignments, {}), set())
    assert err.value.code == ErrorCode.INVALID_REPLICA_ASSIGNMENT, rule
    assert message in str(err.value), rule


def test_create_partitions_manual_assignment_keeps_replication_factor() -> None:
    image = cluster((1, 2, 3))
    controller = TopicController([1], 1, 1, random.Random(5))
    _, records = controller.create_topic(image, new_topic("t", 1, 2), set())
    image = image.apply(records)
    with pytest.raises(KafkaError) as err:
        controller.create_partitions(image, "t", 2, [[1, 2, 3]])
    assert err.value.code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    [added] = controller.create_partitions(image, "t", 2, [[3, 1]])
    assert added.replicas == (3, 1) and added.leader == 3
