"""TopicController: every refusal carries Kafka's error code; success yields the records."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pytest

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.controller import (
    NewTopic,
    TopicController,
    new_topic_id,
    validate_topic_name,
)
from odradek.metadata.image import MetadataImage
from odradek.metadata.records import (
    RESOURCE_TOPIC,
    ConfigRecord,
    PartitionRecord,
    TopicRecord,
)


def new_topic(
    name: str = "orders",
    partitions: int = -1,
    replication: int = -1,
    assignments: Mapping[int, Sequence[int]] | None = None,
    configs: Mapping[str, str | None] | None = None,
) -> NewTopic:
    return NewTopic(name, partitions, replication, assignments or {}, configs or {})


def controller(brokers: Sequence[int] = (1, 2, 3), partitions: int = 2, rf: int = 1):
    return TopicController(brokers, partitions, rf)


def image_with(*names: str, partitions: int = 2, brokers: Sequence[int] = (1,)) -> MetadataImage:
    image = MetadataImage()
    ctl = TopicController(brokers, partitions, 1)
    for name in names:
        _, records = ctl.create_topic(image, new_topic(name), set())
        image = image.apply(records)
    return image


def code_of(call) -> ErrorCode:  # type: ignore[no-untyped-def]
    with pytest.raises(KafkaError) as info:
        call()
    return info.value.code


def test_create_with_defaults() -> None:
    created, records = controller(partitions=3).create_topic(
        MetadataImage(), new_topic("orders"), set()
    )
    assert created.num_partitions == 3 and created.replication_factor == 1
    assert records[0] == TopicRecord("orders", created.topic_id)
    partitions = [r for r in records if isinstance(r, PartitionRecord)]
    assert [p.partition_id for p in partitions] == [0, 1, 2]
    assert all(p.topic_id == created.topic_id for p in partitions)
    assert all(p.isr == p.replicas and p.leader == p.replicas[0] for p in partitions)
    # partitions are spread over the brokers
    assert {p.leader for p in partitions} == {1, 2, 3}


def test_create_with_counts_and_configs() -> None:
    created, records = controller().create_topic(
        MetadataImage(),
        new_topic("t", 4, 3, configs={"retention.ms": "1000", "cleanup.policy": "compact"}),
        set(),
    )
    assert created.num_partitions == 4 and created.replication_factor == 3
    assert created.configs == {"retention.ms": 1000, "cleanup.policy": ["compact"]}
    assert ConfigRecord(RESOURCE_TOPIC, "t", "retention.ms", "1000") in records
    for record in records:
        if isinstance(record, PartitionRecord):
            assert sorted(record.replicas) == [1, 2, 3]


def test_create_with_assignments() -> None:
    created, records = controller().create_topic(
        MetadataImage(), new_topic("t", assignments={0: [2, 1], 1: [3, 2]}), set()
    )
    assert created.num_partitions == 2 and created.replication_factor == 2
    partitions = [r for r in records if isinstance(r, PartitionRecord)]
    assert [(p.replicas, p.leader) for p in partitions] == [((2, 1), 2), ((3, 2), 3)]


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a" * 250, "bad name", "bad/name", "tópico", "a:b", "a*"],
)
def test_bad_names_are_invalid_topic_exception(name: str) -> None:
    assert code_of(lambda: validate_topic_name(name)) is ErrorCode.INVALID_TOPIC_EXCEPTION
    assert (
        code_of(lambda: controller().create_topic(MetadataImage(), new_topic(name), set()))
        is ErrorCode.INVALID_TOPIC_EXCEPTION
    )


@pytest.mark.parametrize("name", ["a", "a" * 249, "A-b_c.9", "...", "__consumer_offsets"])
def test_good_names(name: str) -> None:
    validate_topic_name(name)


@pytest.mark.parametrize(
    ("existing", "name"), [("my.topic", "my_topic"), ("my_topic", "my.topic"), ("a.b_c", "a_b.c")]
)
def test_dot_underscore_collision_is_invalid_topic_exception(existing: str, name: str) -> None:
    image = image_with(existing)
    with pytest.raises(KafkaError, match=f"collides with existing topic: {existing}") as info:
        controller().create_topic(image, new_topic(name), set())
    assert info.value.code is ErrorCode.INVALID_TOPIC_EXCEPTION


def test_collision_with_a_topic_pending_in_the_same_request() -> None:
    code = code_of(lambda: controller().create_topic(MetadataImage(), new_topic("a_b"), {"a.b"}))
    assert code is ErrorCode.INVALID_TOPIC_EXCEPTION


def test_existing_topic_is_topic_already_exists() -> None:
    image = image_with("orders")
    with pytest.raises(KafkaError, match=re.escape("Topic 'orders' already exists.")) as info:
        controller().create_topic(image, new_topic("orders"), set())
    assert info.value.code is ErrorCode.TOPIC_ALREADY_EXISTS
    code = code_of(lambda: controller().create_topic(MetadataImage(), new_topic("x"), {"x"}))
    assert code is ErrorCode.TOPIC_ALREADY_EXISTS


@pytest.mark.parametrize("partitions", [0, -2])
def test_non_positive_partitions_is_invalid_partitions(partitions: int) -> None:
    code = code_of(
        lambda: controller().create_topic(MetadataImage(), new_topic("t", partitions), set())
    )
    assert code is ErrorCode.INVALID_PARTITIONS


def test_zero_default_partitions_is_invalid_partitions() -> None:
    code = code_of(
        lambda: controller(partitions=0).create_topic(MetadataImage(), new_topic("t"), set())
    )
    assert code is ErrorCode.INVALID_PARTITIONS


@pytest.mark.parametrize("replication", [0, -2, 4])
def test_bad_replication_factor(replication: int) -> None:
    code = code_of(
        lambda: controller().create_topic(MetadataImage(), new_topic("t", 1, replication), set())
    )
    assert code is ErrorCode.INVALID_REPLICATION_FACTOR


def test_replication_factor_above_broker_count_message() -> None:
    with pytest.raises(KafkaError, match="only 1 broker\\(s\\) are registered"):
        controller(brokers=(1,)).create_topic(MetadataImage(), new_topic("t", 1, 2), set())


@pytest.mark.parametrize(("partitions", "replication"), [(2, -1), (-1, 1), (1, 1)])
def test_assignments_and_counts_together_is_invalid_request(
    partitions: int, replication: int
) -> None:
    request = new_topic("t", partitions, replication, assignments={0: [1]})
    code = code_of(lambda: controller().create_topic(MetadataImage(), request, set()))
    assert code is ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize(
    "assignments",
    [
        {1: [1]},  # not numbered from 0
        {0: [1], 2: [2]},  # a gap
        {0: []},  # empty
        {0: [1, 1]},  # duplicate broker
        {0: [1, 9]},  # unknown broker
    ],
)
def test_bad_assignment_is_invalid_replica_assignment(assignments: dict[int, list[int]]) -> None:
    request = new_topic("t", assignments=assignments)
    code = code_of(lambda: controller().create_topic(MetadataImage(), request, set()))
    assert code is ErrorCode.INVALID_REPLICA_ASSIGNMENT


@pytest.mark.parametrize(
    "configs",
    [{"retention.weeks": "1"}, {"retention.ms": "soon"}, {"cleanup.policy": "shred"}],
)
def test_bad_config_is_invalid_config(configs: dict[str, str]) -> None:
    request = new_topic("t", configs=configs)
    with pytest.raises(KafkaError) as info:
        controller().create_topic(MetadataImage(), request, set())
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert next(iter(configs)) in str(info.value)


def test_create_partitions_adds_records() -> None:
    image = image_with("t", partitions=2, brokers=(1, 2))
    ctl = controller(brokers=(1, 2))
    records = ctl.create_partitions(image, "t", 5, None)
    assert [r.partition_id for r in records] == [2, 3, 4]
    topic = image.topic("t")
    assert topic is not None
    assert all(isinstance(r, PartitionRecord) and r.topic_id == topic.topic_id for r in records)
    assert len(image.apply(records).topic("t").partitions) == 5  # type: ignore[union-attr]


def test_create_partitions_with_assignments() -> None:
    image = image_with("t", partitions=1, brokers=(1, 2))
    records = controller(brokers=(1, 2)).create_partitions(image, "t", 3, [[2], [1]])
    assert [(r.partition_id, r.replicas) for r in records] == [(1, (2,)), (2, (1,))]


def test_create_partitions_errors() -> None:
    image = image_with("t", partitions=2)
    ctl = controller(brokers=(1, 2))
    assert (
        code_of(lambda: ctl.create_partitions(image, "missing", 3, None))
        is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    )
    assert code_of(lambda: ctl.create_partitions(image, "t", 1, None)) is (
        ErrorCode.INVALID_PARTITIONS
    )
    assert code_of(lambda: ctl.create_partitions(image, "t", 2, None)) is (
        ErrorCode.INVALID_PARTITIONS
    )
    for assignments in ([[1], [2]], [[1], [2], [1]], [[1, 2]], [[9]], [[]]):
        assert (
            code_of(lambda a=assignments: ctl.create_partitions(image, "t", 3, a))
            is ErrorCode.INVALID_REPLICA_ASSIGNMENT
        ), assignments


def test_topic_ids_are_never_zero_nor_dash_prefixed() -> None:
    for _ in range(2000):
        topic_id = new_topic_id()
        assert len(topic_id) == 16
        assert topic_id != bytes(16)
        assert topic_id[0] & 0xFC != 0xF8
