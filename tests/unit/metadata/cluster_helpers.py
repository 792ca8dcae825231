"""Build metadata images of small clusters for the controller core's tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from odradek.metadata.image import MetadataImage, PartitionImage
from odradek.metadata.records import (
    RESOURCE_TOPIC,
    UNFENCE,
    BrokerRegistrationChangeRecord,
    ConfigRecord,
    MetadataRecord,
    PartitionRecord,
    RegisterBrokerRecord,
    TopicRecord,
)

TOPIC_ID = bytes(range(16))


def incarnation(broker_id: int, generation: int = 0) -> bytes:
    return bytes([broker_id % 256, generation % 256]) * 8


def epoch_of(broker_id: int) -> int:
    return 100 + broker_id


def cluster(
    brokers: Iterable[int] = (1, 2, 3),
    fenced: Iterable[int] = (),
    racks: dict[int, str] | None = None,
) -> MetadataImage:
    """Registered brokers with epoch 100 + id, unfenced unless listed in `fenced`."""
    records: list[MetadataRecord] = []
    fenced = set(fenced)
    for broker_id in brokers:
        rack = (racks or {}).get(broker_id)
        records.append(
            RegisterBrokerRecord(broker_id, incarnation(broker_id), epoch_of(broker_id), rack=rack)
        )
        if broker_id not in fenced:
            records.append(
                BrokerRegistrationChangeRecord(broker_id, epoch_of(broker_id), fenced=UNFENCE)
            )
    return MetadataImage().apply(records)


def with_topic(
    image: MetadataImage,
    partitions: Sequence[tuple[Sequence[int], Sequence[int], int]],
    name: str = "t",
    configs: dict[str, str] | None = None,
    topic_id: bytes = TOPIC_ID,
) -> MetadataImage:
    """Add a topic whose partition i has (replicas, isr, leader) = partitions[i]."""
    records: list[MetadataRecord] = [TopicRecord(name, topic_id)]
    for index, (replicas, isr, leader) in enumerate(partitions):
        records.append(PartitionRecord(index, topic_id, tuple(replicas), tuple(isr), leader))
    for key, value in (configs or {}).items():
        records.append(ConfigRecord(RESOURCE_TOPIC, name, key, value))
    return image.apply(records)


def part(image: MetadataImage, partition_id: int = 0, name: str = "t") -> PartitionImage:
    return image.topics[name].partitions[partition_id]
