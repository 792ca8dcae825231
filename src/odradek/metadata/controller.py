"""The controller's topic duties as a core without I/O: validate a request, return records.

Handlers call these with the current image; the records they return go through the metadata
log and change state only when replayed (`MetadataImage.apply`). Errors carry Kafka's codes
and messages.

Placement: once brokers have registered in the image, new partitions are placed by Kafka's
striped, rack-aware placer over the usable brokers (`metadata/placement.py`), the ISR is the
active replicas and the first of them leads, as Kafka's controller does. Before any broker has
registered (a single node that does not register yet), replicas go round robin over the
node ids given to the constructor, as before.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from odradek.common.config import validate_topic_configs
from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.image import MetadataImage
from odradek.metadata.placement import (
    StripedReplicaPlacer,
    usable_brokers,
    validate_manual_assignment,
)
from odradek.metadata.records import (
    RESOURCE_TOPIC,
    ConfigRecord,
    MetadataRecord,
    PartitionRecord,
    RemoveTopicRecord,
    TopicRecord,
)

MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


@dataclass(frozen=True, slots=True)
class ControllerResult:
    records: list[MetadataRecord] = field(default_factory=list)


def validate_topic_name(name: str) -> None:
    def invalid(reason: str) -> KafkaError:
        return KafkaError(reason, ErrorCode.INVALID_TOPIC_EXCEPTION)

    if not name:
        raise invalid("Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise invalid('Topic name cannot be "." or ".."')
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise invalid(
            f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters,"
            f" topic name: {name}"
        )
    if not _LEGAL_TOPIC_NAME.match(name):
        raise invalid(
            f'Topic name "{name}" is illegal, it contains a character other than ASCII'
            " alphanumerics, '.', '_' and '-'"
        )


def new_topic_id() -> bytes:
    while True:
        topic_id = uuid.uuid4().bytes
        # Kafka never hands out the all-zero id, nor one whose base64 form starts with '-'
        if topic_id != bytes(16) and topic_id[0] & 0xFC != 0xF8:
            return topic_id


@dataclass(frozen=True, slots=True)
class NewTopic:
    name: str
    num_partitions: int
    replication_factor: int
    assignments: Mapping[int, Sequence[int]]
    configs: Mapping[str, str | None]


@dataclass(frozen=True, slots=True)
class CreatedTopic:
    topic_id: bytes
    num_partitions: int
    replication_factor: int
    configs: dict[str, Any]


class TopicController:
    def __init__(
        self,
        broker_ids: Sequence[int],
        default_partitions: int,
        default_rf: int,
        rng: random.Random | None = None,
    ):
        self.broker_ids = tuple(broker_ids)
        self.default_partitions = default_partitions
        self.default_replication_factor = default_rf
        self.rng = rng or random.Random()

    def create_topic(
        self, image: MetadataImage, request: NewTopic, pending: set[str]
    ) -> tuple[CreatedTopic, list[MetadataRecord]]:
        """Validate one topic of a CreateTopics request; `pending` holds names created earlier
        in the same request (a name twice in one request is refused by the handler)."""
        name = request.name
        validate_topic_name(name)
        if image.topic(name) is not None or name in pending:
            raise KafkaError(f"Topic '{name}' already exists.", ErrorCode.TOPIC_ALREADY_EXISTS)
        collision = name.replace(".", "_")
        for existing in list(image.topics) + list(pending):
            if existing.replace(".", "_") == collision:
                raise KafkaError(
                    f"Topic '{name}' collides with existing topic: {existing}",
                    ErrorCode.INVALID_TOPIC_EXCEPTION,
                )
        if request.assignments:
            if request.num_partitions != -1 or request.replication_factor != -1:
                raise KafkaError(
                    "Both numPartitions or replicationFactor and replicasAssignments were set."
                    " Both cannot be used at the same time.",
                    ErrorCode.INVALID_REQUEST,
                )
            assignment = self._check_assignments(image, request.assignments)
        else:
            partitions = request.num_partitions
            if partitions == -1:
                partitions = self.default_partitions
            if partitions <= 0:
                raise KafkaError(
                    "Number of partitions was set to an invalid non-positive value.",
                    ErrorCode.INVALID_PARTITIONS,
                )
            replication = request.replication_factor
            if replication == -1:
                replication = self.default_replication_factor
            if replication <= 0:
                raise KafkaError(
                    "Replication factor must be larger than 0, or -1 to use the default value.",
                    ErrorCode.INVALID_REPLICATION_FACTOR,
                )
            if image.brokers:
                assignment = self._place_striped(image, partitions, replication)
            elif replication > len(self.broker_ids):
                raise KafkaError(
                    f"Unable to replicate the partition {replication} time(s): The target"
                    f" replication factor of {replication} cannot be reached because only"
                    f" {len(self.broker_ids)} broker(s) are registered.",
                    ErrorCode.INVALID_REPLICATION_FACTOR,
                )
            else:
                assignment = self._place(partitions, replication, 0)
        try:
            configs = validate_topic_configs(request.configs)
        except KafkaError as exc:
            raise KafkaError(str(exc), ErrorCode.INVALID_CONFIG) from None
        topic_id = new_topic_id()
        records: list[MetadataRecord] = [TopicRecord(name, topic_id)]
        for partition_id, replicas in enumerate(assignment):
            records.append(
                self._new_partition(
                    image, topic_id, partition_id, replicas, bool(request.assignments)
                )
            )
        for key, value in request.configs.items():
            records.append(ConfigRecord(RESOURCE_TOPIC, name, key, value))
        created = CreatedTopic(topic_id, len(assignment), len(assignment[0]), configs)
        return created, records

    def delete_topic(self, image: MetadataImage, topic_id: bytes) -> list[MetadataRecord]:
        return [RemoveTopicRecord(topic_id)]

    def create_partitions(
        self,
        image: MetadataImage,
        name: str,
        count: int,
        assignments: Sequence[Sequence[int]] | None,
    ) -> list[MetadataRecord]:
        topic = image.topic(name)
        if topic is None:
            raise KafkaError(
                f"This server does not host this topic-partition: {name}",
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            )
        current = len(topic.partitions)
        if count < current:
            raise KafkaError(
                f"Topic currently has {current} partitions, which is higher than the requested"
                f" {count}.",
                ErrorCode.INVALID_PARTITIONS,
            )
        if count == current:
            raise KafkaError(
                f"Topic already has {current} partitions.", ErrorCode.INVALID_PARTITIONS
            )
        replication = len(next(iter(topic.partitions.values())).replicas)
        added = count - current
        if assignments is not None:
            if len(assignments) != added:
                raise KafkaError(
                    f"Increasing the number of partitions by {added} but {len(assignments)}"
                    " assignments provided.",
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                )
            placement = self._check_assignments(image, dict(enumerate(assignments)), replication)
        elif image.brokers:
            placement = self._place_striped(image, added, replication)
        else:
            placement = self._place(added, replication, current)
        return [
            self._new_partition(
                image, topic.topic_id, current + i, replicas, assignments is not None
            )
            for i, replicas in enumerate(placement)
        ]

    def _place_striped(
        self, image: MetadataImage, partitions: int, replication: int
    ) -> list[tuple[int, ...]]:
        try:
            return StripedReplicaPlacer(usable_brokers(image), self.rng).place(
                partitions, replication
            )
        except KafkaError as exc:
            raise KafkaError(
                f"Unable to replicate the partition {replication} time(s): {exc}", exc.code
            ) from None

    def _new_partition(
        self,
        image: MetadataImage,
        topic_id: bytes,
        partition_id: int,
        replicas: tuple[int, ...],
        manual: bool,
    ) -> PartitionRecord:
        """Kafka's buildPartitionRegistration: the ISR is the active replicas, the first of
        them leads; a partition no active replica could lead is refused."""
        if not image.brokers:
            return PartitionRecord(partition_id, topic_id, replicas, replicas, replicas[0], 0, 0)
        isr = tuple(r for r in replicas if image.is_active(r))
        if not isr:
            if manual:
                raise KafkaError(
                    "All brokers specified in the manual partition assignment for partition"
                    f" {partition_id} are fenced or in controlled shutdown.",
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                )
            raise KafkaError(
                f"Unable to replicate the partition {len(replicas)} time(s): All brokers are"
                " currently fenced or in controlled shutdown.",
                ErrorCode.INVALID_REPLICATION_FACTOR,
            )
        return PartitionRecord(partition_id, topic_id, replicas, isr, isr[0], 0, 0)

    def _place(self, partitions: int, replication: int, start: int) -> list[tuple[int, ...]]:
        brokers = sorted(self.broker_ids)
        return [
            tuple(brokers[(start + p + r) % len(brokers)] for r in range(replication))
            for p in range(partitions)
        ]

    def _check_assignments(
        self,
        image: MetadataImage,
        assignments: Mapping[int, Sequence[int]],
        replication: int | None = None,
    ) -> list[tuple[int, ...]]:
        """Manual assignments, numbered from 0, checked as Kafka's controller does; every
        partition must have as many replicas as the first (or `replication`)."""
        known = set(image.brokers) if image.brokers else set(self.broker_ids)
        placement: list[tuple[int, ...]] = []
        for index in range(len(assignments)):
            replicas = assignments.get(index)
            if replicas is None:
                raise KafkaError(
                    "partitions should be a consecutive 0-based integer sequence",
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                )
            validate_manual_assignment(known, replicas, replication)
            replication = len(replicas)
            placement.append(tuple(replicas))
        return placement
