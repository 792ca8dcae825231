"""Partition reassignment (AlterPartitionReassignments, ListPartitionReassignments) as cores.

A reassignment to target replicas T of a partition with replicas R is written as one
PartitionChangeRecord: replicas = T followed by the replicas leaving (R - T, sorted), adding =
T - R, removing = R - T. The new replicas then fetch and join the ISR through AlterPartition;
the change that puts the last of them in the ISR also completes the reassignment (the leaving
replicas drop out of the replicas and the ISR, and leadership moves if the leader left), see
`partition_change.build_partition_change`. A target that only reorders current replicas
completes at once.

Cancelling (target None) reverts to the replicas before the reassignment: the adding replicas
leave the replicas and the ISR; if that would empty the ISR, the first original replica is put
in it, which is an unclean election and is refused (INVALID_REPLICA_ASSIGNMENT) unless the
topic allows unclean elections. Cancelling with nothing in progress is
NO_REASSIGNMENT_IN_PROGRESS. Targets must be non-empty, without duplicates, on registered
brokers (INVALID_REPLICA_ASSIGNMENT); unknown topics and partitions are
UNKNOWN_TOPIC_OR_PARTITION. Messages are Kafka's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.image import MetadataImage, PartitionImage, TopicImage
from odradek.metadata.partition_change import (
    Election,
    build_partition_change,
    unclean_election_enabled,
)
from odradek.metadata.placement import validate_manual_assignment
from odradek.metadata.records import MetadataRecord, PartitionChangeRecord


@dataclass(frozen=True, slots=True)
class ReassignmentTarget:
    topic: str
    partition_id: int
    replicas: tuple[int, ...] | None  # None cancels the reassignment in progress


@dataclass(frozen=True, slots=True)
class ReassignmentOutcome:
    topic: str
    partition_id: int
    error: ErrorCode
    message: str | None = None


@dataclass(frozen=True, slots=True)
class OngoingReassignment:
    topic: str
    partition_id: int
    replicas: tuple[int, ...]
    adding_replicas: tuple[int, ...]
    removing_replicas: tuple[int, ...]


def _invalid(message: str) -> KafkaError:
    return KafkaError(message, ErrorCode.INVALID_REPLICA_ASSIGNMENT)


def _change(
    image: MetadataImage, topic: TopicImage, partition: PartitionImage, target: Sequence[int]
) -> PartitionChangeRecord | None:
    validate_manual_assignment(image.brokers, target)
    removing = sorted(set(partition.replicas) - set(target))
    adding = sorted(set(target) - set(partition.replicas))
    replicas = list(target) + removing
    return build_partition_change(
        topic.topic_id,
        partition,
        image.is_active,
        replicas=replicas,
        removing=removing if removing else None,
        adding=adding if adding else None,
    )


def _cancel(
    image: MetadataImage, topic: TopicImage, partition: PartitionImage, unclean_default: bool | None
) -> PartitionChangeRecord | None:
    if not partition.reassigning:
        raise KafkaError(
            "No partition reassignment is in progress.", ErrorCode.NO_REASSIGNMENT_IN_PROGRESS
        )
    original = [r for r in partition.replicas if r not in partition.adding_replicas]
    isr = [r for r in partition.isr if r not in partition.adding_replicas]
    unclean_allowed = unclean_election_enabled(image, topic, unclean_default)
    if not isr:
        if not original:
            raise _invalid("Invalid replica assignment: addingReplicas contains all replicas.")
        if not unclean_allowed:
            raise _invalid(
                f"Unable to revert partition assignment for {topic.name}:"
                f"{partition.partition_id} because it would require an unclean leader election."
            )
        isr = [original[0]]
    return build_partition_change(
        topic.topic_id,
        partition,
        image.is_active,
        isr=isr,
        replicas=original,
        removing=(),
        adding=(),
        election=Election.UNCLEAN if unclean_allowed else Election.ONLINE,
    )


def alter_partition_reassignments(
    image: MetadataImage,
    targets: Sequence[ReassignmentTarget],
    unclean_default: bool | None = None,
) -> tuple[list[MetadataRecord], list[ReassignmentOutcome]]:
    records: list[MetadataRecord] = []
    outcomes: list[ReassignmentOutcome] = []
    scratch = image
    for target in targets:
        topic = scratch.topic(target.topic)
        try:
            if topic is None:
                raise KafkaError(
                    f"Unable to find a topic named {target.topic}.",
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                )
            partition = topic.partitions.get(target.partition_id)
            if partition is None:
                raise KafkaError(
                    f"Unable to find partition {target.topic}:{target.partition_id}.",
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                )
            if target.replicas is None:
                record = _cancel(scratch, topic, partition, unclean_default)
            else:
                record = _change(scratch, topic, partition, target.replicas)
        except KafkaError as exc:
            outcomes.append(
                ReassignmentOutcome(target.topic, target.partition_id, exc.code, str(exc))
            )
            continue
        if record is not None:
            records.append(record)
            scratch = scratch.apply([record])
        outcomes.append(ReassignmentOutcome(target.topic, target.partition_id, ErrorCode.NONE))
    return records, outcomes


def list_partition_reassignments(
    image: MetadataImage, topics: Mapping[str, Sequence[int]] | None = None
) -> list[OngoingReassignment]:
    """Reassignments in progress: all of them, or those among the partitions named (unknown
    topics and partitions are left out, as Kafka does)."""
    if topics is None:
        wanted = {name: sorted(topic.partitions) for name, topic in image.topics.items()}
    else:
        wanted = {name: list(ids) for name, ids in topics.items()}
    ongoing: list[OngoingReassignment] = []
    for name, ids in wanted.items():
        topic = image.topic(name)
        if topic is None:
            continue
        for partition_id in ids:
            partition = topic.partitions.get(partition_id)
            if partition is None or not partition.reassigning:
                continue
            ongoing.append(
                OngoingReassignment(
                    name,
                    partition_id,
                    partition.replicas,
                    partition.adding_replicas,
                    partition.removing_replicas,
                )
            )
    return ongoing
