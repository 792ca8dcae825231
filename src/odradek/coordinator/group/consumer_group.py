"""A consumer group of the KIP-848 protocol (`group.protocol=consumer`): its members, epochs and
assignments, changed only by replaying its records.

The group epoch counts changes of membership, subscriptions and subscribed topic metadata. The
target assignment is what the assignor computed for one group epoch, the assignment epoch. Each
member moves toward its part of the target at its own pace (see `reconciliation.py`); its
member epoch is the assignment epoch it has reached, and its previous epoch is the one before,
which a member whose response was lost may still send. A member owns its assigned partitions
and its partitions pending revocation; a partition is owned by at most one member at a time,
which replay checks as Kafka's does (`IllegalStateError`).

Group states, derived as Kafka derives them:

    Empty        no members
    Assigning    group epoch > assignment epoch: a new target assignment is due
    Reconciling  some member has not reached the assignment epoch, or is not STABLE
    Stable       every member is STABLE at the assignment epoch
    Dead         Kafka's name for a group being unloaded or deleted; never derived here, and
                 ConsumerGroupDescribe answers GROUP_ID_NOT_FOUND for a group that is gone

A member with epoch -2 is a static member that left for a while (it keeps its partitions and
its target until its session expires or its instance id joins again, under a new member id
or its own).

A member subscribes to topic names, to a regular expression (ConsumerGroupHeartbeat v1's
SubscribedTopicRegex), or both. The expression must match a whole topic name, as Java's
`Matcher.matches` does, and never selects an internal topic; it is resolved against the topics
of the metadata image each time the group's subscriptions are computed, so a topic created
later joins the subscription at the next heartbeat. Kafka resolves expressions with RE2/J;
Python's `re` accepts the same common syntax (and a few constructs RE2 refuses).
Members using the classic protocol inside a consumer group (Kafka's online upgrade) are not
held.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum

from odradek.coordinator.group.consumer_group_records import (
    Assignment,
    ConsumerGroupCurrentMemberAssignmentKey,
    ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupMemberMetadataKey,
    ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataKey,
    ConsumerGroupMetadataValue,
    ConsumerGroupPartitionMetadataKey,
    ConsumerGroupPartitionMetadataValue,
    ConsumerGroupRecord,
    ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupTargetAssignmentMemberValue,
    ConsumerGroupTargetAssignmentMetadataKey,
    ConsumerGroupTargetAssignmentMetadataValue,
    TopicId,
    TopicMetadata,
    from_topic_partitions,
    to_topic_partitions,
)

LEAVE_GROUP_MEMBER_EPOCH = -1
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2

# Topics a regular expression never selects (Kafka's Topic.isInternal).
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


@functools.lru_cache(maxsize=256)
def compile_subscription(regex: str) -> re.Pattern[str]:
    """The compiled form of a subscription's expression (re.error if it is not valid)."""
    return re.compile(regex)


def topics_matching(regex: str, topic_names: Iterable[str]) -> set[str]:
    pattern = compile_subscription(regex)
    return {name for name in topic_names if name not in INTERNAL_TOPICS and pattern.fullmatch(name)}


class IllegalStateError(ValueError):
    """Replayed records contradict the group (Kafka's IllegalStateException)."""


class MemberState(IntEnum):
    """A member's reconciliation state; the values are the record's int8."""

    STABLE = 0
    UNREVOKED_PARTITIONS = 1
    UNRELEASED_PARTITIONS = 2
    UNKNOWN = 127

    @classmethod
    def from_value(cls, value: int) -> MemberState:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


