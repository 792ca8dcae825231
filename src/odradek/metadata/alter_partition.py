"""AlterPartition as a core without I/O: a partition leader asks the controller to change its
ISR (and to mark an unclean leader recovered); the answer is records plus, per partition, an
error or the partition's state once the records are replayed.

Checks, in Kafka's order (ReplicationControlManager.validateAlterPartitionData): the request's
broker epoch (STALE_BROKER_EPOCH for the whole request), an unknown topic (UNKNOWN_TOPIC_ID from
v2, UNKNOWN_TOPIC_OR_PARTITION before) or partition, a leader or partition epoch ahead of the
controller's (NOT_CONTROLLER: this controller is behind), an older leader epoch
(FENCED_LEADER_EPOCH), a sender that is not the leader (INVALID_REQUEST), an older partition
epoch (INVALID_UPDATE_VERSION), an ISR with replicas outside the assignment or without the
leader (INVALID_REQUEST), RECOVERING with more than one ISR member or going back from RECOVERED
(INVALID_REQUEST), and ISR members that are unregistered, fenced, shutting down or of another
broker epoch (INELIGIBLE_REPLICA from v2, OPERATION_NOT_ATTEMPTED before).

Strict min ISR: the ISR never shrinks below the topic's min.insync.replicas by dropping a
replica that is still active (unfenced, not shutting down); such a request keeps as many of the
dropped live replicas as it takes to stay at min.insync.replicas, and the response carries the
ISR that was kept. The replicas kept have every committed record (nothing commits without
them), so they remain safe leaders; this stands in for KIP-966's ELR, which is not built.

If the change completes a reassignment that moves the leadership away, the change is written
and the leader is told NEW_LEADER_ELECTED (FENCED_LEADER_EPOCH before v2), as Kafka does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from odradek.common.errors import ErrorCode
from odradek.metadata.broker_control import check_broker_epoch
from odradek.metadata.image import MetadataImage, PartitionImage, TopicImage
from odradek.metadata.partition_change import (
    Election,
    build_partition_change,
    min_insync_replicas,
    unclean_election_enabled,
)
from odradek.metadata.records import (
    LEADER_RECOVERED,
    LEADER_RECOVERING,
    NO_LEADER_CHANGE,
    MetadataRecord,
)


@dataclass(frozen=True, slots=True)
class IsrMember:
    broker_id: int
    broker_epoch: int = -1  # -1: not checked (requests before v3 carry ids only)


@dataclass(frozen=True, slots=True)
class AlterPartitionItem:
    topic_id: bytes  # the handler resolves names to ids for v0-1
    partition_id: int
    leader_epoch: int
    partition_epoch: int
    new_isr: tuple[IsrMember, ...]
    leader_recovery_state: int = LEADER_RECOVERED


@dataclass(frozen=True, slots=True)
class AlterPartitionOutcome:
    topic_id: bytes
    partition_id: int
    error: ErrorCode
    partition: PartitionImage | None = None  # the state after replay, when error is NONE


def _validate(
    image: MetadataImage,
    broker_id: int,
    partition: PartitionImage,
    item: AlterPartitionItem,
    request_version: int,
) -> ErrorCode:
    if item.leader_epoch > partition.leader_epoch:
        return ErrorCode.NOT_CONTROLLER
    if item.partition_epoch > partition.partition_epoch:
        return ErrorCode.NOT_CONTROLLER
    if item.leader_epoch < partition.leader_epoch:
        return ErrorCode.FENCED_LEADER_EPOCH
    if broker_id != partition.leader:
        return ErrorCode.INVALID_REQUEST
    if item.partition_epoch < partition.partition_epoch:
        return ErrorCode.INVALID_UPDATE_VERSION
    new_isr = [member.broker_id for member in item.new_isr]
    if len(set(new_isr)) != len(new_isr) or not set(new_isr) <= set(partition.replicas):
        return ErrorCode.INVALID_REQUEST
    if partition.leader not in new_isr:
        return ErrorCode.INVALID_REQUEST
    if item.leader_recovery_state == LEADER_RECOVERING and len(new_isr) > 1:
        return ErrorCode.INVALID_REQUEST
    if (
        partition.leader_recovery_state == LEADER_RECOVERED
        and item.leader_recovery_state == LEADER_RECOVERING
    ):
        return ErrorCode.INVALID_REQUEST
    for member in item.new_isr:
        registration = image.broker(member.broker_id)
        if (
            registration is None
            or registration.in_controlled_shutdown
            or registration.fenced
            or (member.broker_epoch != -1 and registration.epoch != member.broker_epoch)
        ):
            return (
                ErrorCode.INELIGIBLE_REPLICA
                if request_version > 1
                else ErrorCode.OPERATION_NOT_ATTEMPTED
            )
    return ErrorCode.NONE


def strict_min_isr(
    image: MetadataImage, partition: PartitionImage, new_isr: Sequence[int], min_isr: int
) -> list[int]:
    """`new_isr`, with dropped live replicas put back while it is below `min_isr`."""
    kept = list(new_isr)
    for replica in partition.isr:
        if len(kept) >= min_isr:
            break
        if replica not in kept and image.is_active(replica):
            kept.append(replica)
    return kept


def alter_partition(
    image: MetadataImage,
    broker_id: int,
    broker_epoch: int,
    items: Sequence[AlterPartitionItem],
    *,
    request_version: int = 3,
    unclean_default: bool | None = None,
    min_isr_default: int | None = None,
) -> tuple[list[MetadataRecord], list[AlterPartitionOutcome]]:
    """Raises KafkaError(STALE_BROKER_EPOCH) for a sender with another broker epoch."""
    check_broker_epoch(image, broker_id, broker_epoch)
    records: list[MetadataRecord] = []
    outcomes: list[AlterPartitionOutcome] = []
    scratch = image
    for item in items:
        topic: TopicImage | None = scratch.topic_by_id(item.topic_id)
        if topic is None:
            error = (
                ErrorCode.UNKNOWN_TOPIC_ID
                if request_version > 1
                else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            )
            outcomes.append(AlterPartitionOutcome(item.topic_id, item.partition_id, error))
            continue
        partition = topic.partitions.get(item.partition_id)
        if partition is None:
            outcomes.append(
                AlterPartitionOutcome(
                    item.topic_id, item.partition_id, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                )
            )
            continue
        error = _validate(scratch, broker_id, partition, item, request_version)
        if error != ErrorCode.NONE:
            outcomes.append(AlterPartitionOutcome(item.topic_id, item.partition_id, error))
            continue
        target_isr = strict_min_isr(
            scratch,
            partition,
            [member.broker_id for member in item.new_isr],
            min_insync_replicas(scratch, topic, min_isr_default),
        )
        election = (
            Election.UNCLEAN
            if unclean_election_enabled(scratch, topic, unclean_default)
            else Election.ONLINE
        )
        record = build_partition_change(
            topic.topic_id,
            partition,
            scratch.is_active,
            isr=target_isr,
            leader_recovery_state=item.leader_recovery_state,
            election=election,
        )
        if record is not None:
            records.append(record)
            scratch = scratch.apply([record])
            partition = scratch.topics[topic.name].partitions[item.partition_id]
            if record.leader not in (broker_id, NO_LEADER_CHANGE):
                error = (
                    ErrorCode.NEW_LEADER_ELECTED
                    if request_version > 1
                    else ErrorCode.FENCED_LEADER_EPOCH
                )
                outcomes.append(AlterPartitionOutcome(item.topic_id, item.partition_id, error))
                continue
        outcomes.append(
            AlterPartitionOutcome(item.topic_id, item.partition_id, ErrorCode.NONE, partition)
        )
    return records, outcomes
