"""Consumer groups (KIP-848) inside the group coordinator core: ConsumerGroupHeartbeat,
ConsumerGroupDescribe, and their share of the group id namespace.

A part of the core (`coordinator.py` mixes it in). The protocol itself is
`ConsumerGroupManager`'s; this part writes what it returns and keeps its rule that every
record is replayed before the next operation on the group computes from the state: the
operations of one consumer group (heartbeats, expiries, deletion) run one at a time, each
waiting for its write to be durable and replayed before the next starts. Operations that
write nothing (most heartbeats) answer at once.

Classic and consumer groups share one namespace, as in Kafka: a consumer member may not join
a classic group that has members (GROUP_ID_NOT_FOUND, "not a consumer group") and a classic
member may not join a consumer group that has members (INCONSISTENT_GROUP_PROTOCOL); an empty
group of the other kind is deleted (its offsets stay) when a member of the new kind joins.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from odradek.common.errors import ErrorCode
from odradek.coordinator.group.classic import ClassicGroup, GroupState
from odradek.coordinator.group.consumer_group import ConsumerGroup
from odradek.coordinator.group.consumer_group_manager import ConsumerGroupManager, Expiry
from odradek.coordinator.group.consumer_group_messages import (
    DescribedGroup,
    HeartbeatRequest,
    HeartbeatResponse,
)
from odradek.coordinator.group.consumer_group_records import (
    ConsumerGroupRecord,
    TopicMetadata,
)
from odradek.coordinator.group.messages import Record, TopicPartition, write_error_for_group
from odradek.coordinator.group.offsets import CommittedOffsets
from odradek.coordinator.group.records import (
    GroupKey,
    OffsetKey,
    encode_consumer_group_record,
    encode_key,
)

logger = logging.getLogger(__name__)


def _encoded(records: Iterable[ConsumerGroupRecord]) -> list[Record]:
    return [encode_consumer_group_record(record) for record in records]


class ConsumerGroupOps:
    """The consumer group half of `GroupCoordinator`; the attributes below are the core's."""

    groups: dict[str, ClassicGroup]
    offsets: dict[str, CommittedOffsets]
    consumer: ConsumerGroupManager
    topics: Callable[[], Mapping[str, TopicMetadata]]
    latest_ms: int
    _queues: dict[str, deque[Callable[[], bool]]]

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

        def pending_positions(self, group_id: str) -> set[TopicPartition]: ...

    # --- one operation at a time per group ----------------------------------------------------

    def _serialized(self, group_id: str, operation: Callable[[], bool]) -> None:
        """Run `operation` once the group's earlier operations are done. It returns True when
        it queued a write, whose completion must call `_release(group_id)`."""
        queue = self._queues.get(group_id)
        if queue is not None:
            queue.append(operation)
            return
        self._queues[group_id] = deque([operation])
        self._drain(group_id)

    def _release(self, group_id: str) -> None:
        self._queues[group_id].popleft()
        self._drain(group_id)

    def _drain(self, group_id: str) -> None:
        queue = self._queues[group_id]
        while queue:
            if queue[0]():
                return
            queue.popleft()
        del self._queues[group_id]

    def _write_then_replay(
        self, group_id: str, records: list[Record], then: Callable[[ErrorCode], None]
    ) -> None:
        def done(error: ErrorCode) -> None:
            if error == ErrorCode.NONE:
                for key, value in records:
                    self.replay(key, value)
            then(error)
            self._release(group_id)

        self._write(group_id, records, done)

    # --- ConsumerGroupHeartbeat ---------------------------------------------------------------

    def consumer_group_heartbeat(
        self,
        request: HeartbeatRequest,
        now_ms: int,
        respond: Callable[[HeartbeatResponse], None],
    ) -> None:
        self._seen(now_ms)
        self._serialized(request.group_id, lambda: self._heartbeat_now(request, respond))

    def _heartbeat_now(
        self, request: HeartbeatRequest, respond: Callable[[HeartbeatResponse], None]
    ) -> bool:
        group_id = request.group_id
        replaced: list[Record] = []
        classic = self.groups.get(group_id)
        if classic is not None:
            if classic.state == GroupState.DEAD:
                respond(HeartbeatResponse(ErrorCode.COORDINATOR_NOT_AVAILABLE))
                return False
            if classic.members or classic.state != GroupState.EMPTY:
                respond(
                    HeartbeatResponse(
                        ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group."
                    )
                )
                return False
            replaced.append((encode_key(GroupKey(group_id)), None))
        result = self.consumer.heartbeat(request, self.topics(), self.latest_ms)
        response = result.response
        if response.error != ErrorCode.NONE or not result.records:
            respond(response)
            return False
        if replaced:
            logger.info("[GroupId %s] An empty classic group becomes a consumer group", group_id)

        def then(error: ErrorCode) -> None:
            if error == ErrorCode.NONE:
                respond(response)
            else:
                respond(HeartbeatResponse(write_error_for_group(error)))

        self._write_then_replay(group_id, replaced + _encoded(result.records), then)
        return True

    def _on_consumer_expiry(self, expiry: Expiry) -> bool:
        records = self.consumer.expire(expiry, self.topics())
        if not records:
            return False
        self._write_then_replay(expiry.group_id, _encoded(records), lambda error: None)
        return True

    # --- the namespace shared with classic groups ---------------------------------------------

    def _replay_consumer_group_record(self, record: ConsumerGroupRecord) -> None:
        classic = self.groups.get(record.group_id)
        if record.value is not None and classic is not None:
            if classic.members:
                raise ValueError(
                    f"a consumer group record for {record.group_id}, a classic group with members"
                )
            del self.groups[record.group_id]  # a simple group's offsets now belong to this one
        self.consumer.replay(record)

    def _consumer_group_tombstones(self, group: ConsumerGroup) -> list[Record]:
        """Delete an empty consumer group: its records, then its offsets'."""
        error, records = self.consumer.delete(group.group_id)
        assert error == ErrorCode.NONE, error
        state = self.offsets.get(group.group_id)
        # pending offsets of transactions get tombstones too (one per position), as in Kafka
        positions = set(state.values) if state is not None else set()
        committed = sorted(positions | self.pending_positions(group.group_id))
        return [
            *(
                (encode_key(OffsetKey(group.group_id, topic, partition)), None)
                for topic, partition in committed
            ),
            *_encoded(records),
        ]

    def _replace_empty_consumer_group(self, group_id: str) -> bool:
        """Before a classic member joins: False if a consumer group with members holds the id;
        an empty one is deleted (its offsets stay), as Kafka converts it."""
        group = self.consumer.groups.get(group_id)
        if group is None:
            return True
        if group.members:
            return False
        error, records = self.consumer.delete(group_id)
        assert error == ErrorCode.NONE, error
        encoded = _encoded(records)
        # Replayed now: the classic join that follows must not see the group. Were the write
        # to fail, the log would still hold the empty group, which a reload brings back.
        for key, value in encoded:
            self.replay(key, value)
        self._write(group_id, encoded, lambda error: None)
        return True

    def _delete_consumer_group(self, group_id: str, then: Callable[[ErrorCode], None]) -> bool:
        """One step of the group's queue: DeleteGroups of an empty consumer group."""
        group = self.consumer.groups.get(group_id)
        if group is None:
            then(ErrorCode.GROUP_ID_NOT_FOUND)
            return False
        if group.members:
            then(ErrorCode.NON_EMPTY_GROUP)
            return False
        self._write_then_replay(
            group_id,
            self._consumer_group_tombstones(group),
            lambda error: then(write_error_for_group(error)),
        )
        return True

    # --- ConsumerGroupDescribe ----------------------------------------------------------------

    def describe_consumer_groups(self, group_ids: Iterable[str]) -> list[DescribedGroup]:
        names = {topic.topic_id: name for name, topic in self.topics().items()}
        described: list[DescribedGroup] = []
        for group_id in group_ids:
            classic = self.groups.get(group_id)
            if classic is not None and classic.state != GroupState.DEAD:
                described.append(
                    DescribedGroup(
                        group_id,
                        ErrorCode.GROUP_ID_NOT_FOUND,
                        f"Group {group_id} is not a consumer group.",
                    )
                )
            else:
                described.extend(self.consumer.describe([group_id], names))
        return described
