"""Server-side partition assignors of the consumer group protocol (KIP-848): "uniform", "range".

An assignor maps the members of a group to their target assignment. Everything is keyed by
topic id (16 bytes), as Kafka's assignors, the target assignment records and the
ConsumerGroupHeartbeat response are; the group resolves subscribed topic names to ids before
calling one, and topics that do not exist are simply not subscribed.

    inputs   members:     member id -> MemberSubscription (subscribed topic ids, the member's
                          current target assignment, instance id, rack id)
             partitions:  topic id -> partition count, for every subscribed topic
    output   member id -> {topic id: frozenset of partitions}, for every member (maybe empty)

Both are deterministic: the same inputs give the same output, whatever the order of the
mappings. Neither reads anything else.

**uniform** (Kafka's default) is balanced first and sticky second. When every member subscribes
to the same topics, partition counts of any two members differ by at most one, and a member
keeps every partition of its current assignment that its quota allows. Kafka hands the
"one extra partition" slots to members in iteration order; here they go to the members that
already hold the most, which keeps more partitions where they are. With different
subscriptions, unassigned partitions go topic by topic (most partitions per subscriber first)
to the least loaded subscriber, then partitions move from the most to the least loaded
subscriber of each topic until no such move can narrow a gap of two or more, the local
balance Kafka's heterogeneous builder reaches.

**range** is Kafka's range assignor: per topic, the subscribers (static members first, by
instance id, then the others by member id) get contiguous ranges, the first
`partitions % subscribers` of them one partition more. When all members subscribe to the same
topics and the topics have the same partition count, every member gets the same partition
numbers of every topic (co-partitioning). It is not sticky, as in Kafka.

Rack-aware placement is not done (Kafka 4 dropped it from these assignors too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

TopicId = bytes
Assignment = Mapping[TopicId, frozenset[int]]
GroupAssignment = dict[str, dict[TopicId, frozenset[int]]]

UNIFORM = "uniform"
RANGE = "range"


class PartitionAssignorError(Exception):
    """The inputs cannot be assigned (a subscribed topic has no partition count)."""


@dataclass(frozen=True, slots=True)
class MemberSubscription:
    subscribed_topic_ids: frozenset[TopicId]
    assignment: Assignment = field(default_factory=dict)
    instance_id: str | None = None
    rack_id: str | None = None


Assignor = Callable[[Mapping[str, MemberSubscription], Mapping[TopicId, int]], GroupAssignment]


def _check_topics(
    members: Mapping[str, MemberSubscription], partitions: Mapping[TopicId, int]
) -> None:
    for member_id, member in members.items():
        for topic_id in member.subscribed_topic_ids:
            if topic_id not in partitions:
                raise PartitionAssignorError(
                    f"member {member_id} subscribes to topic {topic_id.hex()}, which has no "
                    "partition count"
                )


def _freeze(assignment: dict[TopicId, set[int]]) -> dict[TopicId, frozenset[int]]:
    return {topic: frozenset(parts) for topic, parts in sorted(assignment.items()) if parts}


# --- uniform ------------------------------------------------------------------------------------


def _retained(
    members: Mapping[str, MemberSubscription], partitions: Mapping[TopicId, int]
) -> dict[str, list[tuple[TopicId, int]]]:
    """Each member's current partitions that it may keep: still subscribed, still existing, and
    not already kept by a member earlier in member-id order (a target assignment never holds a
    partition twice, but the assignor does not rely on it)."""
    claimed: set[tuple[TopicId, int]] = set()
    kept: dict[str, list[tuple[TopicId, int]]] = {}
    for member_id in sorted(members):
        member = members[member_id]
        mine: list[tuple[TopicId, int]] = []
        for topic_id in sorted(member.assignment):
            if topic_id not in member.subscribed_topic_ids:
                continue
            for partition in sorted(member.assignment[topic_id]):
                position = (topic_id, partition)
                if 0 <= partition < partitions[topic_id] and position not in claimed:
                    claimed.add(position)
                    mine.append(position)
        kept[member_id] = mine
    return kept


def _uniform_homogeneous(
    members: Mapping[str, MemberSubscription], partitions: Mapping[TopicId, int]
) -> GroupAssignment:
    topics = sorted(next(iter(members.values())).subscribed_topic_ids)
    total = sum(partitions[topic] for topic in topics)
    minimum, extra = divmod(total, len(members))
    kept = _retained(members, partitions)
    # The members holding the most get the slots for one more partition: fewer moves.
    by_holding = sorted(members, key=lambda member_id: (-len(kept[member_id]), member_id))
    quota = {
        member_id: minimum + (1 if rank < extra else 0) for rank, member_id in enumerate(by_holding)
    }
    result: dict[str, dict[TopicId, set[int]]] = {member_id: {} for member_id in members}
    taken: set[tuple[TopicId, int]] = set()
    for member_id in sorted(members):
        for topic_id, partition in kept[member_id][: quota[member_id]]:
            result[member_id].setdefault(topic_id, set()).add(partition)
            taken.add((topic_id, partition))
        quota[member_id] -= min(quota[member_id], len(kept[member_id]))
    free = [
        (topic_id, partition)
        for topic_id in topics
        for partition in range(partitions[topic_id])
        if (topic_id, partition) not in taken
    ]
    position = 0
    for member_id in sorted(members):
        for topic_id, partition in free[position : position + quota[member_id]]:
            result[member_id].setdefault(topic_id, set()).add(partition)
        position += quota[member_id]
    assert position == len(free), "uniform assignor left partitions unassigned"
    return {member_id: _freeze(assignment) for member_id, assignment in result.items()}


def _uniform_heterogeneous(
    members: Mapping[str, MemberSubscription], partitions: Mapping[TopicId, int]
) -> GroupAssignment:
    subscribers: dict[TopicId, list[str]] = {}
    for member_id in sorted(members):
        for topic_id in members[member_id].subscribed_topic_ids:
            subscribers.setdefault(topic_id, []).append(member_id)
    # Topics with the most partitions per subscriber first, then the fewest subscribers.
    topics = sorted(
        subscribers,
        key=lambda t: (-partitions[t] / len(subscribers[t]), len(subscribers[t]), t),
    )
    owner: dict[tuple[TopicId, int], str] = {}
    load = dict.fromkeys(members, 0)
    for member_id, positions in _retained(members, partitions).items():
        for position in positions:
            owner[position] = member_id
        load[member_id] = len(positions)

    for topic_id in topics:
        candidates = subscribers[topic_id]
        for partition in range(partitions[topic_id]):
            if (topic_id, partition) not in owner:
                least = min(candidates, key=lambda m: (load[m], m))
                owner[(topic_id, partition)] = least
                load[least] += 1

    # Kafka stops after 16 rounds; here the rounds go on until one moves nothing. Each move
    # narrows a gap of two or more, which strictly lowers the sum of squared loads, so it ends.
    moved = True
    while moved:
        moved = False
        for topic_id in topics:
            candidates = subscribers[topic_id]
            if len(candidates) < 2:
                continue
            held: dict[str, list[int]] = {m: [] for m in candidates}
            for partition in range(partitions[topic_id]):
                held[owner[(topic_id, partition)]].append(partition)
            while True:
                givers = [m for m in candidates if held[m]]
                if not givers:
                    break
                most = max(givers, key=lambda m: (load[m], m))
                least = min(candidates, key=lambda m: (load[m], m))
                if load[most] - load[least] <= 1:
                    break
                partition = held[most].pop()
                held[least].append(partition)
                owner[(topic_id, partition)] = least
                load[most] -= 1
                load[least] += 1
                moved = True

    result: dict[str, dict[TopicId, set[int]]] = {member_id: {} for member_id in members}
    for (topic_id, partition), member_id in owner.items():
        result[member_id].setdefault(topic_id, set()).add(partition)
    return {member_id: _freeze(assignment) for member_id, assignment in result.items()}


def assign_uniform(
    members: Mapping[str, MemberSubscription], partitions: Mapping[TopicId, int]
) -> GroupAssignment:
    if not members:
        return {}
    _check_topics(members, partitions)
    subscriptions = {member.subscribed_topic_ids for member in members.values()}
    if len(subscriptions) == 1:
        if not next(iter(subscriptions)):
            return {member_id: {} for member_id in members}
        return _uniform_homogeneous(members, partitions)
    return _uniform_heterogeneous(members, partitions)


# --- range --------------------------------------------------------------------------------------


def _range_order(members: Mapping[str, MemberSubscription]) -> list[str]:
    """Static members first, by instance id; then the others, by member id."""

    def key(member_id: str) -> tuple[int, str]:
        instance_id = members[member_id].instance_id
        return (0, instance_id) if instance_id is not None else (1, member_id)

    return sorted(members, key=key)


def assign_range(
    members: Mapping[str, MemberSubscription], partitions: Mapping[TopicId, int]
) -> GroupAssignment:
    if not members:
        return {}
    _check_topics(members, partitions)
    order = _range_order(members)
    result: dict[str, dict[TopicId, set[int]]] = {member_id: {} for member_id in members}
    topics = sorted({t for member in members.values() for t in member.subscribed_topic_ids})
    for topic_id in topics:
        subscribers = [m for m in order if topic_id in members[m].subscribed_topic_ids]
        minimum, extra = divmod(partitions[topic_id], len(subscribers))
        start = 0
        for rank, member_id in enumerate(subscribers):
            end = start + minimum + (1 if rank < extra else 0)
            if end > start:
                result[member_id][topic_id] = set(range(start, end))
            start = end
    return {member_id: _freeze(assignment) for member_id, assignment in result.items()}


ASSIGNORS: dict[str, Assignor] = {UNIFORM: assign_uniform, RANGE: assign_range}
