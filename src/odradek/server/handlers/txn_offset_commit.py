"""TxnOffsetCommit (key 28), v0-v5: a transactional producer commits a group's offsets inside
its transaction (consume-transform-produce, KIP-98; member and generation from v3, KIP-447).

The group's `__consumer_offsets` partition must be in the transaction (AddOffsetsToTxn); as with
a produced batch, that is verified with the transaction coordinator before the commit opens the
transaction there (KIP-890), and a commit whose transaction a marker ended while the answer was
on its way is refused (INVALID_TXN_STATE). The offsets are written in a transactional batch of
the producer and stay pending until the transaction's marker: a commit makes them the group's
committed offsets, an abort drops them. v5 clients (transaction version 2, KIP-890 part 2) send
no AddOffsetsToTxn: their commit adds the group's partition to the transaction. Partitions of
topics that do not exist get UNKNOWN_TOPIC_OR_PARTITION. Before v2, COORDINATOR_LOAD_IN_PROGRESS
is answered as COORDINATOR_NOT_AVAILABLE, as Kafka does for clients older than 2.0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.group.messages import OffsetCommit
from odradek.coordinator.group.records import OFFSETS_TOPIC
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler
from odradek.server.transaction_verification import (
    ask_coordinator,
    produce_error,
    verification_enabled,
)

# Coordinator errors for a commit that could not be checked now: retriable for the client.
_NOT_AVAILABLE = frozenset({ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION})


@handler(ApiKey.TXN_OFFSET_COMMIT, versions=(0, 5))
async def handle_txn_offset_commit(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    schema = response_schema(ApiKey.TXN_OFFSET_COMMIT, version)
    wanted = [(topic.name, p) for topic in request.topics for p in topic.partitions]
    errors = dict.fromkeys(((name, p.partition_index) for name, p in wanted), ErrorCode.NONE)
    image = ctx.node.image
    offsets: list[OffsetCommit] = []
    for name, item in wanted:
        topic = image.topic(name)
        if topic is None or item.partition_index not in topic.partitions:
            errors[(name, item.partition_index)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            continue
        offsets.append(
            OffsetCommit(
                name,
                item.partition_index,
                item.committed_offset,
                getattr(item, "committed_leader_epoch", -1),
                item.committed_metadata or "",
            )
        )
    refused, still_verified = await _refused(ctx, request, version)
    if refused is None and not still_verified():
        refused = ErrorCode.INVALID_TXN_STATE  # a marker ended the transaction meanwhile
    if refused is not None:
        for position in errors:
            if errors[position] == ErrorCode.NONE:
                errors[position] = refused
    elif offsets:
        outcome = await ctx.node.group_coordinator.commit_transactional_offsets(
            request.group_id,
            (request.producer_id, request.producer_epoch),
            getattr(request, "generation_id", -1),
            getattr(request, "member_id", ""),
            getattr(request, "group_instance_id", None),
            offsets,
        )
        for offset, error in zip(offsets, outcome, strict=True):
            errors[(offset.topic, offset.partition)] = error
    if version < 2:
        errors = {
            position: ErrorCode.COORDINATOR_NOT_AVAILABLE
            if error == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
            else error
            for position, error in errors.items()
        }
    by_topic: dict[str, list[tuple[int, ErrorCode]]] = {}
    for (name, index), error in errors.items():
        by_topic.setdefault(name, []).append((index, error))
    return schema.TxnOffsetCommitResponse(
        throttle_time=0,
        topics=tuple(
            schema.TxnOffsetCommitResponseTopic(
                name=name,
                partitions=tuple(
                    schema.TxnOffsetCommitResponsePartition(partition_index=index, error_code=error)
                    for index, error in items
                ),
            )
            for name, items in by_topic.items()
        ),
    )


def _verified() -> bool:
    return True


async def _refused(
    ctx: RequestContext, request: Any, version: int
) -> tuple[ErrorCode | None, Callable[[], bool]]:
    """Why no offset of the request can be committed, if none can; and whether the
    coordinator's word still holds when the commit is written (see transaction_verification):
    the commit is appended in the same step as this is asked."""
    if not request.group_id:
        return ErrorCode.INVALID_GROUP_ID, _verified
    node = ctx.node
    try:
        groups = await node.groups()
        partition = node.replica_manager.leader(
            OFFSETS_TOPIC, groups.core.partition_for(request.group_id)
        )
    except KafkaError as exc:
        code = exc.code if exc.code not in _NOT_AVAILABLE else ErrorCode.COORDINATOR_NOT_AVAILABLE
        return code, _verified
    producer_id = request.producer_id
    state = partition.log.producer_state
    add = version >= 5
    if state.has_open_transaction(producer_id) or not verification_enabled(node, add):
        return None, _verified
    guard = state.start_verification(producer_id)
    position = (OFFSETS_TOPIC, partition.partition_id)
    answers = await ask_coordinator(
        node, request.transactional_id, (producer_id, request.producer_epoch), [position], add
    )
    error = produce_error(answers[position], 12 if add else 0)  # v5 knows TRANSACTION_ABORTABLE
    if error != ErrorCode.NONE:
        state.end_verification(producer_id, guard)
        return (
            ErrorCode.COORDINATOR_NOT_AVAILABLE if error in _NOT_AVAILABLE else error
        ), _verified
    return None, lambda: state.may_append_verified(producer_id, guard)
