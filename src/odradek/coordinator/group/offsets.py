"""Committed offsets of classic groups: commit, fetch, delete and expiry (KIP-211).

A part of the group coordinator core (`coordinator.py` mixes it in): it reads the groups'
membership to validate commits and finds subscribed topics in the members' metadata, and like
the rest of the core it queues writes and changes offsets only when their records are replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from odradek.common.errors import ErrorCode
from odradek.coordinator.group.classic import (
    CONSUMER_PROTOCOL_TYPE,
    ClassicGroup,
    GroupState,
    Member,
)
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


def _java_length(text: str) -> int:
    """String.length() in Java: UTF-16 code units. Kafka checks offset.metadata.max.bytes
    against it (not against UTF-8 bytes), so that is what a client's metadata must fit."""
    return len(text.encode("utf-16-le")) // 2


def _offset_expired(value: OffsetValue, base_ms: int, retention_ms: int, now_ms: int) -> bool:
    if value.expire_timestamp >= 0:  # set explicitly by an OffsetCommit v1-v4 retention time
        return now_ms >= value.expire_timestamp
    return now_ms - base_ms >= retention_ms


class GroupOffsets:
    """The offsets half of `GroupCoordinator`; the attributes below are the coordinator's."""

    config: GroupConfig
    groups: dict[str, ClassicGroup]

    if TYPE_CHECKING:  # provided by GroupCoordinator

        def replay(self, key: bytes, value: bytes | None) -> None: ...

        def _seen(self, now_ms: int) -> None: ...

        def _write(
            self, group_id: str, records: list[Record], on_done: Callable[[ErrorCode], None]
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
        errors: list[ErrorCode] = []
        records: list[Record] = []
        for item in offsets:
            if _java_length(item.metadata) > self.config.offset_metadata_max_bytes:
                errors.append(ErrorCode.OFFSET_METADATA_TOO_LARGE)
                continue
            errors.append(ErrorCode.NONE)
            expire_timestamp = now_ms + retention_ms if retention_ms >= 0 else -1
            value = OffsetValue(
                item.offset, item.leader_epoch, item.metadata, now_ms, expire_timestamp
            )
            records.append(
                (encode_key(OffsetKey(group_id, item.topic, item.partition)), encode_value(value))
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
        for position in in_flight:
            group.offsets_in_flight[position] = group.offsets_in_flight.get(position, 0) + 1

        def done(error: ErrorCode) -> None:
            for position in in_flight:
                left = group.offsets_in_flight.pop(position) - 1
                if left:
                    group.offsets_in_flight[position] = left
            if error == ErrorCode.NONE:
                for key, value in records:
                    self.replay(key, value)
                respond(errors)
                return
            failed = write_error_for_offsets(error)
            respond([failed if code == ErrorCode.NONE else code for code in errors])

        self._write(group_id, records, done)

    def fetch_offsets(
        self, group_id: str, partitions: list[TopicPartition] | None
    ) -> list[CommittedOffset]:
        """Committed offsets of a group: the partitions asked for, or all when None."""
        group = self.groups.get(group_id)
        offsets = group.offsets if group is not None else {}
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
        group = self.groups.get(group_id)
        if group is None or group.state == GroupState.DEAD:
            respond(ErrorCode.GROUP_ID_NOT_FOUND, [])
            return
        subscribed: set[str] | None = set()
        if group.state != GroupState.EMPTY:
            if group.protocol_type != CONSUMER_PROTOCOL_TYPE:
                respond(ErrorCode.NON_EMPTY_GROUP, [])
                return
            subscribed = group.subscribed_topics()
        errors: list[ErrorCode] = []
        records: list[Record] = []
        for topic, partition in partitions:
            if subscribed is None or topic in subscribed:
                errors.append(ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC)
                continue
            errors.append(ErrorCode.NONE)
            if (topic, partition) in group.offsets:
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

        An empty group's offsets expire `retention` after the group became empty (KIP-211);
        a group without group management (no generation) counts from each commit. Offsets of
        topics a live consumer group no longer subscribes to count from their commit.
        """
        self._seen(now_ms)
        retention = self.config.offsets_retention_ms
        for group in list(self.groups.values()):
            if group.state == GroupState.DEAD:
                continue
            expired: list[TopicPartition] = []
            if group.state == GroupState.EMPTY:
                from_state_change = (
                    group.protocol_type is not None and group.current_state_timestamp >= 0
                )
                for position, value in group.offsets.items():
                    base = (
                        group.current_state_timestamp
                        if from_state_change
                        else (value.commit_timestamp)
                    )
                    if position not in group.offsets_in_flight and _offset_expired(
                        value, base, retention, now_ms
                    ):
                        expired.append(position)
            elif group.state == GroupState.STABLE:
                subscribed = group.subscribed_topics()
                if subscribed is None:
                    continue
                for position, value in group.offsets.items():
                    if (
                        position[0] not in subscribed
                        and position not in group.offsets_in_flight
                        and _offset_expired(value, value.commit_timestamp, retention, now_ms)
                    ):
                        expired.append(position)
            records: list[Record] = [
                (encode_key(OffsetKey(group.group_id, topic, partition)), None)
                for topic, partition in expired
            ]
            drop_group = (
                group.state == GroupState.EMPTY
                and len(expired) == len(group.offsets)
                and not group.offsets_in_flight
            )
            if drop_group:
                group.state = GroupState.DEAD  # not transition(): a failed write undoes this
                records.append((encode_key(GroupKey(group.group_id)), None))
            if records:
                self._write(group.group_id, records, self._replayer(group, records))

    def _replayer(self, group: ClassicGroup, records: list[Record]) -> Callable[[ErrorCode], None]:
        def done(error: ErrorCode) -> None:
            if error != ErrorCode.NONE:
                if group.state == GroupState.DEAD:
                    group.state = GroupState.EMPTY  # not deleted after all: try next time
                return
            for key, value in records:
                self.replay(key, value)

        return done
