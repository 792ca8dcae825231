"""The consumer groups of one `__consumer_offsets` partition and their ConsumerGroupHeartbeat
logic (KIP-848), without I/O: what Kafka's GroupMetadataManager does for consumer groups.

How the group coordinator core (`coordinator.py`) drives it:

    result = manager.heartbeat(request, topics, now_ms)     # -> HeartbeatResult
    write result.records to the group's partition; then, in order, manager.replay(record)
    for each, before the next operation on this partition; then send result.response.

    while expiry := manager.pop_expired(now_ms):           # session / rebalance timeouts
        when the group is free: records = manager.expire(expiry, topics); write, replay
    manager.next_deadline()                                 # when to call poll next

`topics` maps a topic name to its TopicMetadata (id, partition count) from the current
metadata image; only `.get` is called. State changes only in `replay`; the heartbeat reads the
state as it was before its own records, like Kafka's (its records are replayed at once after a
successful write; a failed write must not be replayed, and Kafka's rollback of in-memory state
is not built: reload the partition instead). Timers are soft state and change in `heartbeat`
and `poll`, as in Kafka, and each timer checks on firing that it still applies.

A heartbeat, as Kafka handles it:

1. The request is checked (INVALID_REQUEST, UNSUPPORTED_ASSIGNOR). Member epoch 0 joins (v0:
   an empty member id gets one from the coordinator; v1: the client names itself), -1 leaves,
   -2 leaves for a while (static members only). The group must exist unless joining
   (GROUP_ID_NOT_FOUND), not be full (GROUP_MAX_SIZE_REACHED), and the member must be known
   (UNKNOWN_MEMBER_ID) at a valid epoch: FENCED_MEMBER_EPOCH for an epoch above the member's,
   or below it unless it is the previous epoch and the owned partitions are a subset of the
   assigned ones (the response with the new epoch was lost). A static member joining takes over
   its instance id only from a member that left with -2 (UNRELEASED_INSTANCE_ID), inheriting
   its assignment; a heartbeat from a replaced member id gets FENCED_INSTANCE_ID.
2. The member's metadata record is written when anything in it changed; the group epoch is
   bumped when its subscriptions changed, when the subscribed topics' metadata (ids, partition
   counts) changed, or when the group is new. Kafka re-reads topic metadata only on a
   subscription change or a refresh signal from the metadata image; this re-reads it on every
   heartbeat, which sees the same changes without a signal to wire.
3. When the group epoch is ahead of the assignment epoch, the assignor the members prefer
   (else the first of `group.consumer.assignors`) computes a new target; records are written
   for the members whose target changed, then the new assignment epoch.
4. The member is reconciled toward its target (`reconciliation.py`); a change is a current
   assignment record. A member left in UNREVOKED_PARTITIONS gets a rebalance timeout: if it has
   not revoked by then, at the same epoch, it is fenced.
5. The session timeout (`group.consumer.session.timeout.ms`) is rescheduled. The response
   carries the member id and epoch, the heartbeat interval, and the assignment only for a full
   request (joining, or with rebalance timeout, topic names and owned partitions all set) or
   when the assigned partitions changed; None otherwise.

Fencing a member (leave, session or rebalance timeout) writes its tombstones, the subscription
metadata without it, and a group epoch bump; the next heartbeat of any member computes the new
target. Not done here: classic-protocol members inside a consumer group and online
upgrade/downgrade, per-group config overrides, metrics.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from odradek.common.config import INT_MAX
from odradek.common.errors import ErrorCode
from odradek.common.timers import Timers
from odradek.coordinator.group.assignors import (
    ASSIGNORS,
    RANGE,
    UNIFORM,
    MemberSubscription,
    PartitionAssignorError,
)
from odradek.coordinator.group.consumer_group import (
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    ConsumerGroup,
    ConsumerGroupMember,
    ConsumerGroupState,
    IllegalStateError,
    MemberState,
    compile_subscription,
    current_assignment_record,
    group_epoch_record,
    member_metadata_record,
    member_tombstones,
    subscription_metadata_record,
    target_assignment_epoch_record,
    target_assignment_record,
)
from odradek.coordinator.group.consumer_group_messages import (
    DescribedGroup,
    HeartbeatRequest,
    HeartbeatResponse,
    HeartbeatResult,
    describe_group,
)
from odradek.coordinator.group.consumer_group_records import (
    Assignment,
    ConsumerGroupMetadataKey,
    ConsumerGroupPartitionMetadataKey,
    ConsumerGroupRecord,
    ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupTargetAssignmentMetadataKey,
    TopicId,
    TopicMetadata,
    to_topic_partitions,
)
from odradek.coordinator.group.reconciliation import (
    FencedMemberEpochError,
    OwnedPartitions,
    PartitionEpoch,
    is_subset,
    reconcile,
)

logger = logging.getLogger(__name__)

SESSION = "session"
REBALANCE = "rebalance"
TimerKey = tuple[str, str, str]  # (SESSION or REBALANCE, group id, member id)


@dataclass(frozen=True, slots=True)
class Expiry:
    """A timer that fired: what `expire` checks before fencing the member."""

    kind: str  # SESSION or REBALANCE
    group_id: str
    member_id: str
    member_epoch: int | None  # REBALANCE: the epoch the member had to move on from


Reconciler = Callable[
    [ConsumerGroupMember, int, Assignment, PartitionEpoch, OwnedPartitions], ConsumerGroupMember
]


def random_member_id() -> str:
    """A member id as Kafka's Uuid.randomUuid().toString(): 16 random bytes, URL-safe base64
    without padding, never starting with '-'."""
    while True:
        member_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not member_id.startswith("-"):
            return member_id


@dataclass(frozen=True, slots=True)
class ConsumerGroupConfig:
    session_timeout_ms: int = 45_000  # group.consumer.session.timeout.ms
    heartbeat_interval_ms: int = 5_000  # group.consumer.heartbeat.interval.ms
    max_size: int = INT_MAX  # group.consumer.max.size
    assignors: tuple[str, ...] = (UNIFORM, RANGE)  # group.consumer.assignors; first: default


class _Rejected(Exception):
    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


def _blank(value: str | None) -> bool:
    return value is not None and not value.strip()


def _subscription_metadata(
    names: Iterable[str], topics: Mapping[str, TopicMetadata]
) -> dict[str, TopicMetadata]:
    metadata: dict[str, TopicMetadata] = {}
    for name in names:
        topic = topics.get(name)
        if topic is not None:
            metadata[name] = topic
    return metadata


class ConsumerGroupManager:
    def __init__(
        self,
        config: ConsumerGroupConfig | None = None,
        *,
        new_member_id: Callable[[], str] = random_member_id,
        reconciler: Reconciler = reconcile,
    ) -> None:
        self.config = config or ConsumerGroupConfig()
        self.groups: dict[str, ConsumerGroup] = {}
        self.timers: Timers[TimerKey] = Timers()
        self._new_member_id = new_member_id
        self._reconcile = reconciler
        self._rebalance_epochs: dict[tuple[str, str], int] = {}

    # --- replay -------------------------------------------------------------------------------

    def replay(self, record: ConsumerGroupRecord) -> None:
        """Apply one record: after its write succeeded, and when loading the partition."""
        group_id = record.group_id
        group = self.groups.get(group_id)
        if record.value is None:
            if group is None:
                return
            if isinstance(record.key, ConsumerGroupMetadataKey):
                if group.members or group.target_assignment or group.assignment_epoch != -1:
                    raise IllegalStateError(f"group {group_id} deleted while it still has state")
                del self.groups[group_id]
                return
        elif group is None:
            group = self.groups[group_id] = ConsumerGroup(group_id)
        group.replay(record)

    def finish_loading(self, now_ms: int) -> None:
        """After a load, every member gets a new session and a revoking member a new deadline."""
        for group in self.groups.values():
            for member in group.members.values():
                self.timers.schedule(
                    (SESSION, group.group_id, member.member_id),
                    now_ms + self.config.session_timeout_ms,
                )
                if member.state == MemberState.UNREVOKED_PARTITIONS:
                    self._schedule_rebalance_timeout(group.group_id, member, now_ms)

    def forget(self, group_ids: set[str]) -> None:
        """Drop these groups and their timers (their partition is coordinated elsewhere now)."""
        for group_id in group_ids:
            self.groups.pop(group_id, None)
        self.timers.cancel_where(lambda key: key[1] in group_ids)
        for key in [k for k in self._rebalance_epochs if k[0] in group_ids]:
            del self._rebalance_epochs[key]

    # --- timers -------------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        return self.timers.next_deadline()

    def poll(self, now_ms: int, topics: Mapping[str, TopicMetadata]) -> list[ConsumerGroupRecord]:
        """The records of the next expired member, or [] when none is left. Replay each batch
        before calling again: the next one is computed from the state it leaves."""
        while (expiry := self.pop_expired(now_ms)) is not None:
            if records := self.expire(expiry, topics):
                return records
        return []

    def pop_expired(self, now_ms: int) -> Expiry | None:
        """The next timer due, to hand to `expire` when its group is free to change."""
        key = self.timers.pop_expired(now_ms)
        if key is None:
            return None
        kind, group_id, member_id = key
        epoch = None
        if kind == REBALANCE:
            epoch = self._rebalance_epochs.pop((group_id, member_id), None)
        return Expiry(kind, group_id, member_id, epoch)

    def expire(
        self, expiry: Expiry, topics: Mapping[str, TopicMetadata]
    ) -> list[ConsumerGroupRecord]:
        """Fence the member of an expired timer, if the timer still applies to it."""
        group = self.groups.get(expiry.group_id)
        member = group.members.get(expiry.member_id) if group is not None else None
        if group is None or member is None:
            return []
        if expiry.kind == REBALANCE and member.member_epoch != expiry.member_epoch:
            return []  # it moved on from the epoch it had to leave
        logger.info(
            "[GroupId %s] Member %s fenced: %s",
            expiry.group_id,
            expiry.member_id,
            "session expired" if expiry.kind == SESSION else "revocation not done in time",
        )
        return self._fence(group, member, topics)

    def subscribed_topics(self, group_id: str, topic_names: Iterable[str]) -> set[str]:
        """Topics the group's members subscribe to (its offsets of others may expire)."""
        group = self.groups.get(group_id)
        if group is None:
            return set()
        return group.subscribed_topic_names(topic_names=topic_names)

    def _schedule_rebalance_timeout(
        self, group_id: str, member: ConsumerGroupMember, now_ms: int
    ) -> None:
        self.timers.schedule(
            (REBALANCE, group_id, member.member_id), now_ms + member.rebalance_timeout_ms
        )
        self._rebalance_epochs[(group_id, member.member_id)] = member.member_epoch

    def _cancel_timers(self, group_id: str, member_id: str) -> None:
        self.timers.cancel((SESSION, group_id, member_id))
        self.timers.cancel((REBALANCE, group_id, member_id))
        self._rebalance_epochs.pop((group_id, member_id), None)

    # --- heartbeat ----------------------------------------------------------------------------

    def heartbeat(
        self, request: HeartbeatRequest, topics: Mapping[str, TopicMetadata], now_ms: int
    ) -> HeartbeatResult:
        try:
            self._validate(request)
            if request.member_epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
                return self._leave(request, topics)
            return self._heartbeat(request, topics, now_ms)
        except _Rejected as rejected:
            return HeartbeatResult(HeartbeatResponse(rejected.error, rejected.message), ())
        except FencedMemberEpochError as fenced:
            return HeartbeatResult(
                HeartbeatResponse(ErrorCode.FENCED_MEMBER_EPOCH, str(fenced)), ()
            )

    def _validate(self, request: HeartbeatRequest) -> None:
        def invalid(message: str) -> _Rejected:
            return _Rejected(ErrorCode.INVALID_REQUEST, message)

        epoch = request.member_epoch
        if (request.version >= 1 or epoch > 0 or epoch == LEAVE_GROUP_MEMBER_EPOCH) and _blank(
            request.member_id
        ):
            raise invalid("MemberId can't be empty.")
        if _blank(request.group_id):
            raise invalid("GroupId can't be empty.")
        if _blank(request.instance_id):
            raise invalid("InstanceId can't be empty.")
        if _blank(request.rack_id):
            raise invalid("RackId can't be empty.")
        if request.subscribed_topic_regex:
            try:
                compile_subscription(request.subscribed_topic_regex)
            except re.error as error:
                raise _Rejected(
                    ErrorCode.INVALID_REGULAR_EXPRESSION,
                    f"SubscribedTopicRegex `{request.subscribed_topic_regex}` is not a valid "
                    f"regular expression: {error}.",
                ) from error
        if epoch == 0:
            if request.rebalance_timeout_ms == -1:
                raise invalid("RebalanceTimeoutMs must be provided in first request.")
            if request.topic_partitions is None or request.topic_partitions:
                raise invalid("TopicPartitions must be empty when (re-)joining.")
            if request.subscribed_topic_names is None and request.subscribed_topic_regex is None:
                raise invalid(
                    "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when "
                    "(re-)joining."
                )
        elif epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            if request.instance_id is None:
                raise invalid("InstanceId can't be null.")
        elif epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            raise invalid("MemberEpoch is invalid.")
        assignor = request.server_assignor
        if assignor is not None and assignor not in self._assignors():
            raise _Rejected(
                ErrorCode.UNSUPPORTED_ASSIGNOR,
                f"ServerAssignor {assignor} is not supported. Supported assignors: "
                f"{', '.join(self._assignors())}.",
            )

    def _assignors(self) -> tuple[str, ...]:
        return tuple(name for name in self.config.assignors if name in ASSIGNORS)

    def _heartbeat(
        self, request: HeartbeatRequest, topics: Mapping[str, TopicMetadata], now_ms: int
    ) -> HeartbeatResult:
        records: list[ConsumerGroupRecord] = []
        group_id = request.group_id
        joining = request.member_epoch == 0
        group = self.groups.get(group_id)
        if group is None:
            if not joining:
                raise _Rejected(
                    ErrorCode.GROUP_ID_NOT_FOUND, f"Consumer group {group_id} not found."
                )
            group = ConsumerGroup(group_id)  # it exists once its records are replayed
        if len(group.members) >= self.config.max_size and request.member_id not in group.members:
            raise _Rejected(
                ErrorCode.GROUP_MAX_SIZE_REACHED,
                f"The consumer group has reached its maximum capacity of "
                f"{self.config.max_size} members.",
            )
        member_id = request.member_id or self._new_member_id()
        owned = request.topic_partitions
        if request.instance_id is None:
            member = self._dynamic_member(group, member_id, request.member_epoch, owned, joining)
        else:
            member = self._static_member(group, member_id, request, joining, records)

        # 1. The member's metadata, the subscription metadata and the group epoch.
        updated = replace(
            member,
            instance_id=request.instance_id or member.instance_id,
            rack_id=request.rack_id if request.rack_id is not None else member.rack_id,
            rebalance_timeout_ms=request.rebalance_timeout_ms
            if request.rebalance_timeout_ms != -1
            else member.rebalance_timeout_ms,
            server_assignor=request.server_assignor or member.server_assignor,
            subscribed_topic_names=frozenset(request.subscribed_topic_names)
            if request.subscribed_topic_names is not None
            else member.subscribed_topic_names,
            # An empty expression is how a client says it no longer subscribes to one.
            subscribed_topic_regex=(request.subscribed_topic_regex or None)
            if request.subscribed_topic_regex is not None
            else member.subscribed_topic_regex,
            client_id=request.client_id,
            client_host=request.client_host,
        )
        bump = group.group_epoch == 0
        if updated.metadata() != member.metadata():
            records.append(member_metadata_record(group_id, updated))
            bump = bump or (
                updated.subscribed_topic_names != member.subscribed_topic_names
                or updated.subscribed_topic_regex != member.subscribed_topic_regex
            )
        metadata = _subscription_metadata(
            group.subscribed_topic_names(
                without=member.member_id, extra=updated, topic_names=topics.keys()
            ),
            topics,
        )
        if metadata != group.subscription_metadata:
            records.append(subscription_metadata_record(group_id, metadata))
            bump = True
        group_epoch = group.group_epoch
        if bump:
            group_epoch += 1
            records.append(group_epoch_record(group_id, group_epoch))

        # 2. The target assignment.
        if group_epoch > group.assignment_epoch:
            target = self._new_target_assignment(
                group, group_epoch, member, updated, metadata, records
            )
            target_epoch = group_epoch
        else:
            target = group.target_of(updated.member_id, updated.instance_id)
            target_epoch = group.assignment_epoch

        # 3. The member's own step toward its target.
        reconciled = updated
        if not updated.is_reconciled_to(target_epoch):
            reconciled = self._reconcile(
                updated, target_epoch, target, group.partition_epoch, owned
            )
            if reconciled != updated:
                records.append(current_assignment_record(group_id, reconciled))
                if reconciled.state == MemberState.UNREVOKED_PARTITIONS:
                    self._schedule_rebalance_timeout(group_id, reconciled, now_ms)
                else:
                    self.timers.cancel((REBALANCE, group_id, member_id))
                    self._rebalance_epochs.pop((group_id, member_id), None)

        self.timers.schedule(
            (SESSION, group_id, member_id), now_ms + self.config.session_timeout_ms
        )
        full_request = joining or (
            request.rebalance_timeout_ms != -1
            and (
                request.subscribed_topic_names is not None
                or request.subscribed_topic_regex is not None
            )
            and owned is not None
        )
        assignment = None
        if full_request or reconciled.assigned_partitions != member.assigned_partitions:
            assignment = to_topic_partitions(reconciled.assigned_partitions)
        response = HeartbeatResponse(
            member_id=reconciled.member_id,
            member_epoch=reconciled.member_epoch,
            heartbeat_interval_ms=self.config.heartbeat_interval_ms,
            assignment=assignment,
        )
        return HeartbeatResult(response, tuple(records))

    @staticmethod
    def _check_epoch(member: ConsumerGroupMember, epoch: int, owned: OwnedPartitions) -> None:
        if epoch > member.member_epoch:
            raise _Rejected(
                ErrorCode.FENCED_MEMBER_EPOCH,
                f"The consumer group member has a greater member epoch ({epoch}) than the one "
                f"known by the group coordinator ({member.member_epoch}). The member must "
                "abandon all its partitions and rejoin.",
            )
        if epoch < member.member_epoch and (
            epoch != member.previous_member_epoch
            or not is_subset(owned, member.assigned_partitions)
        ):
            raise _Rejected(
                ErrorCode.FENCED_MEMBER_EPOCH,
                f"The consumer group member has a smaller member epoch ({epoch}) than the one "
                f"known by the group coordinator ({member.member_epoch}). The member must "
                "abandon all its partitions and rejoin.",
            )

    def _dynamic_member(
        self,
        group: ConsumerGroup,
        member_id: str,
        epoch: int,
        owned: OwnedPartitions,
        joining: bool,
    ) -> ConsumerGroupMember:
        member = group.members.get(member_id)
        if member is None:
            if not joining:
                raise _Rejected(
                    ErrorCode.UNKNOWN_MEMBER_ID,
                    f"Member {member_id} is not a member of group {group.group_id}.",
                )
            member = ConsumerGroupMember(member_id)
        self._check_epoch(member, epoch, owned)
        return member

    def _static_member(
        self,
        group: ConsumerGroup,
        member_id: str,
        request: HeartbeatRequest,
        joining: bool,
        records: list[ConsumerGroupRecord],
    ) -> ConsumerGroupMember:
        assert request.instance_id is not None
        instance_id = request.instance_id
        existing = group.static_member(instance_id)
        if not joining:
            if existing is None:
                raise _Rejected(
                    ErrorCode.UNKNOWN_MEMBER_ID, f"Instance id {instance_id} is unknown."
                )
            if existing.member_id != member_id:
                raise _Rejected(
                    ErrorCode.FENCED_INSTANCE_ID,
                    f"Static member {member_id} with instance id {instance_id} was fenced by "
                    f"member {existing.member_id}.",
                )
            self._check_epoch(existing, request.member_epoch, request.topic_partitions)
            return existing
        if existing is None:
            return group.members.get(member_id) or ConsumerGroupMember(member_id)
        if existing.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            raise _Rejected(
                ErrorCode.UNRELEASED_INSTANCE_ID,
                f"Static member {member_id} with instance id {instance_id} cannot join the group "
                f"because the instance id is owned by {existing.member_id} member.",
            )
        # The instance comes back under a new member id: it takes over the departed member's
        # assignment at epoch 0, and the departed member is removed.
        new = replace(existing, member_id=member_id, member_epoch=0, previous_member_epoch=0)
        records.extend(member_tombstones(group.group_id, existing.member_id))
        records.append(member_metadata_record(group.group_id, new))
        records.append(
            target_assignment_record(
                group.group_id, member_id, group.target_assignment.get(existing.member_id, {})
            )
        )
        records.append(current_assignment_record(group.group_id, new))
        return new

    def _new_target_assignment(
        self,
        group: ConsumerGroup,
        group_epoch: int,
        member: ConsumerGroupMember,
        updated: ConsumerGroupMember,
        metadata: Mapping[str, TopicMetadata],
        records: list[ConsumerGroupRecord],
    ) -> Assignment:
        topic_ids = {name: topic.topic_id for name, topic in metadata.items()}

        def subscription(m: ConsumerGroupMember, assignment: Assignment) -> MemberSubscription:
            names = m.subscribed_topics(topic_ids)
            ids = frozenset(topic_ids[n] for n in names if n in topic_ids)
            return MemberSubscription(ids, assignment, m.instance_id, m.rack_id)

        specs = {
            member_id: subscription(m, group.target_assignment.get(member_id, {}))
            for member_id, m in group.members.items()
        }
        current = group.target_assignment.get(updated.member_id, {})
        if updated.instance_id is not None:
            previous_id = group.static_members.get(updated.instance_id)
            if previous_id is not None and previous_id != updated.member_id:
                current = group.target_assignment.get(previous_id, {})
                specs.pop(previous_id, None)
        specs[updated.member_id] = subscription(updated, current)

        name = group.preferred_assignor(
            self._assignors()[0], without=member.member_id, extra=updated
        )
        partitions = {topic.topic_id: topic.partitions for topic in metadata.values()}
        try:
            target = ASSIGNORS[name](specs, partitions)
        except PartitionAssignorError as error:
            raise _Rejected(
                ErrorCode.UNKNOWN_SERVER_ERROR,
                f"Failed to compute a new target assignment for epoch {group_epoch}: {error}",
            ) from error
        for member_id in sorted(specs):
            assignment = target.get(member_id, {})
            if group.target_assignment.get(member_id) != assignment:
                records.append(target_assignment_record(group.group_id, member_id, assignment))
        records.append(target_assignment_epoch_record(group.group_id, group_epoch))
        return target.get(updated.member_id, {})

    # --- leaving and fencing ------------------------------------------------------------------

    def _leave(
        self, request: HeartbeatRequest, topics: Mapping[str, TopicMetadata]
    ) -> HeartbeatResult:
        group = self.groups.get(request.group_id)
        if group is None:
            raise _Rejected(
                ErrorCode.GROUP_ID_NOT_FOUND, f"Consumer group {request.group_id} not found."
            )
        response = HeartbeatResponse(member_id=request.member_id, member_epoch=request.member_epoch)
        if request.instance_id is None:
            member = group.members.get(request.member_id)
            if member is None:
                raise _Rejected(
                    ErrorCode.UNKNOWN_MEMBER_ID,
                    f"Member {request.member_id} is not a member of group {group.group_id}.",
                )
            return HeartbeatResult(response, tuple(self._fence(group, member, topics)))
        member = group.static_member(request.instance_id)
        if member is None:
            raise _Rejected(
                ErrorCode.UNKNOWN_MEMBER_ID, f"Instance id {request.instance_id} is unknown."
            )
        if member.member_id != request.member_id:
            raise _Rejected(
                ErrorCode.FENCED_INSTANCE_ID,
                f"Static member {request.member_id} with instance id {request.instance_id} was "
                f"fenced by member {member.member_id}.",
            )
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            # It keeps its partitions and target until its session expires or it comes back.
            left = replace(
                member,
                member_epoch=LEAVE_GROUP_STATIC_MEMBER_EPOCH,
                partitions_pending_revocation={},
            )
            return HeartbeatResult(
                HeartbeatResponse(
                    member_id=member.member_id, member_epoch=LEAVE_GROUP_STATIC_MEMBER_EPOCH
                ),
                (current_assignment_record(group.group_id, left),),
            )
        return HeartbeatResult(response, tuple(self._fence(group, member, topics)))

    def _fence(
        self,
        group: ConsumerGroup,
        member: ConsumerGroupMember,
        topics: Mapping[str, TopicMetadata],
    ) -> list[ConsumerGroupRecord]:
        records = member_tombstones(group.group_id, member.member_id)
        metadata = _subscription_metadata(
            group.subscribed_topic_names(without=member.member_id, topic_names=topics.keys()),
            topics,
        )
        if metadata != group.subscription_metadata:
            records.append(subscription_metadata_record(group.group_id, metadata))
        records.append(group_epoch_record(group.group_id, group.group_epoch + 1))
        self._cancel_timers(group.group_id, member.member_id)
        return records

    # --- DeleteGroups and ConsumerGroupDescribe -----------------------------------------------

    def delete(self, group_id: str) -> tuple[ErrorCode, list[ConsumerGroupRecord]]:
        """The tombstones that delete an empty group (NON_EMPTY_GROUP if it has members)."""
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND, []
        if group.state != ConsumerGroupState.EMPTY:
            return ErrorCode.NON_EMPTY_GROUP, []
        records = [
            ConsumerGroupRecord(ConsumerGroupTargetAssignmentMemberKey(group_id, member_id), None)
            for member_id in sorted(group.target_assignment)
        ]
        records.append(
            ConsumerGroupRecord(ConsumerGroupTargetAssignmentMetadataKey(group_id), None)
        )
        records.append(ConsumerGroupRecord(ConsumerGroupPartitionMetadataKey(group_id), None))
        records.append(ConsumerGroupRecord(ConsumerGroupMetadataKey(group_id), None))
        return ErrorCode.NONE, records

    def describe(
        self, group_ids: Iterable[str], topic_names: Mapping[TopicId, str] | None = None
    ) -> list[DescribedGroup]:
        """ConsumerGroupDescribe data. Topic names come from `topic_names` (the metadata image)
        or else from the group's subscription metadata."""
        described: list[DescribedGroup] = []
        for group_id in group_ids:
            group = self.groups.get(group_id)
            if group is None:
                described.append(
                    DescribedGroup(
                        group_id, ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found."
                    )
                )
                continue
            names = topic_names
            if names is None:
                names = {t.topic_id: t.name for t in group.subscription_metadata.values()}
            assignor = group.preferred_assignor(self._assignors()[0])
            described.append(describe_group(group, assignor, names))
        return described
