"""MetadataImage.apply: replaying records builds the cluster view; old images are unchanged."""

from __future__ import annotations

from odradek.metadata.image import MetadataImage
from odradek.metadata.records import (
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
    ConfigRecord,
    PartitionRecord,
    RemoveTopicRecord,
    TopicRecord,
)

ID_A = bytes(range(16))
ID_B = bytes(range(1, 17))


def base() -> MetadataImage:
    return MetadataImage().apply(
        [
            TopicRecord("a", ID_A),
            PartitionRecord(0, ID_A, (1,), (1,), 1),
            PartitionRecord(1, ID_A, (1,), (1,), 1),
        ]
    )


def test_empty() -> None:
    image = MetadataImage()
    assert image.epoch == 0
    assert image.topic("a") is None
    assert image.topic_by_id(ID_A) is None


def test_create_topic_with_partitions() -> None:
    image = base()
    topic = image.topic("a")
    assert topic is not None
    assert topic.topic_id == ID_A
    assert sorted(topic.partitions) == [0, 1]
    assert topic.partitions[1].leader == 1
    assert image.topic_by_id(ID_A) is topic
    assert image.epoch == 1


def test_add_and_update_partitions() -> None:
    image = base().apply(
        [
            PartitionRecord(2, ID_A, (1, 2), (1,), 2, leader_epoch=3, partition_epoch=4),
            PartitionRecord(0, ID_A, (2,), (2,), 2, leader_epoch=1, partition_epoch=1),
        ]
    )
    partitions = image.topic("a").partitions  # type: ignore[union-attr]
    assert sorted(partitions) == [0, 1, 2]
    assert (partitions[2].replicas, partitions[2].isr, partitions[2].leader) == ((1, 2), (1,), 2)
    assert (partitions[2].leader_epoch, partitions[2].partition_epoch) == (3, 4)
    assert partitions[0].leader == 2 and partitions[0].leader_epoch == 1
    assert image.epoch == 2


def test_partition_of_unknown_topic_is_ignored() -> None:
    image = base().apply([PartitionRecord(0, ID_B, (1,), (1,), 1)])
    assert image.topic_by_id(ID_B) is None
    assert list(image.topics) == ["a"]


def test_topic_configs_set_change_and_delete() -> None:
    image = base().apply(
        [
            ConfigRecord(RESOURCE_TOPIC, "a", "retention.ms", "10"),
            ConfigRecord(RESOURCE_TOPIC, "a", "cleanup.policy", "compact"),
            ConfigRecord(RESOURCE_TOPIC, "a", "retention.ms", "20"),
        ]
    )
    assert dict(image.topic("a").configs) == {  # type: ignore[union-attr]
        "retention.ms": "20",
        "cleanup.policy": "compact",
    }
    image = image.apply([ConfigRecord(RESOURCE_TOPIC, "a", "retention.ms", None)])
    assert dict(image.topic("a").configs) == {"cleanup.policy": "compact"}  # type: ignore[union-attr]
    # configs survive a partition change
    image = image.apply([PartitionRecord(2, ID_A, (1,), (1,), 1)])
    assert dict(image.topic("a").configs) == {"cleanup.policy": "compact"}  # type: ignore[union-attr]


def test_config_of_unknown_topic_is_ignored() -> None:
    image = base().apply([ConfigRecord(RESOURCE_TOPIC, "nope", "retention.ms", "1")])
    assert image.topic("nope") is None


def test_broker_configs() -> None:
    image = MetadataImage().apply(
        [
            ConfigRecord(RESOURCE_BROKER, "", "message.max.bytes", "100"),
            ConfigRecord(RESOURCE_BROKER, "", "log.retention.ms", "5"),
        ]
    )
    assert dict(image.broker_config("")) == {"message.max.bytes": "100", "log.retention.ms": "5"}
    image = image.apply([ConfigRecord(RESOURCE_BROKER, "", "message.max.bytes", None)])
    assert dict(image.broker_config("")) == {"log.retention.ms": "5"}


def test_broker_configs_are_kept_per_resource() -> None:
    image = MetadataImage().apply(
        [
            ConfigRecord(RESOURCE_BROKER, "", "message.max.bytes", "100"),
            ConfigRecord(RESOURCE_BROKER, "1", "message.max.bytes", "200"),
        ]
    )
    assert dict(image.broker_config("")) == {"message.max.bytes": "100"}
    assert dict(image.broker_config("1")) == {"message.max.bytes": "200"}
    assert dict(image.broker_config("2")) == {}


def test_remove_topic() -> None:
    before = base().apply([TopicRecord("b", ID_B)])
    after = before.apply([RemoveTopicRecord(ID_A)])
    assert after.topic("a") is None
    assert after.topic_by_id(ID_A) is None
    assert after.topic("b") is not None
    # the earlier image is untouched
    assert before.topic("a") is not None
    # removing an unknown id is harmless
    assert after.apply([RemoveTopicRecord(ID_A)]).topic("b") is not None


def test_recreate_after_remove_with_a_new_id() -> None:
    image = base().apply([RemoveTopicRecord(ID_A), TopicRecord("a", ID_B)])
    topic = image.topic("a")
    assert topic is not None and topic.topic_id == ID_B
    assert topic.partitions == {}
    assert image.topic_by_id(ID_A) is None


def test_images_are_immutable() -> None:
    image = base()
    before = dict(image.topics)
    image.apply([TopicRecord("c", ID_B)])
    assert dict(image.topics) == before
    try:
        image.topics["x"] = image.topics["a"]  # type: ignore[index]
    except TypeError:
        pass
    else:
        raise AssertionError("topics mapping is writable")