class ConsumerGroupState(StrEnum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class ConsumerGroupMember:
    """One member. Assignments are never mutated in place: a change is a new member."""

    member_id: str
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: frozenset[str] = frozenset()
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    assigned_partitions: Assignment = field(default_factory=dict)
    partitions_pending_revocation: Assignment = field(default_factory=dict)

    def is_reconciled_to(self, assignment_epoch: int) -> bool:
        return self.state == MemberState.STABLE and self.member_epoch == assignment_epoch

    def metadata(self) -> tuple[object, ...]:
        """What the member metadata record holds: a change here is a record to write."""
        return (
            self.instance_id,
            self.rack_id,
            self.client_id,
            self.client_host,
            self.subscribed_topic_names,
            self.subscribed_topic_regex,
            self.rebalance_timeout_ms,
            self.server_assignor,
        )

    def subscribed_topics(self, topic_names: Iterable[str]) -> set[str]:
        """The topics this member subscribes to among `topic_names`: by name and by regex.
        Names are kept whether the topic exists or not."""
        topics = set(self.subscribed_topic_names)
        if self.subscribed_topic_regex:
            topics |= topics_matching(self.subscribed_topic_regex, topic_names)
        return topics

    def owned(self) -> Iterator[tuple[TopicId, int]]:
        """Assigned partitions and partitions pending revocation: what no one else may hold."""
        for assignment in (self.assigned_partitions, self.partitions_pending_revocation):
            for topic_id, partitions in assignment.items():
                for partition in partitions:
                    yield topic_id, partition


# --- records of a member ------------------------------------------------------------------------


def member_metadata_record(group_id: str, member: ConsumerGroupMember) -> ConsumerGroupRecord:
    return ConsumerGroupRecord(
        ConsumerGroupMemberMetadataKey(group_id, member.member_id),
        ConsumerGroupMemberMetadataValue(
            instance_id=member.instance_id,
            rack_id=member.rack_id,
            client_id=member.client_id,
            client_host=member.client_host,
            subscribed_topic_names=tuple(sorted(member.subscribed_topic_names)),
            subscribed_topic_regex=member.subscribed_topic_regex,
            rebalance_timeout_ms=member.rebalance_timeout_ms,
            server_assignor=member.server_assignor,
        ),
    )


def current_assignment_record(group_id: str, member: ConsumerGroupMember) -> ConsumerGroupRecord:
    return ConsumerGroupRecord(
        ConsumerGroupCurrentMemberAssignmentKey(group_id, member.member_id),
        ConsumerGroupCurrentMemberAssignmentValue(
            member_epoch=member.member_epoch,
            previous_member_epoch=member.previous_member_epoch,
            state=int(member.state),
            assigned_partitions=to_topic_partitions(member.assigned_partitions),
            partitions_pending_revocation=to_topic_partitions(member.partitions_pending_revocation),
        ),
    )


def target_assignment_record(
    group_id: str, member_id: str, assignment: Assignment
) -> ConsumerGroupRecord:
    return ConsumerGroupRecord(
        ConsumerGroupTargetAssignmentMemberKey(group_id, member_id),
        ConsumerGroupTargetAssignmentMemberValue(to_topic_partitions(assignment)),
    )


def target_assignment_epoch_record(group_id: str, epoch: int) -> ConsumerGroupRecord:
    return ConsumerGroupRecord(
        ConsumerGroupTargetAssignmentMetadataKey(group_id),
        ConsumerGroupTargetAssignmentMetadataValue(epoch),
    )


def group_epoch_record(group_id: str, epoch: int) -> ConsumerGroupRecord:
    return ConsumerGroupRecord(
        ConsumerGroupMetadataKey(group_id), ConsumerGroupMetadataValue(epoch)
    )


def subscription_metadata_record(
    group_id: str, metadata: Mapping[str, TopicMetadata]
) -> ConsumerGroupRecord:
    topics = tuple(metadata[name] for name in sorted(metadata))
    return ConsumerGroupRecord(
        ConsumerGroupPartitionMetadataKey(group_id), ConsumerGroupPartitionMetadataValue(topics)
    )


def member_tombstones(group_id: str, member_id: str) -> list[ConsumerGroupRecord]:
    """Remove a member; the order matters (replay checks it), as in Kafka."""
    return [
        ConsumerGroupRecord(ConsumerGroupCurrentMemberAssignmentKey(group_id, member_id), None),
        ConsumerGroupRecord(ConsumerGroupTargetAssignmentMemberKey(group_id, member_id), None),
        ConsumerGroupRecord(ConsumerGroupMemberMetadataKey(group_id, member_id), None),
    ]


# --- the group ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerGroupMember] = field(default_factory=dict)
    subscription_metadata: dict[str, TopicMetadata] = field(default_factory=dict)
    target_assignment: dict[str, Assignment] = field(default_factory=dict)
    # Derived from the members, kept for lookups: instance id -> member id, and the epoch of
    # the member that owns each partition.
    static_members: dict[str, str] = field(default_factory=dict)
    partition_epochs: dict[tuple[TopicId, int], int] = field(default_factory=dict)

    @property
    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        if all(m.is_reconciled_to(self.assignment_epoch) for m in self.members.values()):
            return ConsumerGroupState.STABLE
        return ConsumerGroupState.RECONCILING

    # --- lookups --------------------------------------------------------------------------------

    def static_member(self, instance_id: str) -> ConsumerGroupMember | None:
        member_id = self.static_members.get(instance_id)
        return None if member_id is None else self.members[member_id]

    def partition_epoch(self, topic_id: TopicId, partition: int) -> int:
        """The epoch of the member owning the partition, or -1 when no member owns it."""
        return self.partition_epochs.get((topic_id, partition), -1)

    def target_of(self, member_id: str, instance_id: str | None) -> Assignment:
        """A member's target; a static member's is its instance's (it may have a new id)."""
        if instance_id is not None:
            member_id = self.static_members.get(instance_id, member_id)
        return self.target_assignment.get(member_id, {})

    def subscribed_topic_names(
        self,
        without: str | None = None,
        extra: ConsumerGroupMember | None = None,
        topic_names: Iterable[str] = (),
    ) -> set[str]:
        """Topics some member subscribes to, leaving out `without` and adding `extra`;
        regular expressions select among `topic_names`."""
        members = [m for member_id, m in self.members.items() if member_id != without]
        if extra is not None:
            members.append(extra)
        if any(m.subscribed_topic_regex for m in members):
            topic_names = list(topic_names)
        names: set[str] = set()
        for member in members:
            names |= member.subscribed_topics(topic_names)
        return names

    def preferred_assignor(
        self, default: str, without: str | None = None, extra: ConsumerGroupMember | None = None
    ) -> str:
        """The server assignor most members ask for (ties: the first by name), else `default`."""
        counts: dict[str, int] = {}
        members = [m for mid, m in self.members.items() if mid != without]
        if extra is not None:
            members.append(extra)
        for member in members:
            if member.server_assignor is not None:
                counts[member.server_assignor] = counts.get(member.server_assignor, 0) + 1
        if not counts:
            return default
        return min(counts, key=lambda name: (-counts[name], name))

    # --- replay ---------------------------------------------------------------------------------

    def replay(self, record: ConsumerGroupRecord) -> None:
        """Apply one record of this group. Deleting the group itself is the caller's business
        (a ConsumerGroupMetadata tombstone: see `ConsumerGroupManager.replay`)."""
        key, value = record.key, record.value
        if isinstance(key, ConsumerGroupMetadataKey):
            if value is not None:
                assert isinstance(value, ConsumerGroupMetadataValue)
                self.group_epoch = value.epoch
        elif isinstance(key, ConsumerGroupPartitionMetadataKey):
            if value is None:
                self.subscription_metadata = {}
            else:
                assert isinstance(value, ConsumerGroupPartitionMetadataValue)
                self.subscription_metadata = {topic.name: topic for topic in value.topics}
        elif isinstance(key, ConsumerGroupMemberMetadataKey):
            self._replay_member_metadata(key.member_id, value)
        elif isinstance(key, ConsumerGroupTargetAssignmentMemberKey):
            if value is None:
                self.target_assignment.pop(key.member_id, None)
            else:
                assert isinstance(value, ConsumerGroupTargetAssignmentMemberValue)
                assignment = from_topic_partitions(value.topic_partitions)
                self.target_assignment[key.member_id] = assignment
        elif isinstance(key, ConsumerGroupTargetAssignmentMetadataKey):
            if value is None:
                if self.target_assignment:
                    raise IllegalStateError(
                        f"group {self.group_id}: target assignment epoch deleted while the "
                        f"target still has {len(self.target_assignment)} members"
                    )
                self.assignment_epoch = -1
            else:
                assert isinstance(value, ConsumerGroupTargetAssignmentMetadataValue)
                self.assignment_epoch = value.assignment_epoch
        else:
            self._replay_current_assignment(key.member_id, value)

    def _replay_member_metadata(self, member_id: str, value: object) -> None:
        old = self.members.get(member_id)
        if value is None:
            if old is None:
                return
            if old.member_epoch != LEAVE_GROUP_MEMBER_EPOCH:
                raise IllegalStateError(
                    f"group {self.group_id}: member {member_id} deleted before its current "
                    "assignment"
                )
            if member_id in self.target_assignment:
                raise IllegalStateError(
                    f"group {self.group_id}: member {member_id} deleted before its target"
                )
            self._put(old, None)
            return
        assert isinstance(value, ConsumerGroupMemberMetadataValue)
        new = replace(
            old or ConsumerGroupMember(member_id),
            instance_id=value.instance_id,
            rack_id=value.rack_id,
            client_id=value.client_id,
            client_host=value.client_host,
            subscribed_topic_names=frozenset(value.subscribed_topic_names),
            subscribed_topic_regex=value.subscribed_topic_regex,
            rebalance_timeout_ms=value.rebalance_timeout_ms,
            server_assignor=value.server_assignor,
        )
        self._put(old, new)

    def _replay_current_assignment(self, member_id: str, value: object) -> None:
        old = self.members.get(member_id)
        if value is None:
            if old is None:
                return
            new = replace(
                old,
                member_epoch=LEAVE_GROUP_MEMBER_EPOCH,
                previous_member_epoch=LEAVE_GROUP_MEMBER_EPOCH,
                assigned_partitions={},
                partitions_pending_revocation={},
            )
        else:
            assert isinstance(value, ConsumerGroupCurrentMemberAssignmentValue)
            new = replace(
                old or ConsumerGroupMember(member_id),
                member_epoch=value.member_epoch,
                previous_member_epoch=value.previous_member_epoch,
                state=MemberState.from_value(value.state),
                assigned_partitions=from_topic_partitions(value.assigned_partitions),
                partitions_pending_revocation=from_topic_partitions(
                    value.partitions_pending_revocation
                ),
            )
        self._put(old, new)

    def _put(self, old: ConsumerGroupMember | None, new: ConsumerGroupMember | None) -> None:
        """Replace `old` by `new` (either may be None), keeping the derived maps in step."""
        if old is not None:
            for position in old.owned():
                if self.partition_epochs.get(position) != old.member_epoch:
                    raise IllegalStateError(
                        f"group {self.group_id}: {position[0].hex()}-{position[1]} is not owned "
                        f"at epoch {old.member_epoch} by {old.member_id}"
                    )
                del self.partition_epochs[position]
            del self.members[old.member_id]
            if old.instance_id is not None and self.static_members.get(old.instance_id) == (
                old.member_id
            ):
                del self.static_members[old.instance_id]
        if new is not None:
            for position in new.owned():
                if position in self.partition_epochs:
                    raise IllegalStateError(
                        f"group {self.group_id}: {position[0].hex()}-{position[1]} given to "
                        f"{new.member_id} while owned at epoch {self.partition_epochs[position]}"
                    )
                self.partition_epochs[position] = new.member_epoch
            self.members[new.member_id] = new
            if new.instance_id is not None:
                self.static_members[new.instance_id] = new.member_id
