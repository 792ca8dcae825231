"""How one member moves from its current assignment toward its target: Kafka's
CurrentAssignmentBuilder, as a pure function.

    STABLE                 reconciled at its epoch. When the assignment epoch moves on, the
                           next step is computed.
    UNREVOKED_PARTITIONS   the member must first give up `partitions_pending_revocation`. It
                           stays at its epoch until a heartbeat lists owned partitions without
                           any of them (a heartbeat without the list counts as still owning);
                           then it takes the next epoch and the next step is computed.
    UNRELEASED_PARTITIONS  at the target epoch, but some of its target partitions are still
                           owned by other members; each heartbeat hands over those released.
    UNKNOWN                a state written by a newer version: the member is fenced unless it
                           says it owns nothing, and then it is reconciled from scratch.

The next step, for a target at epoch E:

    assigned  = current ∩ target
    revoke    = current - target
    new       = target - current, less partitions another member still owns (epoch != -1)
    revoke non-empty and still owned  -> UNREVOKED_PARTITIONS, same epoch, assigned, revoke
    else new non-empty                -> epoch E, assigned + new,
                                         UNRELEASED_PARTITIONS if some were held back, else STABLE
    else                              -> epoch E, UNRELEASED_PARTITIONS if held back, else STABLE

So a partition is never handed out before its previous owner has revoked it, and the member's
epoch only moves once it owns nothing outside its target. Bumping the epoch keeps the old one as
`previous_member_epoch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from odradek.coordinator.group.consumer_group import ConsumerGroupMember, MemberState
from odradek.coordinator.group.consumer_group_records import Assignment, TopicId

# The partitions a heartbeat says its member owns: (topic id, partitions) pairs, or None when
# the request left the field out (it did not change since the last heartbeat).
OwnedPartitions = Sequence[tuple[TopicId, Sequence[int]]] | None
PartitionEpoch = Callable[[TopicId, int], int]


class FencedMemberEpochError(Exception):
    pass


def owns_any(owned: OwnedPartitions, partitions: Assignment) -> bool:
    """Does the member still own one of `partitions`? Unknown (None) counts as yes."""
    if owned is None:
        return True
    for topic_id, owned_partitions in owned:
        pending = partitions.get(topic_id)
        if pending and any(partition in pending for partition in owned_partitions):
            return True
    return False


def is_subset(owned: OwnedPartitions, assigned: Assignment) -> bool:
    """Does the member own only assigned partitions? (Kafka's rule, topic by topic: a listed
    topic the member is not assigned fails even with no partitions.)"""
    if owned is None:
        return False
    for topic_id, owned_partitions in owned:
        partitions = assigned.get(topic_id)
        if partitions is None:
            return False
        if any(partition not in partitions for partition in owned_partitions):
            return False
    return True


def reconcile(
    member: ConsumerGroupMember,
    target_epoch: int,
    target: Assignment,
    partition_epoch: PartitionEpoch,
    owned: OwnedPartitions,
) -> ConsumerGroupMember:
    """The member's next state toward `target` (the member itself when it cannot move)."""
    if member.state == MemberState.STABLE:
        if member.member_epoch == target_epoch:
            return member
        return _next_step(member, member.member_epoch, target_epoch, target, partition_epoch, owned)
    if member.state == MemberState.UNREVOKED_PARTITIONS:
        if owns_any(owned, member.partitions_pending_revocation):
            return member
        return _next_step(
            member, member.member_epoch + 1, target_epoch, target, partition_epoch, owned
        )
    if member.state == MemberState.UNRELEASED_PARTITIONS:
        return _next_step(member, member.member_epoch, target_epoch, target, partition_epoch, owned)
    if owned is None or len(owned) > 0:
        raise FencedMemberEpochError(
            "The consumer group member is in a unknown state. The member must abandon all its "
            "partitions and rejoin."
        )
    return _next_step(member, target_epoch, target_epoch, target, partition_epoch, owned)


def _with_epoch(member: ConsumerGroupMember, epoch: int) -> ConsumerGroupMember:
    return replace(member, member_epoch=epoch, previous_member_epoch=member.member_epoch)


def _next_step(
    member: ConsumerGroupMember,
    member_epoch: int,
    target_epoch: int,
    target: Assignment,
    partition_epoch: PartitionEpoch,
    owned: OwnedPartitions,
) -> ConsumerGroupMember:
    current = member.assigned_partitions
    assigned: dict[TopicId, frozenset[int]] = {}
    revoke: dict[TopicId, frozenset[int]] = {}
    new: dict[TopicId, frozenset[int]] = {}
    held_back = False
    for topic_id in sorted(set(target) | set(current)):
        wanted = target.get(topic_id, frozenset())
        have = current.get(topic_id, frozenset())
        keep = have & wanted
        gone = have - keep
        free = frozenset(p for p in wanted - keep if partition_epoch(topic_id, p) == -1)
        held_back = held_back or len(free) < len(wanted - keep)
        if keep:
            assigned[topic_id] = keep
        if gone:
            revoke[topic_id] = gone
        if free:
            new[topic_id] = free

    if revoke and owns_any(owned, revoke):
        return replace(
            _with_epoch(member, member_epoch),
            state=MemberState.UNREVOKED_PARTITIONS,
            assigned_partitions=assigned,
            partitions_pending_revocation=revoke,
        )
    for topic_id, partitions in new.items():
        assigned[topic_id] = assigned.get(topic_id, frozenset()) | partitions
    return replace(
        _with_epoch(member, target_epoch),
        state=MemberState.UNRELEASED_PARTITIONS if held_back else MemberState.STABLE,
        assigned_partitions=assigned,
        partitions_pending_revocation={},
    )
