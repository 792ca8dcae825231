"""The `__consumer_offsets` records of a consumer group (KIP-848), as plain values.

Each record is a key and a value; a value of None is a tombstone. The fields mirror Kafka's
record schemas one for one, so the binary codec (`records.encode_consumer_group_record` and
`records.decode_consumer_group_record`) only has to put them on the wire; the two fields of
Kafka's records not held here are listed in `records.py`:

    key version  key fields            value fields (value version 0, flexible)
    3  ConsumerGroupMetadata           group_id    epoch
    4  ConsumerGroupPartitionMetadata  group_id    topics [topic_id, topic_name, num_partitions,
                                                   partition_metadata (racks; Kafka 4 writes it
                                                   empty and so does this)]
    5  ConsumerGroupMemberMetadata     group_id, member_id   instance_id, rack_id, client_id,
                                                   client_host, subscribed_topic_names,
                                                   subscribed_topic_regex, rebalance_timeout_ms,
                                                   server_assignor (classic_member_metadata,
                                                   a tagged field, is not held)
    6  ConsumerGroupTargetAssignmentMetadata  group_id   assignment_epoch
    7  ConsumerGroupTargetAssignmentMember    group_id, member_id   topic_partitions
    8  ConsumerGroupCurrentMemberAssignment   group_id, member_id   member_epoch,
                                                   previous_member_epoch, state (int8),
                                                   assigned_partitions,
                                                   partitions_pending_revocation

Topic partitions are `((topic_id, (partition, ...)), ...)`, sorted, so equal assignments are
equal records; the codec sorts what it reads, since Kafka writes them in its maps' order.
Topic ids are 16 bytes. This module holds values only: no I/O, no codec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TopicId = bytes
TopicPartitions = tuple[tuple[TopicId, tuple[int, ...]], ...]
Assignment = Mapping[TopicId, frozenset[int]]


def to_topic_partitions(assignment: Assignment) -> TopicPartitions:
    return tuple(
        (topic_id, tuple(sorted(partitions)))
        for topic_id, partitions in sorted(assignment.items())
        if partitions
    )


def from_topic_partitions(topic_partitions: TopicPartitions) -> dict[TopicId, frozenset[int]]:
    assignment: dict[TopicId, frozenset[int]] = {}
    for topic_id, partitions in topic_partitions:
        if partitions:
            assignment[topic_id] = assignment.get(topic_id, frozenset()) | frozenset(partitions)
    return assignment


@dataclass(frozen=True, slots=True)
class TopicMetadata:
    """A topic as the group sees it: what the assignor needs, and what key 4 stores."""

    topic_id: TopicId
    name: str
    partitions: int


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsumerGroupMetadataKey:
    group_id: str
    version = 3


@dataclass(frozen=True, slots=True)
class ConsumerGroupPartitionMetadataKey:
    group_id: str
    version = 4


@dataclass(frozen=True, slots=True)
class ConsumerGroupMemberMetadataKey:
    group_id: str
    member_id: str
    version = 5


@dataclass(frozen=True, slots=True)
class ConsumerGroupTargetAssignmentMetadataKey:
    group_id: str
    version = 6


@dataclass(frozen=True, slots=True)
class ConsumerGroupTargetAssignmentMemberKey:
    group_id: str
    member_id: str
    version = 7


@dataclass(frozen=True, slots=True)
class ConsumerGroupCurrentMemberAssignmentKey:
    group_id: str
    member_id: str
    version = 8


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsumerGroupMetadataValue:
    epoch: int


@dataclass(frozen=True, slots=True)
class ConsumerGroupPartitionMetadataValue:
    topics: tuple[TopicMetadata, ...]  # sorted by name


@dataclass(frozen=True, slots=True)
class ConsumerGroupMemberMetadataValue:
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]  # sorted, as Kafka writes them
    subscribed_topic_regex: str | None
    rebalance_timeout_ms: int
    server_assignor: str | None


@dataclass(frozen=True, slots=True)
class ConsumerGroupTargetAssignmentMetadataValue:
    assignment_epoch: int


@dataclass(frozen=True, slots=True)
class ConsumerGroupTargetAssignmentMemberValue:
    topic_partitions: TopicPartitions


@dataclass(frozen=True, slots=True)
class ConsumerGroupCurrentMemberAssignmentValue:
    member_epoch: int
    previous_member_epoch: int
    state: int  # MemberState's value; unknown values replay as UNKNOWN
    assigned_partitions: TopicPartitions
    partitions_pending_revocation: TopicPartitions


ConsumerGroupRecordKey = (
    ConsumerGroupMetadataKey
    | ConsumerGroupPartitionMetadataKey
    | ConsumerGroupMemberMetadataKey
    | ConsumerGroupTargetAssignmentMetadataKey
    | ConsumerGroupTargetAssignmentMemberKey
    | ConsumerGroupCurrentMemberAssignmentKey
)
ConsumerGroupRecordValue = (
    ConsumerGroupMetadataValue
    | ConsumerGroupPartitionMetadataValue
    | ConsumerGroupMemberMetadataValue
    | ConsumerGroupTargetAssignmentMetadataValue
    | ConsumerGroupTargetAssignmentMemberValue
    | ConsumerGroupCurrentMemberAssignmentValue
)


@dataclass(frozen=True, slots=True)
class ConsumerGroupRecord:
    key: ConsumerGroupRecordKey
    value: ConsumerGroupRecordValue | None  # None: a tombstone

    @property
    def group_id(self) -> str:
        return self.key.group_id
