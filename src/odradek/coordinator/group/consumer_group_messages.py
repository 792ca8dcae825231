"""What a ConsumerGroupHeartbeat handler gives the consumer group core and gets back, and what
ConsumerGroupDescribe answers: plain values, with the wire's field names and Kafka's defaults.
The handler (not written yet) maps them to and from kio's message classes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from odradek.common.errors import ErrorCode
from odradek.coordinator.group.consumer_group import ConsumerGroup, ConsumerGroupMember
from odradek.coordinator.group.consumer_group_records import (
    Assignment,
    ConsumerGroupRecord,
    TopicId,
    TopicPartitions,
    to_topic_partitions,
)


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    """ConsumerGroupHeartbeat v0-v1, plus the client id and host of the request context."""

    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: tuple[str, ...] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    topic_partitions: TopicPartitions | None = None  # owned partitions; None: unchanged
    client_id: str = ""
    client_host: str = ""
    version: int = 0


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    error: ErrorCode = ErrorCode.NONE
    error_message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: TopicPartitions | None = None  # None: unchanged


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    response: HeartbeatResponse
    records: tuple[ConsumerGroupRecord, ...]


@dataclass(frozen=True, slots=True)
class DescribedTopicPartitions:
    topic_id: TopicId
    topic_name: str
    partitions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DescribedMember:
    member_id: str
    instance_id: str | None
    rack_id: str | None
    member_epoch: int
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]
    subscribed_topic_regex: str | None
    assignment: tuple[DescribedTopicPartitions, ...]
    target_assignment: tuple[DescribedTopicPartitions, ...]


@dataclass(frozen=True, slots=True)
class DescribedGroup:
    """One group of a ConsumerGroupDescribe response."""

    group_id: str
    error: ErrorCode = ErrorCode.NONE
    error_message: str | None = None
    group_state: str = ""
    group_epoch: int = 0
    assignment_epoch: int = 0
    assignor_name: str = ""
    members: tuple[DescribedMember, ...] = ()


def describe_group(
    group: ConsumerGroup, assignor_name: str, topic_names: Mapping[TopicId, str]
) -> DescribedGroup:
    """A group as ConsumerGroupDescribe shows it. Partitions of topics without a name in
    `topic_names` are left out, as Kafka leaves out topics missing from its metadata image."""

    def described(assignment: Assignment) -> tuple[DescribedTopicPartitions, ...]:
        return tuple(
            DescribedTopicPartitions(topic_id, topic_names[topic_id], partitions)
            for topic_id, partitions in to_topic_partitions(assignment)
            if topic_id in topic_names
        )

    def member(m: ConsumerGroupMember) -> DescribedMember:
        return DescribedMember(
            member_id=m.member_id,
            instance_id=m.instance_id,
            rack_id=m.rack_id,
            member_epoch=m.member_epoch,
            client_id=m.client_id,
            client_host=m.client_host,
            subscribed_topic_names=tuple(sorted(m.subscribed_topic_names)),
            subscribed_topic_regex=m.subscribed_topic_regex,
            assignment=described(m.assigned_partitions),
            target_assignment=described(group.target_assignment.get(m.member_id, {})),
        )

    return DescribedGroup(
        group.group_id,
        group_state=str(group.state),
        group_epoch=group.group_epoch,
        assignment_epoch=group.assignment_epoch,
        assignor_name=assignor_name,
        members=tuple(member(m) for _, m in sorted(group.members.items())),
    )
