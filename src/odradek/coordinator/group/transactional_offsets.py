"""Offsets committed inside a transaction (TxnOffsetCommit), pending until its marker.

A part of the group coordinator core (`coordinator.py` mixes it in), as Kafka's
OffsetMetadataManager keeps them:

- TxnOffsetCommit writes ordinary offset commit records, but in a transactional batch of the
  producer; replayed, they are pending offsets of that producer, invisible to OffsetFetch
  (which answers UNSTABLE_OFFSET_COMMIT for them when asked for stable offsets, KIP-447);
- the transaction's marker on the `__consumer_offsets` partition settles them: a commit
  materializes each one unless a later record (by log offset) already committed that position,
  an abort drops them;
- an offset tombstone (OffsetDelete, group deletion) drops pending offsets of its position, and
  while a group has pending offsets its offsets do not expire and the group is not deleted by
  expiry.

Who may commit is checked as Kafka's validateTransactionalOffsetCommit does: a group that does
not exist accepts a commit without a generation (a simple group); a classic group checks member
and generation only when they are given and ignores its state; a consumer group checks the
member and its epoch, a stale epoch being ILLEGAL_GENERATION.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from odradek.common.errors import ErrorCode
from odradek.coordinator.group.classic import ClassicGroup, GroupState
from odradek.coordinator.group.consumer_group_manager import ConsumerGroupManager
from odradek.coordinator.group.messages import (
    GroupConfig,
    OffsetCommit,
    Record,
    TopicPartition,
    write_error_for_offsets,
)
from odradek.coordinator.group.offsets import member_epoch_error, offset_commit_records
from odradek.coordinator.group.records import OffsetKey, OffsetValue


@dataclass(frozen=True, slots=True)
class PendingOffset:
    value: OffsetValue
    record_offset: int


class TransactionalOffsets:
    """The transactional half of the offsets; the attributes below are the coordinator's."""

    config: GroupConfig
    groups: dict[str, ClassicGroup]
    consumer: ConsumerGroupManager
    # producer id -> group -> position -> its pending offset
    pending_offsets: dict[int, dict[str, dict[TopicPartition, PendingOffset]]]
    # group -> producers with pending offsets in it
    open_transactions: dict[str, set[int]]

    if TYPE_CHECKING:  # provided by GroupCoordinator

        def replay(
            self,
            key: bytes,
            value: bytes | None,
            record_offset: int = -1,
            producer_id: int = -1,
        ) -> None: ...

        def _seen(self, now_ms: int) -> None: ...

        def _write(
            self,
            group_id: str,
            records: list[Record],
            on_done: Callable[[ErrorCode], None],
            on_appended: Callable[[int], None] | None = None,
            producer: tuple[int, int] = (-1, -1),
        ) -> None: ...

        def committed_record_offset(
            self, group_id: str, position: TopicPartition
        ) -> int | None: ...

        def store_offset(
            self, group_id: str, position: TopicPartition, value: OffsetValue, record_offset: int
        ) -> None: ...

    def commit_transactional_offsets(
        self,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        offsets: list[OffsetCommit],
        now_ms: int,
        respond: Callable[[list[ErrorCode]], None],
    ) -> None:
        """TxnOffsetCommit; `respond` gets one error per entry of `offsets`, in order. The
        caller has checked that the group's partition is in the producer's transaction."""
        self._seen(now_ms)
        error = self._check_transactional_commit(group_id, generation, member_id, group_instance_id)
        if error != ErrorCode.NONE:
            respond([error] * len(offsets))
            return
        errors, records = offset_commit_records(
            group_id, offsets, now_ms, -1, self.config.offset_metadata_max_bytes
        )
        if not records:
            respond(errors)
            return
        appended_at = [-1]

        def appended(offset: int) -> None:
            appended_at[0] = offset

        def done(error: ErrorCode) -> None:
            if error == ErrorCode.NONE:
                for index, (key, value) in enumerate(records):
                    self.replay(key, value, appended_at[0] + index, producer_id)
                respond(errors)
                return
            failed = write_error_for_offsets(error)
            respond([failed if code == ErrorCode.NONE else code for code in errors])

        self._write(group_id, records, done, appended, (producer_id, producer_epoch))

    def _check_transactional_commit(
        self, group_id: str, generation: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        consumer_group = self.consumer.groups.get(group_id)
        if consumer_group is not None:
            if generation < 0 and not consumer_group.members:
                return ErrorCode.NONE
            member = consumer_group.members.get(member_id)
            if member is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            error = member_epoch_error(generation, member.member_epoch)
            return ErrorCode.ILLEGAL_GENERATION if error == ErrorCode.STALE_MEMBER_EPOCH else error
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.NONE if generation < 0 else ErrorCode.ILLEGAL_GENERATION
        if group.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation < 0 and group.state == GroupState.EMPTY:
            return ErrorCode.NONE
        if generation >= 0 or member_id or group_instance_id is not None:
            if group_instance_id is not None:
                static_member = group.static_members.get(group_instance_id)
                if static_member is None:
                    return ErrorCode.UNKNOWN_MEMBER_ID
                if static_member != member_id:
                    return ErrorCode.FENCED_INSTANCE_ID
            if member_id not in group.members:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if generation != group.generation:
                return ErrorCode.ILLEGAL_GENERATION
        return ErrorCode.NONE

    # --- replay -------------------------------------------------------------------------------

    def _replay_pending(
        self, key: OffsetKey, value: OffsetValue, record_offset: int, producer_id: int
    ) -> None:
        by_group = self.pending_offsets.setdefault(producer_id, {})
        by_group.setdefault(key.group, {})[(key.topic, key.partition)] = PendingOffset(
            value, record_offset
        )
        self.open_transactions.setdefault(key.group, set()).add(producer_id)

    def _drop_pending(self, group_id: str, position: TopicPartition) -> None:
        for producer_id in self.open_transactions.get(group_id, ()):
            self.pending_offsets[producer_id].get(group_id, {}).pop(position, None)

    def replay_end_transaction_marker(self, producer_id: int, commit: bool) -> None:
        """A transaction marker of `producer_id` on this coordinator's partition."""
        pending = self.pending_offsets.pop(producer_id, None)
        if pending is None:
            return
        for group_id, positions in pending.items():
            producers = self.open_transactions.get(group_id)
            if producers is not None:
                producers.discard(producer_id)
                if not producers:
                    del self.open_transactions[group_id]
            if not commit:
                continue
            for position, offset in positions.items():
                existing = self.committed_record_offset(group_id, position)
                # the later record wins, whichever way it was committed (as Kafka keeps it)
                if existing is None or offset.record_offset > existing:
                    self.store_offset(group_id, position, offset.value, offset.record_offset)

    # --- queries ------------------------------------------------------------------------------

    def pending_positions(self, group_id: str) -> set[TopicPartition]:
        """Positions of the group that some open transaction has offsets pending for."""
        positions: set[TopicPartition] = set()
        for producer_id in self.open_transactions.get(group_id, ()):
            positions.update(self.pending_offsets[producer_id].get(group_id, {}))
        return positions

    def has_pending_offsets(self, group_id: str, position: TopicPartition) -> bool:
        return any(
            position in self.pending_offsets[producer_id].get(group_id, {})
            for producer_id in self.open_transactions.get(group_id, ())
        )
