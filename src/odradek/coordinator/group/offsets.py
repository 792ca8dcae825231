"""Committed offsets of every group: commit, fetch, delete and expiry (KIP-211).

A part of the group coordinator core (`coordinator.py` mixes it in). As Kafka's
OffsetMetadataManager does, it keeps the offsets of a group apart from the group itself, so a
classic group, a consumer group (KIP-848) and a simple group (offsets only) hold them alike;
the group decides who may commit: a classic group by member id and generation, a consumer group
by member id and member epoch. Subscribed topics (for OffsetDelete and expiry) come from the
classic members' metadata or the consumer group's subscriptions. Like the rest of the core it
queues writes and changes offsets only when their records are replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from odradek.common.errors import ErrorCode
from odradek.coordinator.group.classic import (
    CONSUMER_PROTOCOL_TYPE,
    ClassicGroup,
    GroupState,
    Member,
)
from odradek.coordinator.group.consumer_group import ConsumerGroup, ConsumerGroupState
from odradek.coordinator.group.consumer_group_manager import ConsumerGroupManager
from odradek.coordinator.group.consumer_group_records import TopicMetadata
from odradek.coordinator.group.messages import (
    CommittedOffset,
    GroupConfig,
    OffsetCommit,
    Record,
    TopicPartition,
    write_error_for_offsets,
)
from odradek.coordinator.group.records import (
    GroupKey,
    OffsetKey,
    OffsetValue,
    encode_key,
    encode_value,
)


def java_length(text: str) -> int:
    """String.length() in Java: UTF-16 code units. Kafka checks offset.metadata.max.bytes
    against it (not against UTF-8 bytes), so that is what a client's metadata must fit."""
    return len(text.encode("utf-16-le")) // 2


def _offset_expired(value: OffsetValue, base_ms: int, retention_ms: int, now_ms: int) -> bool:
    if value.expire_timestamp >= 0:  # set explicitly by an OffsetCommit v1-v4 retention time
        return now_ms >= value.expire_timestamp
    return now_ms - base_ms >= retention_ms


@dataclass(slots=True)
class CommittedOffsets:
    """The committed offsets of one group, and the commits of it not yet replayed."""

    values: dict[TopicPartition, OffsetValue] = field(default_factory=dict)
    # The log offset of each value's record: a transactional commit materialized by its
    # marker replaces a value only if its record is the later one (as Kafka orders them).
    record_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    in_flight: dict[TopicPartition, int] = field(default_factory=dict)  # position -> commits


def offset_commit_records(
    group_id: str,
    offsets: list[OffsetCommit],
    now_ms: int,
    expire_timestamp: int,
    metadata_max_bytes: int,
) -> tuple[list[ErrorCode], list[Record]]:
    """One error per commit (its metadata may be too long) and the records of those that pass."""
    errors: list[ErrorCode] = []
    records: list[Record] = []
    for item in offsets:
        if java_length(item.metadata) > metadata_max_bytes:
            errors.append(ErrorCode.OFFSET_METADATA_TOO_LARGE)
            continue
        errors.append(ErrorCode.NONE)
        value = OffsetValue(item.offset, item.leader_epoch, item.metadata, now_ms, expire_timestamp)
        records.append(
            (encode_key(OffsetKey(group_id, item.topic, item.partition)), encode_value(value))
        )
    return errors, records


def member_epoch_error(received: int, expected: int) -> ErrorCode:
    """A consumer group member's epoch check, as Kafka's validateMemberEpoch does it."""
    if received > expected:
        return ErrorCode.FENCED_MEMBER_EPOCH
    if received < expected:
        return ErrorCode.STALE_MEMBER_EPOCH
    return ErrorCode.NONE


