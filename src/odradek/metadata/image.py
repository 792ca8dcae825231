"""The metadata image: an immutable view of the cluster built by replaying metadata records.

Brokers read the current `MetadataImage`; only `apply` (replay) makes a new one. Topics are
found by name and by id; configs hold only what was set explicitly (defaults live in the
broker config). Dynamic broker configs are kept per resource name, as Kafka's ConfigRecord
names them: "" for the cluster-wide default, the broker id for one broker.

Brokers are kept by id as their latest registration (a RegisterBrokerRecord replaces the
previous incarnation); fencing and controlled shutdown change only those two flags. A
PartitionChangeRecord is merged as Kafka's PartitionRegistration.merge does: fields it names
replace the current ones, the leader epoch bumps whenever the record names a leader (even the
same one: that is how the controller forces a bump), and the partition epoch bumps on every
change record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from odradek.metadata.records import (
    FENCE,
    LEADER_RECOVERED,
    NO_LEADER_CHANGE,
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
    UNFENCE,
    BrokerEndpoint,
    BrokerFeature,
    BrokerRegistrationChangeRecord,
    ConfigRecord,
    FenceBrokerRecord,
    MetadataRecord,
    PartitionChangeRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveTopicRecord,
    TopicRecord,
    UnfenceBrokerRecord,
    UnregisterBrokerRecord,
)


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    broker_id: int
    incarnation_id: bytes
    epoch: int  # the offset of its RegisterBrokerRecord
    endpoints: tuple[BrokerEndpoint, ...] = ()
    rack: str | None = None
    fenced: bool = True
    in_controlled_shutdown: bool = False
    features: tuple[BrokerFeature, ...] = ()

    @property
    def active(self) -> bool:
        """Can lead and be in an ISR: unfenced and not shutting down."""
        return not self.fenced and not self.in_controlled_shutdown

    @property
    def inter_broker_address(self) -> tuple[str, int] | None:
        """Where other brokers reach it: its first listener, which serves brokers too (None:
        it registered none)."""
        if not self.endpoints:
            return None
        chosen = self.endpoints[0]
        return chosen.host or "127.0.0.1", chosen.port


@dataclass(frozen=True, slots=True)
class PartitionImage:
    partition_id: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int
    removing_replicas: tuple[int, ...] = ()
    adding_replicas: tuple[int, ...] = ()
    leader_recovery_state: int = LEADER_RECOVERED

    @property
    def reassigning(self) -> bool:
        return bool(self.removing_replicas or self.adding_replicas)

    def merge(self, change: PartitionChangeRecord) -> PartitionImage:
        leader, leader_epoch = self.leader, self.leader_epoch
        if change.leader != NO_LEADER_CHANGE:
            leader, leader_epoch = change.leader, self.leader_epoch + 1
        return PartitionImage(
            self.partition_id,
            self.replicas if change.replicas is None else change.replicas,
            self.isr if change.isr is None else change.isr,
            leader,
            leader_epoch,
            self.partition_epoch + 1,
            self.removing_replicas
            if change.removing_replicas is None
            else change.removing_replicas,
            self.adding_replicas if change.adding_replicas is None else change.adding_replicas,
            self.leader_recovery_state
            if change.leader_recovery_state == -1
            else change.leader_recovery_state,
        )


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
    brokers: Mapping[int, BrokerRegistration] = field(default_factory=lambda: MappingProxyType({}))

    def broker(self, broker_id: int) -> BrokerRegistration | None:
        return self.brokers.get(broker_id)

    def is_active(self, broker_id: int) -> bool:
        """Unfenced and not in controlled shutdown: may lead and join an ISR."""
        registration = self.brokers.get(broker_id)
        return registration is not None and registration.active

    def all_partitions(self) -> Iterable[tuple[TopicImage, PartitionImage]]:
        for topic in self.topics.values():
            for partition in topic.partitions.values():
                yield topic, partition

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
        brokers = dict(self.brokers)
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
                    record.removing_replicas,
                    record.adding_replicas,
                    record.leader_recovery_state,
                )
                topics[name] = replace(topic, partitions=MappingProxyType(partitions))
            elif isinstance(record, PartitionChangeRecord):
                name = topic_ids.get(record.topic_id)
                before = None if name is None else topics[name].partitions.get(record.partition_id)
                if name is None or before is None:
                    continue
                partitions = dict(topics[name].partitions)
                partitions[record.partition_id] = before.merge(record)
                topics[name] = replace(topics[name], partitions=MappingProxyType(partitions))
            elif isinstance(record, RegisterBrokerRecord):
                brokers[record.broker_id] = BrokerRegistration(
                    record.broker_id,
                    record.incarnation_id,
                    record.broker_epoch,
                    record.endpoints,
                    record.rack,
                    record.fenced,
                    record.in_controlled_shutdown,
                    record.features,
                )
            elif isinstance(record, UnregisterBrokerRecord):
                existing_broker = brokers.get(record.broker_id)
                if existing_broker is not None and existing_broker.epoch == record.broker_epoch:
                    del brokers[record.broker_id]
            elif isinstance(
                record, (BrokerRegistrationChangeRecord, FenceBrokerRecord, UnfenceBrokerRecord)
            ):
                _apply_registration_change(brokers, record)
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
            MappingProxyType(brokers),
        )


def _apply_registration_change(
    brokers: dict[int, BrokerRegistration],
    record: BrokerRegistrationChangeRecord | FenceBrokerRecord | UnfenceBrokerRecord,
) -> None:
    existing = brokers.get(record.broker_id)
    if existing is None or existing.epoch != record.broker_epoch:
        return  # a change for an incarnation that has been replaced since
    if isinstance(record, FenceBrokerRecord):
        brokers[record.broker_id] = replace(existing, fenced=True)
    elif isinstance(record, UnfenceBrokerRecord):
        brokers[record.broker_id] = replace(existing, fenced=False)
    else:
        fenced = existing.fenced
        if record.fenced == FENCE:
            fenced = True
        elif record.fenced == UNFENCE:
            fenced = False
        brokers[record.broker_id] = replace(
            existing,
            fenced=fenced,
            in_controlled_shutdown=existing.in_controlled_shutdown
            or record.in_controlled_shutdown == 1,
        )
