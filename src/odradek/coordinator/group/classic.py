"""A classic consumer group (JoinGroup/SyncGroup protocol): its members and its state.

States, as Kafka names them:

    Empty --join--> PreparingRebalance --all joined / rebalance timeout--> CompletingRebalance
    CompletingRebalance --leader's SyncGroup written--> Stable
    Stable / CompletingRebalance --join with new metadata, leave, expiry,
                                   a member that never synced--> PreparingRebalance
    PreparingRebalance --no member left--> Empty;   Empty --deleted or offsets expired--> Dead

A member is dynamic (the coordinator names it `client_id-uuid`) or static (`group.instance.id`,
named `instance_id-uuid`; the coordinator maps the instance id to its current member id and
fences older ones). When a join phase ends, dynamic members that did not rejoin are removed;
static ones stay in the new generation until their session ends, and the leader is always a
member that rejoined. Every member of the new generation must then send SyncGroup within the
rebalance timeout, even after the leader's SyncGroup made the group Stable.
Callbacks parked on a member are how delayed JoinGroup and SyncGroup responses are delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from odradek.coordinator.group.records import OffsetValue


class GroupState(StrEnum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


CONSUMER_PROTOCOL_TYPE = "consumer"


@dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    assignment: bytes = b""
    join_callback: Callable[[Any], None] | None = None
    sync_callback: Callable[[Any], None] | None = None
    is_new: bool = False  # joined in the current rebalance; not yet given a generation

    @property
    def awaiting_join(self) -> bool:
        return self.join_callback is not None

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata(self, protocol: str) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        raise KeyError(protocol)

    def vote(self, candidates: set[str]) -> str:
        """This member's most preferred protocol among those every member supports."""
        return next(name for name, _ in self.protocols if name in candidates)


@dataclass(slots=True)
class ClassicGroup:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation: int = 0
    protocol_type: str | None = None
    protocol: str | None = None
    leader: str | None = None
    current_state_timestamp: int = -1
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    pending_members: set[str] = field(default_factory=set)  # told MEMBER_ID_REQUIRED
    pending_sync_members: set[str] = field(default_factory=set)  # no SyncGroup this generation
    offsets: dict[tuple[str, int], OffsetValue] = field(default_factory=dict)
    offsets_in_flight: dict[tuple[str, int], int] = field(default_factory=dict)  # commits
    in_initial_delay: bool = False
    initial_delay_remaining_ms: int = 0
    joined_during_delay: bool = False

    def transition(self, state: GroupState, now_ms: int) -> None:
        self.state = state
        self.current_state_timestamp = now_ms

    # --- membership ---------------------------------------------------------------------------

    def add(self, member: Member) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member.member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        if self.leader is None:
            self.leader = member.member_id

    def remove(self, member_id: str) -> Member | None:
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        instance_id = member.group_instance_id
        if instance_id is not None and self.static_members.get(instance_id) == member_id:
            del self.static_members[instance_id]
        self.pending_sync_members.discard(member_id)
        if self.leader == member_id:
            self.leader = next(iter(self.members), None)
        return member

    def replace_static_member(self, instance_id: str, new_member_id: str) -> Member:
        """Give a static member a new member id; the old id is fenced from now on."""
        old_id = self.static_members[instance_id]
        member = self.members.pop(old_id)
        member.member_id = new_member_id
        member.is_new = False  # Kafka replaces it with a fresh, not new, member
        self.members[new_member_id] = member
        self.static_members[instance_id] = new_member_id
        if self.leader == old_id:
            self.leader = new_member_id
        if old_id in self.pending_sync_members:  # the instance still owes its SyncGroup
            self.pending_sync_members.discard(old_id)
            self.pending_sync_members.add(new_member_id)
        return member

    def is_static_member_fenced(self, member_id: str, instance_id: str | None) -> bool:
        if instance_id is None:
            return False
        known = self.static_members.get(instance_id)
        return known is not None and known != member_id

    def elect_joined_leader(self) -> bool:
        """Make the leader a member that rejoined; False if no member has rejoined."""
        leader = self.members.get(self.leader) if self.leader is not None else None
        if leader is not None and leader.awaiting_join:
            return True
        for member in self.members.values():
            if member.awaiting_join:
                self.leader = member.member_id
                return True
        return False

    def all_members_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    # --- protocols ----------------------------------------------------------------------------

    def candidate_protocols(self) -> set[str]:
        """Protocols every member supports."""
        members = list(self.members.values())
        if not members:
            return set()
        common = set(members[0].protocol_names())
        for member in members[1:]:
            common &= set(member.protocol_names())
        return common

    def supports(self, protocol_type: str, protocols: list[str], member_id: str = "") -> bool:
        """Can a member with these protocols join? An empty group takes any non-empty set.

        A group with members keeps its protocol type, even for its only member rejoining. That
        member's own protocols do not count (Kafka's do): a group's sole member may switch to
        protocols it did not offer before, as every member could if they rejoined together.
        """
        if not protocol_type or not protocols:
            return False
        if not self.members:
            return True
        if self.protocol_type != protocol_type:
            return False
        others = [m for mid, m in self.members.items() if mid != member_id]
        return any(all(name in m.protocol_names() for m in others) for name in protocols)

    def select_protocol(self) -> str:
        """Each member votes for its favourite common protocol; the most votes win.

        Ties go to the protocol the leader prefers, so the choice is deterministic.
        """
        candidates = self.candidate_protocols()
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = member.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        best = max(votes.values())
        preference = self.members[self.leader].protocol_names() if self.leader else []
        ranked = sorted(
            (name for name, count in votes.items() if count == best),
            key=lambda name: preference.index(name) if name in preference else len(preference),
        )
        return ranked[0]

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to, when the group speaks the consumer protocol."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE or self.protocol is None:
            return None
        from odradek.coordinator.group.consumer_protocol import subscription_topics

        topics: set[str] = set()
        for member in self.members.values():
            try:
                topics.update(subscription_topics(member.metadata(self.protocol)))
            except (KeyError, ValueError):
                return None
        return topics
