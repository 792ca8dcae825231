"""The metadata image: an immutable view of the cluster built by replaying metadata records.

Brokers read the current `MetadataImage`; only `apply` (replay) makes a new one. Topics are
found by name and by id; configs hold only what was set explicitly (defaults live in the
broker config). Dynamic broker configs are kept per resource name, as Kafka's ConfigRecord
names them: "" for the cluster-wide default, the broker id for one broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from odradek.metadata.records import (
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
    ConfigRecord,
    MetadataRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RemoveTopicRecord,
    TopicRecord,
)


@dataclass(frozen=True, slots=True)
class PartitionImage:
    partition_id: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int


@dataclass(frozen=True, slots=True)
class TopicImage:
    name: str
    topic_id: bytes
    partitions: Mapping[int, PartitionImage]
    configs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class MetadataImage:
    epoch: int = 0  # bumps on every applied batch of records; keys response caches
    topics: Mapping[str, TopicImage] = field(default_factory=lambda: MappingProxyType({}))
    topic_ids: Mapping[bytes, str] = field(default_factory=lambda: MappingProxyType({}))
    broker_configs: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    next_producer_id: int = 0  # the first producer id no broker has been given yet

    def topic(self, name: str) -> TopicImage | None:
        return self.topics.get(name)

    def broker_config(self, resource_name: str) -> Mapping[str, str]:
        """The dynamic configs set on one broker resource ("" = cluster-wide default)."""
        return self.broker_configs.get(resource_name, MappingProxyType({}))

    def topic_by_id(self, topic_id: bytes) -> TopicImage | None:
        name = self.topic_ids.get(topic_id)
        return None if name is None else self.topics.get(name)

    def apply(self, records: Iterable[MetadataRecord]) -> MetadataImage:
        topics = dict(self.topics)
        topic_ids = dict(self.topic_ids)
        broker_configs = dict(self.broker_configs)
        next_producer_id = self.next_producer_id
        for record in records:
            if isinstance(record, TopicRecord):
                topics[record.name] = TopicImage(record.name, record.topic_id, MappingProxyType({}))
                topic_ids[record.topic_id] = record.name
            elif isinstance(record, PartitionRecord):
                name = topic_ids.get(record.topic_id)
                if name is None:
                    continue
                topic = topics[name]
                partitions = dict(topic.partitions)
                partitions[record.partition_id] = PartitionImage(
                    record.partition_id,
                    record.replicas,
                    record.isr,
                    record.leader,
                    record.leader_epoch,
                    record.partition_epoch,
                )
                topics[name] = replace(topic, partitions=MappingProxyType(partitions))
            elif isinstance(record, ConfigRecord):
                if record.resource_type == RESOURCE_TOPIC:
                    existing = topics.get(record.resource_name)
                    if existing is None:
                        continue
                    configs = dict(existing.configs)
                    if record.value is None:
                        configs.pop(record.name, None)
                    else:
                        configs[record.name] = record.value
                    topics[existing.name] = replace(existing, configs=MappingProxyType(configs))
                elif record.resource_type == RESOURCE_BROKER:
                    current = dict(broker_configs.get(record.resource_name, {}))
                    if record.value is None:
                        current.pop(record.name, None)
                    else:
                        current[record.name] = record.value
                    broker_configs[record.resource_name] = MappingProxyType(current)
            elif isinstance(record, RemoveTopicRecord):
                name = topic_ids.pop(record.topic_id, None)
                if name is not None:
                    topics.pop(name, None)
            elif isinstance(record, ProducerIdsRecord):
                next_producer_id = max(next_producer_id, record.next_producer_id)
        return MetadataImage(
            self.epoch + 1,
            MappingProxyType(topics),
            MappingProxyType(topic_ids),
            MappingProxyType(broker_configs),
            next_producer_id,
        )
