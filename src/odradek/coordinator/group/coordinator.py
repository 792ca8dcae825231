"""The group coordinator core: classic groups, consumer groups (KIP-848, in
`consumer_groups.py`) and committed offsets (`offsets.py`), without I/O.

Every entry point takes `now_ms` and a `respond` callback, and may queue `Write`s: records for a
partition of `__consumer_offsets`. The driver (`coordinator/runtime.py`) appends each write,
waits until it is durable, and calls its `on_done(error)`; responses that depend on a write are
sent from there. Committed offsets change only when their records are replayed (`replay`, also
how the state is rebuilt at load). Membership is the exception, as in Kafka: it lives in memory
and the coordinator persists a snapshot of it (the group metadata record) at the end of each
rebalance, which is what a restarted coordinator loads.

Timers (`poll`) fire session timeouts (a member parked in JoinGroup or SyncGroup needs no
heartbeat, unless it is new and has waited the new-member join timeout), rebalance timeouts,
the initial rebalance delay, the sync timeout (members that never came for their assignment)
and the expiry of members told MEMBER_ID_REQUIRED who never came back. `on_done` carries no
time: what a write's completion does happens at the latest `now_ms` the core was given.

The rules follow Kafka's classic group coordinator: see the docstring of `classic.py` for the
state machine; error codes are the ones Kafka returns in each state.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial

from odradek.common.errors import ErrorCode
from odradek.common.timers import Timers
from odradek.coordinator.group.classic import (
    ClassicGroup,
    GroupState,
    Member,
)
from odradek.coordinator.group.consumer_group_manager import (
    ConsumerGroupConfig,
    ConsumerGroupManager,
)
from odradek.coordinator.group.consumer_group_records import TopicMetadata
from odradek.coordinator.group.consumer_groups import ConsumerGroupOps
from odradek.coordinator.group.messages import (
    GroupConfig,
    JoinRequest,
    JoinResult,
    Record,
    SyncResult,
    TimerKey,
    TopicPartition,
    Write,
    write_error_for_group,
)
from odradek.coordinator.group.offsets import CommittedOffsets, GroupOffsets
from odradek.coordinator.group.records import (
    GroupKey,
    GroupValue,
    MemberValue,
    OffsetKey,
    OffsetValue,
    decode,
    decode_consumer_group_record,
    encode_key,
    encode_value,
    group_partition,
    key_version,
)
from odradek.coordinator.group.transactional_offsets import PendingOffset, TransactionalOffsets

FIRST_CONSUMER_GROUP_KEY_VERSION = 3


@dataclass(frozen=True, slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str
    group_type: str  # "classic" or "consumer"


class GroupCoordinator(GroupOffsets, TransactionalOffsets, ConsumerGroupOps):
    def __init__(
        self,
        config: GroupConfig | None = None,
        consumer_config: ConsumerGroupConfig | None = None,
        topics: Callable[[], Mapping[str, TopicMetadata]] = dict,
    ) -> None:
        self.config = config or GroupConfig()
        self.groups: dict[str, ClassicGroup] = {}
        self.offsets: dict[str, CommittedOffsets] = {}
        self.pending_offsets: dict[int, dict[str, dict[TopicPartition, PendingOffset]]] = {}
        self.open_transactions: dict[str, set[int]] = {}
        self.consumer = ConsumerGroupManager(consumer_config)
        # The topics of the current metadata image (consumer groups subscribe to them).
        self.topics = topics
        self._queues: dict[str, deque[Callable[[], bool]]] = {}
        self.writes: list[Write] = []
        self.timers: Timers[TimerKey] = Timers()
        # The latest now_ms any entry point was given. A write's on_done comes without a time,
        # so what it does (a session to renew, a state to enter) happens at this instant rather
        # than at the time of the request that queued the write, which may be long past.
        self.latest_ms = 0

    def _seen(self, now_ms: int) -> None:
        self.latest_ms = max(self.latest_ms, now_ms)

    # --- loading ------------------------------------------------------------------------------

    def replay(
        self, key: bytes, value: bytes | None, record_offset: int = -1, producer_id: int = -1
    ) -> None:
        """Apply one record of `__consumer_offsets` (at load, and after each write), at log
        offset `record_offset`; `producer_id` is the producer of a transactional batch."""
        if key_version(key) >= FIRST_CONSUMER_GROUP_KEY_VERSION:
            record = decode_consumer_group_record(key, value)
            if record is not None:
                self._replay_consumer_group_record(record)
            return
        decoded = decode(key, value)
        if decoded is None:
            return
        record_key, record_value = decoded
        if isinstance(record_key, OffsetKey):
            assert record_value is None or isinstance(record_value, OffsetValue)
            self.replay_offset(record_key, record_value, record_offset, producer_id)
            return
        assert isinstance(record_key, GroupKey)
        if record_value is None:
            self.groups.pop(record_key.group, None)
            return
        assert isinstance(record_value, GroupValue)
        if record_key.group in self.consumer.groups:
            raise ValueError(f"a classic group record for {record_key.group}, a consumer group")
        group = self.groups.get(record_key.group) or ClassicGroup(record_key.group)
        self.groups[record_key.group] = group
        # Kafka writes "" for a group that has no protocol type yet (a new or simple group);
        # such a group expires its offsets by commit time, like one that never had members.
        group.protocol_type = record_value.protocol_type or None
        group.generation = record_value.generation
        group.protocol = record_value.protocol
        group.leader = record_value.leader
        group.current_state_timestamp = record_value.current_state_timestamp
        group.members = {}
        group.static_members = {}
        for stored in record_value.members:
            group.add(
                Member(
                    stored.member_id,
                    stored.group_instance_id,
                    stored.client_id,
                    stored.client_host,
                    # v0 records have no rebalance timeout: Kafka uses the session timeout
                    stored.rebalance_timeout_ms
                    if stored.rebalance_timeout_ms >= 0
                    else stored.session_timeout_ms,
                    stored.session_timeout_ms,
                    record_value.protocol_type,
                    ((record_value.protocol or "", stored.subscription),),
                    stored.assignment,
                )
            )
        group.leader = record_value.leader if group.members else None
        group.state = GroupState.STABLE if group.members else GroupState.EMPTY

    def finish_loading(self, now_ms: int) -> None:
        """Loaded members must heartbeat within their session timeout, or they are removed.

        A group loaded with more members than group.max.size (lowered since) rebalances, so
        the members that rejoin last are refused.
        """
        self._seen(now_ms)
        for group in self.groups.values():
            for member in group.members.values():
                self._schedule_heartbeat(group, member, now_ms)
            if len(group.members) > self.config.max_size:
                self._prepare_rebalance(group, now_ms)
        self.consumer.finish_loading(now_ms)

    # --- timers -------------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        deadlines = [self.timers.next_deadline(), self.consumer.next_deadline()]
        return min((d for d in deadlines if d is not None), default=None)

    def poll(self, now_ms: int) -> None:
        self._seen(now_ms)
        # One key at a time: a handler may reschedule a timer that is due in this same poll
        # (completing a join reschedules every member's session), and that one must not fire.
        while (key := self.timers.pop_expired(now_ms)) is not None:
            kind, group_id, member_id = key
            group = self.groups.get(group_id)
            if group is None:
                continue
            if kind == "heartbeat":
                self._on_heartbeat_expired(group, member_id, now_ms)
            elif kind == "pending":
                if member_id in group.pending_members:
                    self._remove_pending_member(group, member_id, now_ms)
            elif kind == "join":
                self._on_join_timeout(group, now_ms)
            elif kind == "sync":
                self._on_sync_timeout(group, int(member_id), now_ms)
        while (expiry := self.consumer.pop_expired(now_ms)) is not None:
            self._serialized(expiry.group_id, partial(self._on_consumer_expiry, expiry))

    def _schedule_heartbeat(
        self, group: ClassicGroup, member: Member, now_ms: int, timeout_ms: int | None = None
    ) -> None:
        key = ("heartbeat", group.group_id, member.member_id)
        self.timers.schedule(key, now_ms + (timeout_ms or member.session_timeout_ms))

    def _on_heartbeat_expired(self, group: ClassicGroup, member_id: str, now_ms: int) -> None:
        member = group.members.get(member_id)
        if member is None:
            return
        if not member.is_new and (member.awaiting_join or member.sync_callback is not None):
            # A member parked in JoinGroup or SyncGroup cannot heartbeat: the rebalance and
            # sync timeouts decide for it. A new member's parked join may outlive its client.
            self._schedule_heartbeat(group, member, now_ms)
            return
        self._remove_member(group, member_id, now_ms)

    # --- JoinGroup ----------------------------------------------------------------------------

    def join_group(
        self, request: JoinRequest, now_ms: int, respond: Callable[[JoinResult], None]
    ) -> None:
        self._seen(now_ms)
        if not request.group_id:
            respond(JoinResult(ErrorCode.INVALID_GROUP_ID, request.member_id))
            return
        config = self.config
        if not (
            config.min_session_timeout_ms
            <= request.session_timeout_ms
            <= config.max_session_timeout_ms
        ):
            respond(JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, request.member_id))
            return
        if not self._replace_empty_consumer_group(request.group_id):
            respond(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, request.member_id))
            return
        group = self.groups.get(request.group_id)
        if group is None:
            if request.member_id:
                respond(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, request.member_id))
                return
            group = ClassicGroup(request.group_id, current_state_timestamp=now_ms)
        if group.state == GroupState.DEAD:
            respond(JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, request.member_id))
            return
        if not self._accepts_joining_member(group, request):
            self._forget_refused_member(group, request.member_id, now_ms)
            respond(JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED))
            return
        names = [name for name, _ in request.protocols]
        if not group.supports(request.protocol_type, names, request.member_id):
            respond(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, request.member_id))
            return
        self.groups.setdefault(group.group_id, group)
        if request.member_id:
            self._join_known_member(group, request, now_ms, respond)
        else:
            self._join_unknown_member(group, request, now_ms, respond)

    def _accepts_joining_member(self, group: ClassicGroup, request: JoinRequest) -> bool:
        """group.max.size, as Kafka's acceptJoiningMember applies it.

        An empty group takes anyone. While preparing a rebalance, members already waiting are
        kept and others come in while fewer than the maximum wait: counting waiting members,
        not members, lets a group over a lowered maximum shed the last to rejoin. Otherwise
        members come back and newcomers come in while the group is below the maximum. Members
        told MEMBER_ID_REQUIRED do not count until they join with their id.
        """
        if group.state == GroupState.EMPTY:
            return True
        instance_id = request.group_instance_id
        if (
            not request.member_id
            and instance_id is not None
            and instance_id in group.static_members
        ):
            return True  # a static member replacing itself does not grow the group
        member = group.members.get(request.member_id) if request.member_id else None
        max_size = self.config.max_size
        if group.state == GroupState.PREPARING_REBALANCE:
            if member is not None and member.awaiting_join:
                return True
            return sum(m.awaiting_join for m in group.members.values()) < max_size
        return member is not None or len(group.members) < max_size

    def _forget_refused_member(self, group: ClassicGroup, member_id: str, now_ms: int) -> None:
        if member_id in group.pending_members:
            self._remove_pending_member(group, member_id, now_ms)
        elif member_id in group.members:
            self._remove_member(group, member_id, now_ms)

    def _join_unknown_member(
        self,
        group: ClassicGroup,
        request: JoinRequest,
        now_ms: int,
        respond: Callable[[JoinResult], None],
    ) -> None:
        instance_id = request.group_instance_id
        # Kafka names a static member after its instance, so tools show which one it is
        new_member_id = f"{instance_id or request.client_id}-{uuid.uuid4()}"
        if instance_id is not None and instance_id in group.static_members:
            self._rejoin_static_member(group, request, new_member_id, now_ms, respond)
            return
        if instance_id is None and request.require_known_member_id:
            group.pending_members.add(new_member_id)
            self.timers.schedule(
                ("pending", group.group_id, new_member_id), now_ms + request.session_timeout_ms
            )
            respond(JoinResult(ErrorCode.MEMBER_ID_REQUIRED, new_member_id))
            return
        self._add_member_and_rebalance(group, request, new_member_id, now_ms, respond)

    def _join_known_member(
        self,
        group: ClassicGroup,
        request: JoinRequest,
        now_ms: int,
        respond: Callable[[JoinResult], None],
    ) -> None:
        member_id = request.member_id
        if member_id in group.pending_members:
            group.pending_members.discard(member_id)
            self.timers.cancel(("pending", group.group_id, member_id))
            self._add_member_and_rebalance(group, request, member_id, now_ms, respond)
            return
        if group.is_static_member_fenced(member_id, request.group_instance_id):
            respond(JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id))
            return
        member = group.members.get(member_id)
        if member is None or group.state == GroupState.EMPTY:
            respond(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id))
            return
        unchanged = member.protocols == request.protocols
        if group.state == GroupState.PREPARING_REBALANCE:
            self._update_member(group, member, request, respond)
            self._maybe_complete_join(group, now_ms)
        elif group.state == GroupState.COMPLETING_REBALANCE:
            if unchanged:  # the join response was lost: send it again
                respond(self._join_result(group, member))
            else:
                self._update_member(group, member, request, respond)
                self._prepare_rebalance(group, now_ms)
        elif group.state == GroupState.STABLE:
            if member_id == group.leader or not unchanged:
                self._update_member(group, member, request, respond)
                self._prepare_rebalance(group, now_ms)
            else:
                self._schedule_heartbeat(group, member, now_ms)
                respond(self._join_result(group, member))

    def _rejoin_static_member(
        self,
        group: ClassicGroup,
        request: JoinRequest,
        new_member_id: str,
        now_ms: int,
        respond: Callable[[JoinResult], None],
    ) -> None:
        """A static member came back with a new member id: the old id is fenced (KIP-345).

        In a stable group whose protocol would not change, the member keeps its assignment and
        no rebalance happens; the new member id is persisted first, and if that write fails the
        old id stands again. A v9+ client that was the leader is told it leads but need not
        assign (KIP-814), so it still watches for metadata changes; an older one is named the
        old leader id, so it acts as a follower and asks for its stored assignment.
        """
        assert request.group_instance_id is not None
        instance_id = request.group_instance_id
        old_member_id = group.static_members[instance_id]
        current_leader = group.leader or ""
        old = group.members[old_member_id]
        if old.join_callback is not None:
            old.join_callback(JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_member_id))
            old.join_callback = None
        if old.sync_callback is not None:
            old.sync_callback(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
            old.sync_callback = None
        self.timers.cancel(("heartbeat", group.group_id, old_member_id))
        old_protocols = old.protocols
        member = group.replace_static_member(instance_id, new_member_id)
        self._schedule_heartbeat(group, member, now_ms)
        if group.state != GroupState.STABLE:
            self._update_member(group, member, request, respond)
            if group.state == GroupState.COMPLETING_REBALANCE:
                self._prepare_rebalance(group, now_ms)
            else:
                self._maybe_complete_join(group, now_ms)
            return
        old_timeouts = (member.rebalance_timeout_ms, member.session_timeout_ms)
        member.protocols = request.protocols
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.session_timeout_ms = request.session_timeout_ms
        if group.select_protocol() != group.protocol:
            member.join_callback = respond
            self._prepare_rebalance(group, now_ms)
            return
        generation = group.generation
        # Until the new id is durable the member waits in the join phase, as in Kafka: its
        # session is satisfied meanwhile, and a removal, a fencing or a rebalance that completes
        # first answers it instead.
        member.join_callback = respond

        def done(error: ErrorCode) -> None:
            if member.join_callback is not respond:
                return  # answered meanwhile
            member.join_callback = None
            if error != ErrorCode.NONE:
                if group.static_members.get(instance_id) == new_member_id:
                    # the old id, its settings and its session stand again
                    self.timers.cancel(("heartbeat", group.group_id, new_member_id))
                    group.replace_static_member(instance_id, old_member_id)
                    member.protocols = old_protocols
                    member.rebalance_timeout_ms, member.session_timeout_ms = old_timeouts
                    self._schedule_heartbeat(group, member, self.latest_ms)
                respond(JoinResult(write_error_for_group(error)))
                return
            skip_assignment = group.leader == new_member_id and request.version >= 9
            respond(
                JoinResult(
                    ErrorCode.NONE,
                    new_member_id,
                    generation,
                    group.protocol_type,
                    group.protocol,
                    (group.leader or "") if request.version >= 9 else current_leader,
                    self._member_list(group) if skip_assignment else (),
                    skip_assignment=skip_assignment,
                )
            )

        self._store_group(group, now_ms, done)

    def _add_member_and_rebalance(
        self,
        group: ClassicGroup,
        request: JoinRequest,
        member_id: str,
        now_ms: int,
        respond: Callable[[JoinResult], None],
    ) -> None:
        member = Member(
            member_id,
            request.group_instance_id,
            request.client_id,
            request.client_host,
            request.rebalance_timeout_ms,
            request.session_timeout_ms,
            request.protocol_type,
            request.protocols,
            join_callback=respond,
            is_new=True,
        )
        group.add(member)
        if group.in_initial_delay:
            group.joined_during_delay = True
        self._schedule_heartbeat(group, member, now_ms, self.config.new_member_join_timeout_ms)
        if group.state == GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join(group, now_ms)
        else:
            self._prepare_rebalance(group, now_ms)

    def _update_member(
        self,
        group: ClassicGroup,
        member: Member,
        request: JoinRequest,
        respond: Callable[[JoinResult], None],
    ) -> None:
        if member.join_callback is not None and member.join_callback is not respond:
            member.join_callback(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id))
        member.protocols = request.protocols
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.session_timeout_ms = request.session_timeout_ms
        member.client_id = request.client_id
        member.client_host = request.client_host
        member.join_callback = respond

    def _prepare_rebalance(self, group: ClassicGroup, now_ms: int) -> None:
        if group.state == GroupState.COMPLETING_REBALANCE:
            self._reset_assignments(group, ErrorCode.REBALANCE_IN_PROGRESS, now_ms)
        group.pending_sync_members.clear()
        self.timers.cancel(("sync", group.group_id, str(group.generation)))
        delay = self.config.initial_rebalance_delay_ms
        key = ("join", group.group_id, "")
        if group.state == GroupState.EMPTY and delay > 0:
            group.in_initial_delay = True
            group.joined_during_delay = False
            group.initial_delay_remaining_ms = max(group.rebalance_timeout_ms() - delay, 0)
            self.timers.schedule(key, now_ms + delay)
        else:
            group.in_initial_delay = False
            self.timers.schedule(key, now_ms + group.rebalance_timeout_ms())
        group.transition(GroupState.PREPARING_REBALANCE, now_ms)
        self._maybe_complete_join(group, now_ms)

    def _reset_assignments(self, group: ClassicGroup, error: ErrorCode, now_ms: int) -> None:
        for member in group.members.values():
            member.assignment = b""
            if member.sync_callback is not None:
                callback, member.sync_callback = member.sync_callback, None
                callback(SyncResult(error))
                # its session starts again now that it can heartbeat (it was not while parked)
                self._schedule_heartbeat(group, member, now_ms)

    def _maybe_complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        if group.state != GroupState.PREPARING_REBALANCE or group.in_initial_delay:
            return
        if group.all_members_joined():
            self._complete_join(group, now_ms)

    def _on_join_timeout(self, group: ClassicGroup, now_ms: int) -> None:
        if group.state != GroupState.PREPARING_REBALANCE:
            return
        if group.in_initial_delay:
            remaining = group.initial_delay_remaining_ms
            if group.joined_during_delay and remaining > 0:  # more may come: wait again
                delay = min(self.config.initial_rebalance_delay_ms, remaining)
                group.initial_delay_remaining_ms = remaining - delay
                group.joined_during_delay = False
                self.timers.schedule(("join", group.group_id, ""), now_ms + delay)
                return
            group.in_initial_delay = False
        self._complete_join(group, now_ms)

    def _complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        self.timers.cancel(("join", group.group_id, ""))
        group.in_initial_delay = False
        self._drop_members_that_did_not_rejoin(group)
        if group.members and not group.elect_joined_leader():
            # Only static members that did not rejoin are left: wait for them to rejoin or for
            # their sessions to end.
            self.timers.schedule(
                ("join", group.group_id, ""), now_ms + group.rebalance_timeout_ms()
            )
            return
        group.generation += 1
        if not group.members:
            group.protocol = None
            group.leader = None
            group.transition(GroupState.EMPTY, now_ms)
            self._store_group(group, now_ms, lambda error: None)
            return
        group.protocol = group.select_protocol()
        group.transition(GroupState.COMPLETING_REBALANCE, now_ms)
        for member in group.members.values():
            member.is_new = False
            callback, member.join_callback = member.join_callback, None
            if callback is not None:
                callback(self._join_result(group, member))
            self._schedule_heartbeat(group, member, now_ms)
        group.pending_sync_members = set(group.members)
        self.timers.schedule(
            ("sync", group.group_id, str(group.generation)), now_ms + group.rebalance_timeout_ms()
        )

    def _drop_members_that_did_not_rejoin(self, group: ClassicGroup) -> None:
        """Dynamic ones. Static ones stay (KIP-345): a static member that is restarting keeps
        its place until its session times out, and comes back to the generation it missed."""
        for member in list(group.members.values()):
            if not member.awaiting_join and member.group_instance_id is None:
                self.timers.cancel(("heartbeat", group.group_id, member.member_id))
                group.remove(member.member_id)

    def _join_result(self, group: ClassicGroup, member: Member) -> JoinResult:
        is_leader = member.member_id == group.leader
        return JoinResult(
            ErrorCode.NONE,
            member.member_id,
            group.generation,
            group.protocol_type,
            group.protocol,
            group.leader or "",
            self._member_list(group) if is_leader else (),
        )

    def _member_list(self, group: ClassicGroup) -> tuple[tuple[str, str | None, bytes], ...]:
        protocol = group.protocol or ""
        return tuple(
            (m.member_id, m.group_instance_id, m.metadata(protocol)) for m in group.members.values()
        )

    # --- SyncGroup ----------------------------------------------------------------------------

    def sync_group(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol: str | None,
        assignments: dict[str, bytes],
        now_ms: int,
        respond: Callable[[SyncResult], None],
    ) -> None:
        self._seen(now_ms)
        if not group_id:
            respond(SyncResult(ErrorCode.INVALID_GROUP_ID))
            return
        group = self.groups.get(group_id)
        if group is not None and group.state == GroupState.DEAD:
            respond(SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE))
            return
        if group is None or (
            member_id not in group.members
            and not group.is_static_member_fenced(member_id, group_instance_id)
        ):
            respond(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
            return
        if group.is_static_member_fenced(member_id, group_instance_id):
            respond(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
            return
        if generation != group.generation:
            respond(SyncResult(ErrorCode.ILLEGAL_GENERATION))
            return
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol is not None and protocol != group.protocol
        ):
            respond(SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
            return
        if group.state == GroupState.EMPTY:
            respond(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
            return
        if group.state == GroupState.PREPARING_REBALANCE:
            respond(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
            return
        member = group.members[member_id]
        self._schedule_heartbeat(group, member, now_ms)
        group.pending_sync_members.discard(member_id)
        if not group.pending_sync_members:
            self.timers.cancel(("sync", group.group_id, str(group.generation)))
        if group.state == GroupState.STABLE:
            respond(
                SyncResult(ErrorCode.NONE, group.protocol_type, group.protocol, member.assignment)
            )
            return
        # CompletingRebalance: park until the leader's assignment is written.
        if member.sync_callback is not None:
            member.sync_callback(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        member.sync_callback = respond
        if member_id != group.leader:
            return
        for other in group.members.values():
            other.assignment = assignments.get(other.member_id, b"")
        this_generation = group.generation

        def done(error: ErrorCode) -> None:
            if group.state != GroupState.COMPLETING_REBALANCE or (
                group.generation != this_generation
            ):
                return
            now_ms = self.latest_ms
            if error != ErrorCode.NONE:
                self._reset_assignments(group, write_error_for_group(error), now_ms)
                self._prepare_rebalance(group, now_ms)
                return
            group.transition(GroupState.STABLE, now_ms)
            for other in group.members.values():
                if other.sync_callback is not None:
                    callback, other.sync_callback = other.sync_callback, None
                    callback(
                        SyncResult(
                            ErrorCode.NONE, group.protocol_type, group.protocol, other.assignment
                        )
                    )
                    self._schedule_heartbeat(group, other, now_ms)

        self._store_group(group, now_ms, done)

    def _on_sync_timeout(self, group: ClassicGroup, generation: int, now_ms: int) -> None:
        """Members that never sent SyncGroup for this generation are removed; rebalance.

        This holds once the group is Stable too: a member the leader's SyncGroup did not wait
        for must still come for its assignment within the rebalance timeout.
        """
        if group.generation != generation or group.state not in (
            GroupState.COMPLETING_REBALANCE,
            GroupState.STABLE,
        ):
            return
        laggards = list(group.pending_sync_members)
        if not laggards:
            return
        for member_id in laggards:
            self.timers.cancel(("heartbeat", group.group_id, member_id))
            group.remove(member_id)
        self._prepare_rebalance(group, now_ms)

    # --- Heartbeat and LeaveGroup -------------------------------------------------------------

    def heartbeat(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        now_ms: int,
    ) -> ErrorCode:
        self._seen(now_ms)
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if group.is_static_member_fenced(member_id, group_instance_id):
            return ErrorCode.FENCED_INSTANCE_ID
        member = group.members.get(member_id)
        if member is None or group.state == GroupState.EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation != group.generation:
            return ErrorCode.ILLEGAL_GENERATION
        self._schedule_heartbeat(group, member, now_ms)
        if group.state == GroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave_group(
        self, group_id: str, leaving: list[tuple[str, str | None]], now_ms: int
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """Remove members given as (member id, group instance id): (group error, per member)."""
        self._seen(now_ms)
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, []
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.NONE, [ErrorCode.UNKNOWN_MEMBER_ID] * len(leaving)
        if group.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, []
        errors: list[ErrorCode] = []
        for member_id, instance_id in leaving:
            if instance_id is not None:
                known = group.static_members.get(instance_id)
                if known is None:
                    errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
                elif member_id and member_id != known:
                    errors.append(ErrorCode.FENCED_INSTANCE_ID)
                else:
                    errors.append(ErrorCode.NONE)
                    self._remove_member(group, known, now_ms)
            elif member_id in group.pending_members:
                errors.append(ErrorCode.NONE)
                self._remove_pending_member(group, member_id, now_ms)
            elif member_id in group.members:
                errors.append(ErrorCode.NONE)
                self._remove_member(group, member_id, now_ms)
            else:
                errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
        return ErrorCode.NONE, errors

    def _remove_pending_member(self, group: ClassicGroup, member_id: str, now_ms: int) -> None:
        """Forget a member told MEMBER_ID_REQUIRED; the join may have been waiting on it."""
        group.pending_members.discard(member_id)
        self.timers.cancel(("pending", group.group_id, member_id))
        self._maybe_complete_join(group, now_ms)

    def _remove_member(self, group: ClassicGroup, member_id: str, now_ms: int) -> None:
        self.timers.cancel(("heartbeat", group.group_id, member_id))
        member = group.remove(member_id)
        if member is None:
            return
        if member.join_callback is not None:
            callback, member.join_callback = member.join_callback, None
            callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id))
        if member.sync_callback is not None:
            callback, member.sync_callback = member.sync_callback, None
            callback(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now_ms)
        elif group.state == GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join(group, now_ms)

    # --- describe, list, delete ---------------------------------------------------------------

    def describe_group(self, group_id: str) -> ClassicGroup | None:
        return self.groups.get(group_id)

    def list_groups(
        self, states: Iterable[str] = (), types: Iterable[str] = ()
    ) -> list[ListedGroup]:
        """Groups of both kinds, filtered by state and type (case-insensitive)."""
        wanted_states = {s.lower().strip() for s in states}
        wanted_types = {t.lower().strip() for t in types}
        listed = [
            ListedGroup(g.group_id, g.protocol_type or "", g.state.value, "classic")
            for g in self.groups.values()
            if g.state != GroupState.DEAD
        ]
        listed.extend(
            ListedGroup(g.group_id, "consumer", g.state.value, "consumer")
            for g in self.consumer.groups.values()
        )
        return [
            g
            for g in listed
            if (not wanted_states or g.state.lower() in wanted_states)
            and (not wanted_types or g.group_type in wanted_types)
        ]

    def delete_groups(
        self, group_ids: list[str], now_ms: int, respond: Callable[[list[ErrorCode]], None]
    ) -> None:
        """Delete empty groups of either kind with their offsets; one error per group id."""
        self._seen(now_ms)
        errors = [ErrorCode.NONE] * len(group_ids)
        unsettled = [1]  # this call's own share, settled last: respond once, after every write

        def settle(index: int | None = None, error: ErrorCode = ErrorCode.NONE) -> None:
            if index is not None:
                errors[index] = error
            unsettled[0] -= 1
            if unsettled[0] == 0:
                respond(errors)

        for index, group_id in enumerate(group_ids):
            if not group_id:
                errors[index] = ErrorCode.INVALID_GROUP_ID
            elif group_id in self.consumer.groups:
                unsettled[0] += 1
                self._serialized(
                    group_id, partial(self._delete_consumer_group, group_id, partial(settle, index))
                )
            else:
                refused = self._delete_classic_group(group_id, index, settle)
                if refused is None:
                    unsettled[0] += 1
                else:
                    errors[index] = refused
        settle()

    def _delete_classic_group(
        self, group_id: str, index: int, settle: Callable[[int, ErrorCode], None]
    ) -> ErrorCode | None:
        """Queue the tombstones of an empty classic group (None), or say why not."""
        group = self.groups.get(group_id)
        if group is None or group.state == GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if group.state != GroupState.EMPTY:
            return ErrorCode.NON_EMPTY_GROUP
        state = self.offsets.get(group_id)
        # pending offsets of transactions get tombstones too (one per position), as in Kafka
        positions = set(state.values) if state is not None else set()
        records: list[Record] = [
            (encode_key(OffsetKey(group_id, topic, partition)), None)
            for topic, partition in sorted(positions | self.pending_positions(group_id))
        ]
        records.append((encode_key(GroupKey(group_id)), None))
        group.state = GroupState.DEAD  # not transition(): a failed write undoes this

        def done(error: ErrorCode) -> None:
            if error == ErrorCode.NONE:
                for key, value in records:
                    self.replay(key, value)
                settle(index, ErrorCode.NONE)
            else:
                group.state = GroupState.EMPTY  # nothing was deleted; the group lives on
                settle(index, write_error_for_group(error))

        self._write(group_id, records, done)
        return None

    # --- writes -------------------------------------------------------------------------------

    def partition_for(self, group_id: str) -> int:
        return group_partition(group_id, self.config.offsets_partitions)

    def unload(self, partition: int) -> set[str]:
        """Forget every group of `partition`, which another broker coordinates now (its state
        stays in the log, for that broker to load): groups, offsets, pending transactional
        offsets, queued operations and timers. Returns the ids of the groups forgotten."""
        known = (
            set(self.groups)
            | set(self.consumer.groups)
            | set(self.offsets)
            | set(self.open_transactions)
            | set(self._queues)
        )
        for by_group in self.pending_offsets.values():
            known.update(by_group)
        gone = {g for g in known if self.partition_for(g) == partition}
        for group_id in gone:
            self.groups.pop(group_id, None)
            self.offsets.pop(group_id, None)
            self.open_transactions.pop(group_id, None)
            self._queues.pop(group_id, None)
        for producer_id in list(self.pending_offsets):
            by_group = self.pending_offsets[producer_id]
            for group_id in gone & set(by_group):
                del by_group[group_id]
            if not by_group:
                del self.pending_offsets[producer_id]
        self.timers.cancel_where(lambda key: key[1] in gone)
        self.consumer.forget(gone)
        return gone

    def _write(
        self,
        group_id: str,
        records: list[Record],
        on_done: Callable[[ErrorCode], None],
        on_appended: Callable[[int], None] | None = None,
        producer: tuple[int, int] = (-1, -1),
    ) -> None:
        self.writes.append(
            Write(
                self.partition_for(group_id),
                tuple(records),
                on_done,
                producer_id=producer[0],
                producer_epoch=producer[1],
                on_appended=on_appended,
            )
        )

    def _store_group(
        self, group: ClassicGroup, now_ms: int, on_done: Callable[[ErrorCode], None]
    ) -> None:
        """Persist the group's membership and assignment (the group metadata record)."""
        protocol = group.protocol or ""
        value = GroupValue(
            protocol_type=group.protocol_type or "",
            generation=group.generation,
            protocol=group.protocol,
            leader=group.leader,
            current_state_timestamp=now_ms,
            members=tuple(
                MemberValue(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout_ms,
                    m.session_timeout_ms,
                    m.metadata(protocol) if group.protocol else b"",
                    m.assignment,
                )
                for m in group.members.values()
            ),
        )
        record = (encode_key(GroupKey(group.group_id)), encode_value(value))
        self._write(group.group_id, [record], on_done)