class GroupOffsets:
    """The offsets half of `GroupCoordinator`; the attributes below are the coordinator's."""

    config: GroupConfig
    groups: dict[str, ClassicGroup]
    offsets: dict[str, CommittedOffsets]
    consumer: ConsumerGroupManager
    topics: Callable[[], Mapping[str, TopicMetadata]]
    latest_ms: int

    if TYPE_CHECKING:  # provided by GroupCoordinator

        def replay(
            self,
            key: bytes,
            value: bytes | None,
            record_offset: int = -1,
            producer_id: int = -1,
        ) -> None: ...

        def _replay_pending(
            self,
            key: OffsetKey,
            value: OffsetValue,
            record_offset: int,
            producer_id: int,
        ) -> None: ...

        def _drop_pending(self, group_id: str, position: TopicPartition) -> None: ...

        def has_pending_offsets(self, group_id: str, position: TopicPartition) -> bool: ...

        def pending_positions(self, group_id: str) -> set[TopicPartition]: ...

        def _serialized(self, group_id: str, operation: Callable[[], bool]) -> None: ...

        def _release(self, group_id: str) -> None: ...

        def _consumer_group_tombstones(self, group: ConsumerGroup) -> list[Record]: ...

        def _seen(self, now_ms: int) -> None: ...

        def _write(
            self,
            group_id: str,
            records: list[Record],
            on_done: Callable[[ErrorCode], None],
            on_appended: Callable[[int], None] | None = None,
            producer: tuple[int, int] = (-1, -1),
        ) -> None: ...

        def _schedule_heartbeat(
            self, group: ClassicGroup, member: Member, now_ms: int, timeout_ms: int | None = None
        ) -> None: ...

    def commit_offsets(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        offsets: list[OffsetCommit],
        now_ms: int,
        respond: Callable[[list[ErrorCode]], None],
        retention_ms: int = -1,
        version: int = 9,
    ) -> None:
        """Commit offsets; `respond` gets one error per entry of `offsets`, in order.

        `retention_ms` (OffsetCommit v2-v4) sets an explicit expiry; -1 uses the broker's.
        A commit with a generation to a group that does not exist is ILLEGAL_GENERATION before
        v9 and GROUP_ID_NOT_FOUND from v9, as Kafka answers.
        """
        self._seen(now_ms)

        def all_fail(code: ErrorCode) -> None:
            respond([code] * len(offsets))

        if not group_id:
            all_fail(ErrorCode.INVALID_GROUP_ID)
            return
        consumer_group = self.consumer.groups.get(group_id)
        if consumer_group is not None:
            error = self._check_consumer_group_commit(
                consumer_group, generation, member_id, version
            )
            if error != ErrorCode.NONE:
                all_fail(error)
                return
            self._write_offsets(group_id, offsets, now_ms, respond, retention_ms)
            return
        group = self.groups.get(group_id)
        if group is None:
            if generation >= 0:
                all_fail(
                    ErrorCode.GROUP_ID_NOT_FOUND if version >= 9 else ErrorCode.ILLEGAL_GENERATION
                )
                return
            # A simple group (no members, no generation) exists once its first offsets are
            # replayed; a commit that writes nothing, or fails, leaves no empty group behind.
            group = ClassicGroup(group_id, current_state_timestamp=now_ms)
        if group.state == GroupState.DEAD:
            all_fail(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            return
        if not (generation < 0 and group.state == GroupState.EMPTY):
            # Who and which generation first, then the state: a zombie from an old generation
            # must learn it is fenced (and rejoin) even while the group completes a rebalance.
            if group.is_static_member_fenced(member_id, group_instance_id):
                all_fail(ErrorCode.FENCED_INSTANCE_ID)
                return
            member = group.members.get(member_id)
            if member is None:
                all_fail(ErrorCode.UNKNOWN_MEMBER_ID)
                return
            if generation != group.generation:
                all_fail(ErrorCode.ILLEGAL_GENERATION)
                return
            if group.state == GroupState.COMPLETING_REBALANCE:
                all_fail(ErrorCode.REBALANCE_IN_PROGRESS)
                return
            self._schedule_heartbeat(group, member, now_ms)
        self._write_offsets(group_id, offsets, now_ms, respond, retention_ms)

    @staticmethod
    def _check_consumer_group_commit(
        group: ConsumerGroup, member_epoch: int, member_id: str, version: int
    ) -> ErrorCode:
        """Kafka's ConsumerGroup.validateOffsetCommit: an empty group takes commits without a
        member (epoch < 0, as admin tools send); otherwise the member and its epoch must match,
        over OffsetCommit v9+ (the version that carries member epochs)."""
        if member_epoch < 0 and not group.members:
            return ErrorCode.NONE
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if version < 9:
            return ErrorCode.UNSUPPORTED_VERSION
        return member_epoch_error(member_epoch, member.member_epoch)

    def _write_offsets(
        self,
        group_id: str,
        offsets: list[OffsetCommit],
        now_ms: int,
        respond: Callable[[list[ErrorCode]], None],
        retention_ms: int,
    ) -> None:
        expire_timestamp = now_ms + retention_ms if retention_ms >= 0 else -1
        errors, records = offset_commit_records(
            group_id, offsets, now_ms, expire_timestamp, self.config.offset_metadata_max_bytes
        )
        if not records:
            respond(errors)
            return
        # Until replayed, these offsets are invisible to expiry; it must not drop them or the
        # group under them (the commit's record is appended first, the tombstones after).
        in_flight = [
            (item.topic, item.partition)
            for item, code in zip(offsets, errors, strict=True)
            if code == ErrorCode.NONE
        ]
        state = self.offsets.setdefault(group_id, CommittedOffsets())
        for position in in_flight:
            state.in_flight[position] = state.in_flight.get(position, 0) + 1
        appended_at = [-1]

        def appended(offset: int) -> None:
            appended_at[0] = offset

        def done(error: ErrorCode) -> None:
            for position in in_flight:
                left = state.in_flight.pop(position) - 1
                if left:
                    state.in_flight[position] = left
            self._forget_offsets_if_unused(group_id)
            if error == ErrorCode.NONE:
                for index, (key, value) in enumerate(records):
                    self.replay(key, value, appended_at[0] + index)
                respond(errors)
                return
            failed = write_error_for_offsets(error)
            respond([failed if code == ErrorCode.NONE else code for code in errors])

        self._write(group_id, records, done, appended)

    def _forget_offsets_if_unused(self, group_id: str) -> None:
        state = self.offsets.get(group_id)
        if state is not None and not state.values and not state.in_flight:
            del self.offsets[group_id]

    def replay_offset(
        self,
        key: OffsetKey,
        value: OffsetValue | None,
        record_offset: int = -1,
        producer_id: int = -1,
    ) -> None:
        """An offset commit record at log offset `record_offset`, or its tombstone. As in
        Kafka, offsets of a group that does not exist create a simple (classic, memberless)
        group to hold them. A record of a transaction (`producer_id` set) stays pending until
        its marker; a tombstone drops pending ones too."""
        position = (key.topic, key.partition)
        if value is None:
            state = self.offsets.get(key.group)
            if state is not None:
                state.values.pop(position, None)
                state.record_offsets.pop(position, None)
                self._forget_offsets_if_unused(key.group)
            self._drop_pending(key.group, position)
            return
        if key.group not in self.groups and key.group not in self.consumer.groups:
            self.groups[key.group] = ClassicGroup(key.group)
        if producer_id >= 0:
            self._replay_pending(key, value, record_offset, producer_id)
            return
        self.store_offset(key.group, position, value, record_offset)

    def committed_record_offset(self, group_id: str, position: TopicPartition) -> int | None:
        """The log offset of the record that committed the position's offset, if any."""
        state = self.offsets.get(group_id)
        return None if state is None else state.record_offsets.get(position)

    def store_offset(
        self, group_id: str, position: TopicPartition, value: OffsetValue, record_offset: int
    ) -> None:
        state = self.offsets.setdefault(group_id, CommittedOffsets())
        state.values[position] = value
        state.record_offsets[position] = record_offset

    def check_offset_fetch(
        self, group_id: str, member_id: str | None, member_epoch: int
    ) -> ErrorCode:
        """OffsetFetch v9+ from a consumer group member is checked as a commit is; requests
        without a member (admin tools, classic groups) are not."""
        group = self.consumer.groups.get(group_id)
        if group is None or (member_id is None and member_epoch < 0):
            return ErrorCode.NONE
        member = group.members.get(member_id or "")
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return member_epoch_error(member_epoch, member.member_epoch)

    def fetch_offsets(
        self, group_id: str, partitions: list[TopicPartition] | None
    ) -> list[CommittedOffset]:
        """Committed offsets of a group: the partitions asked for, or all when None."""
        state = self.offsets.get(group_id)
        offsets = state.values if state is not None else {}
        wanted = sorted(offsets) if partitions is None else partitions
        result: list[CommittedOffset] = []
        for topic, partition in wanted:
            value = offsets.get((topic, partition))
            if value is None:
                result.append(CommittedOffset(topic, partition, -1, -1, ""))
            else:
                result.append(
                    CommittedOffset(
                        topic, partition, value.offset, value.leader_epoch, value.metadata
                    )
                )
        return result

    def delete_offsets(
        self,
        group_id: str,
        partitions: list[TopicPartition],
        now_ms: int,
        respond: Callable[[ErrorCode, list[ErrorCode]], None],
    ) -> None:
        """OffsetDelete: refused for topics the (non-empty) group still subscribes to.

        A non-empty group that does not speak the consumer protocol is NON_EMPTY_GROUP; a
        consumer group whose subscriptions cannot be read counts as subscribed to every topic.
        """
        self._seen(now_ms)
        subscribed: set[str] | None = set()
        if group_id in self.consumer.groups:
            subscribed = self.consumer.subscribed_topics(group_id, self.topics())
        else:
            group = self.groups.get(group_id)
            if group is None or group.state == GroupState.DEAD:
                respond(ErrorCode.GROUP_ID_NOT_FOUND, [])
                return
            if group.state != GroupState.EMPTY:
                if group.protocol_type != CONSUMER_PROTOCOL_TYPE:
                    respond(ErrorCode.NON_EMPTY_GROUP, [])
                    return
                subscribed = group.subscribed_topics()
        committed = self.offsets.get(group_id, CommittedOffsets()).values
        pending = self.pending_positions(group_id)
        errors: list[ErrorCode] = []
        records: list[Record] = []
        for topic, partition in partitions:
            if subscribed is None or topic in subscribed:
                errors.append(ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC)
                continue
            errors.append(ErrorCode.NONE)
            # a tombstone also drops a transaction's pending offset, as in Kafka
            if (topic, partition) in committed or (topic, partition) in pending:
                records.append((encode_key(OffsetKey(group_id, topic, partition)), None))
        if not records:
            respond(ErrorCode.NONE, errors)
            return

        def done(error: ErrorCode) -> None:
            if error != ErrorCode.NONE:
                respond(write_error_for_offsets(error), [])
                return
            for key, value in records:
                self.replay(key, value)
            respond(ErrorCode.NONE, errors)

        self._write(group_id, records, done)

    def expire_offsets(self, now_ms: int) -> None:
        """Drop offsets past offsets.retention.minutes, and empty groups left with none.

        An empty classic group's offsets expire `retention` after the group became empty
        (KIP-211); a group without group management (no generation) counts from each commit.
        Offsets of topics a live group no longer subscribes to count from their commit, and so
        do all offsets of a consumer group (KIP-848), whose subscriptions say which are live.
        """
        self._seen(now_ms)
        for group in list(self.groups.values()):
            if group.state != GroupState.DEAD:
                self._expire_classic_group_offsets(group, now_ms)
        for group_id in list(self.consumer.groups):
            self._serialized(group_id, partial(self._expire_consumer_group_offsets, group_id))

    def _expired(
        self,
        group_id: str,
        now_ms: int,
        base_ms: int | None = None,
        subscribed: set[str] | None = None,
    ) -> list[TopicPartition]:
        """Positions whose offsets expired, counting from `base_ms` or else from each commit;
        offsets of `subscribed` topics, commits still in flight and offsets a transaction is
        about to replace never expire."""
        state = self.offsets.get(group_id)
        if state is None:
            return []
        retention = self.config.offsets_retention_ms
        pending = self.pending_positions(group_id)
        return [
            position
            for position, value in state.values.items()
            if (subscribed is None or position[0] not in subscribed)
            and position not in state.in_flight
            and position not in pending
            and _offset_expired(
                value, value.commit_timestamp if base_ms is None else base_ms, retention, now_ms
            )
        ]

    def _all_offsets_go(self, group_id: str, expired: list[TopicPartition]) -> bool:
        """Whether the group goes with these offsets: not while a transaction holds some."""
        if self.pending_positions(group_id):
            return False
        state = self.offsets.get(group_id)
        return state is None or (len(expired) == len(state.values) and not state.in_flight)

    def _expire_classic_group_offsets(self, group: ClassicGroup, now_ms: int) -> None:
        expired: list[TopicPartition] = []
        if group.state == GroupState.EMPTY:
            managed = group.protocol_type is not None and group.current_state_timestamp >= 0
            base = group.current_state_timestamp if managed else None
            expired = self._expired(group.group_id, now_ms, base)
        elif group.state == GroupState.STABLE:
            subscribed = group.subscribed_topics()
            if subscribed is None:
                return
            expired = self._expired(group.group_id, now_ms, subscribed=subscribed)
        records: list[Record] = [
            (encode_key(OffsetKey(group.group_id, topic, partition)), None)
            for topic, partition in expired
        ]
        if group.state == GroupState.EMPTY and self._all_offsets_go(group.group_id, expired):
            group.state = GroupState.DEAD  # not transition(): a failed write undoes this
            records.append((encode_key(GroupKey(group.group_id)), None))
        if records:
            self._write(group.group_id, records, self._replayer(group, records))

    def _expire_consumer_group_offsets(self, group_id: str) -> bool:
        """One step of a consumer group's queue (see `_serialized`): True if it wrote."""
        group = self.consumer.groups.get(group_id)
        if group is None:
            return False
        now_ms = self.latest_ms
        subscribed = group.subscribed_topic_names(topic_names=self.topics())
        expired = self._expired(group_id, now_ms, subscribed=subscribed)
        records: list[Record] = [
            (encode_key(OffsetKey(group_id, topic, partition)), None)
            for topic, partition in expired
        ]
        if group.state == ConsumerGroupState.EMPTY and self._all_offsets_go(group_id, expired):
            records.extend(self._consumer_group_tombstones(group))
        if not records:
            return False

        def done(error: ErrorCode) -> None:
            if error == ErrorCode.NONE:
                for key, value in records:
                    self.replay(key, value)
            self._release(group_id)

        self._write(group_id, records, done)
        return True

    def _replayer(self, group: ClassicGroup, records: list[Record]) -> Callable[[ErrorCode], None]:
        def done(error: ErrorCode) -> None:
            if error != ErrorCode.NONE:
                if group.state == GroupState.DEAD:
                    group.state = GroupState.EMPTY  # not deleted after all: try next time
                return
            for key, value in records:
                self.replay(key, value)

        return done
