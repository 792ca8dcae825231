"""Leader elections asked for by an admin (ElectLeaders) or by the controller itself
(auto.leader.rebalance.enable), as cores returning records.

ElectLeaders follows Kafka's ReplicationControlManager.electLeaders: PREFERRED (0) moves the
leadership to the first replica when it is in the ISR and active; UNCLEAN (1) elects a leader
for a partition that has none, from outside the ISR if it must (whatever the topic's
unclean.leader.election.enable says: the admin asked for it). Per partition: an unknown topic
or partition is UNKNOWN_TOPIC_OR_PARTITION, a partition already led by its preferred replica
(PREFERRED) or led at all (UNCLEAN) is ELECTION_NOT_NEEDED, and an election that changes
nothing is PREFERRED_LEADER_NOT_AVAILABLE or ELIGIBLE_LEADERS_NOT_AVAILABLE. With no partition
list, every partition is tried and ELECTION_NOT_NEEDED results are left out.

Leader rebalance: Kafka's KRaft controller elects the preferred leader of every imbalanced
partition and ignores leader.imbalance.per.broker.percentage; the ZooKeeper controller
honoured it. Here it is honoured as the ZooKeeper controller did: for each broker, the share of
the partitions it is the preferred replica of but does not lead; above the percentage, those
partitions get preferred elections (at most `max_elections` per pass, as Kafka bounds a pass).
A percentage of 0 behaves as KRaft does.

Offline partitions: Kafka's controller also retries, periodically, an unclean election for
every leaderless partition whose topic allows it (unclean.leader.election.enable may have been
turned on after the partition went offline): `elect_unclean_leaders`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.image import MetadataImage
from odradek.metadata.partition_change import (
    Election,
    build_partition_change,
    unclean_election_enabled,
)
from odradek.metadata.records import NO_LEADER, MetadataRecord

MAX_ELECTIONS_PER_IMBALANCE = 1000  # Kafka's maxElectionsPerImbalance


class ElectionType(IntEnum):
    PREFERRED = 0
    UNCLEAN = 1


@dataclass(frozen=True, slots=True)
class ElectionOutcome:
    topic: str
    partition_id: int
    error: ErrorCode
    message: str | None = None


def elect_leaders(
    image: MetadataImage,
    election_type: int,
    partitions: Mapping[str, Sequence[int]] | None,
) -> tuple[list[MetadataRecord], list[ElectionOutcome]]:
    try:
        kind = ElectionType(election_type)
    except ValueError:
        raise KafkaError(
            f"Unknown election type {election_type}", ErrorCode.INVALID_REQUEST
        ) from None
    records: list[MetadataRecord] = []
    outcomes: list[ElectionOutcome] = []
    scratch = image
    if partitions is None:
        wanted = {name: sorted(topic.partitions) for name, topic in image.topics.items()}
    else:
        wanted = {name: list(ids) for name, ids in partitions.items()}
    for name, ids in wanted.items():
        for partition_id in ids:
            outcome, record = _elect_one(scratch, kind, name, partition_id)
            if record is not None:
                records.append(record)
                scratch = scratch.apply([record])
            if partitions is None and outcome.error == ErrorCode.ELECTION_NOT_NEEDED:
                continue
            outcomes.append(outcome)
    return records, outcomes


def _elect_one(
    image: MetadataImage, kind: ElectionType, name: str, partition_id: int
) -> tuple[ElectionOutcome, MetadataRecord | None]:
    topic = image.topic(name)
    if topic is None:
        return ElectionOutcome(
            name, partition_id, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such topic as {name}"
        ), None
    partition = topic.partitions.get(partition_id)
    if partition is None:
        return ElectionOutcome(
            name,
            partition_id,
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            f"No such partition as {name}-{partition_id}",
        ), None
    if (kind == ElectionType.PREFERRED and partition.leader == partition.replicas[0]) or (
        kind == ElectionType.UNCLEAN and partition.leader != NO_LEADER
    ):
        return ElectionOutcome(
            name,
            partition_id,
            ErrorCode.ELECTION_NOT_NEEDED,
            "Leader election not needed for topic partition.",
        ), None
    record = build_partition_change(
        topic.topic_id,
        partition,
        image.is_active,
        election=Election.PREFERRED if kind == ElectionType.PREFERRED else Election.UNCLEAN,
    )
    if record is None:
        error = (
            ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
            if kind == ElectionType.PREFERRED
            else ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
        )
        return ElectionOutcome(name, partition_id, error, None), None
    return ElectionOutcome(name, partition_id, ErrorCode.NONE), record


def leader_imbalance(image: MetadataImage) -> dict[int, float]:
    """For each preferred replica: the share of its partitions led by another broker."""
    preferred: dict[int, int] = {}
    not_led: dict[int, int] = {}
    for _, partition in image.all_partitions():
        if not partition.replicas:
            continue
        broker = partition.replicas[0]
        preferred[broker] = preferred.get(broker, 0) + 1
        if partition.leader != broker:
            not_led[broker] = not_led.get(broker, 0) + 1
    return {broker: not_led.get(broker, 0) / count for broker, count in preferred.items()}


def rebalance_leaders(
    image: MetadataImage,
    imbalance_percentage: int = 10,
    max_elections: int = MAX_ELECTIONS_PER_IMBALANCE,
) -> list[MetadataRecord]:
    """Preferred elections for the partitions of brokers whose imbalance is above
    leader.imbalance.per.broker.percentage; only where the preferred replica is active and
    in the ISR, so no election here can fail or move a leadership to a worse place."""
    over = {
        broker
        for broker, ratio in leader_imbalance(image).items()
        if ratio > imbalance_percentage / 100
    }
    records: list[MetadataRecord] = []
    for topic, partition in image.all_partitions():
        if len(records) >= max_elections:
            break
        preferred = partition.replicas[0] if partition.replicas else NO_LEADER
        if preferred not in over or partition.leader == preferred:
            continue
        if preferred not in partition.isr or not image.is_active(preferred):
            continue
        record = build_partition_change(
            topic.topic_id, partition, image.is_active, election=Election.PREFERRED
        )
        if record is not None:
            records.append(record)
    return records


def elect_unclean_leaders(
    image: MetadataImage,
    unclean_default: bool | None = None,
    max_elections: int = MAX_ELECTIONS_PER_IMBALANCE,
) -> list[MetadataRecord]:
    """Unclean elections for leaderless partitions of topics that allow them."""
    records: list[MetadataRecord] = []
    for topic, partition in image.all_partitions():
        if len(records) >= max_elections:
            break
        if partition.leader != NO_LEADER:
            continue
        if not unclean_election_enabled(image, topic, unclean_default):
            continue
        record = build_partition_change(
            topic.topic_id, partition, image.is_active, election=Election.UNCLEAN
        )
        if record is not None:
            records.append(record)
    return records
