"""OffsetFetch (key 9), v1-v9: a group's committed offsets.

v1 names the partitions; v2+ may ask for every committed partition (topics null) and carry a
group-level error; v5+ return the committed leader epoch; v7+ carry require_stable (KIP-447): a
partition with offsets of an open transaction pending (TxnOffsetCommit not yet settled by its
marker) is then UNSTABLE_OFFSET_COMMIT, so the client retries until the transaction ends;
without it, the last settled offset is answered; v8+ ask for several groups at once
(KIP-709). A partition with nothing committed has offset -1 and empty metadata. v9+ may name
a member and its epoch (KIP-848): for a consumer group they are checked as a commit's are
(UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH). v10 (topic ids) is not offered.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.group.messages import CommittedOffset
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


def _group_offsets(
    ctx: RequestContext,
    group_id: str,
    topics: Any,
    unavailable: ErrorCode | None,
    member: tuple[str | None, int] = (None, -1),
    require_stable: bool = False,
) -> tuple[ErrorCode, list[CommittedOffset]]:
    if unavailable is not None:
        return unavailable, []
    if not group_id:
        return ErrorCode.INVALID_GROUP_ID, []
    try:
        ctx.node.group_coordinator.check_owner(group_id)
    except KafkaError as exc:
        return exc.code, []
    refused = ctx.node.group_coordinator.core.check_offset_fetch(group_id, *member)
    if refused != ErrorCode.NONE:
        return refused, []
    wanted = None
    if topics is not None:
        wanted = [(t.name, p) for t in topics for p in t.partition_indexes]
    core = ctx.node.group_coordinator.core
    offsets = core.fetch_offsets(group_id, wanted)
    if require_stable:
        unstable = core.pending_positions(group_id)
        offsets = [
            CommittedOffset(o.topic, o.partition, -1, -1, "", ErrorCode.UNSTABLE_OFFSET_COMMIT)
            if (o.topic, o.partition) in unstable
            else o
            for o in offsets
        ]
    return ErrorCode.NONE, offsets


def _topics(
    schema: Any,
    version: int,
    offsets: list[CommittedOffset],
    error: ErrorCode = ErrorCode.NONE,
) -> tuple[Any, ...]:
    """Offsets grouped by topic; `error` is set on every partition (v1 has no group error)."""
    by_topic: dict[str, list[CommittedOffset]] = {}
    for offset in offsets:
        by_topic.setdefault(offset.topic, []).append(offset)
    topic_cls, partition_cls = (
        ("OffsetFetchResponseTopics", "OffsetFetchResponsePartitions")
        if version >= 8
        else ("OffsetFetchResponseTopic", "OffsetFetchResponsePartition")
    )
    make_topic = getattr(schema, topic_cls)
    make_partition = getattr(schema, partition_cls)
    return tuple(
        make_topic(
            name=name,
            partitions=tuple(
                make_partition(
                    partition_index=o.partition,
                    committed_offset=o.offset,
                    committed_leader_epoch=o.leader_epoch,
                    metadata=o.metadata,
                    error_code=o.error if error == ErrorCode.NONE else error,
                )
                for o in items
            ),
        )
        for name, items in by_topic.items()
    )


@handler(ApiKey.OFFSET_FETCH, versions=(1, 9))
async def handle_offset_fetch(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    schema = response_schema(ApiKey.OFFSET_FETCH, version)
    try:
        await ctx.node.groups()
        unavailable: ErrorCode | None = None
    except KafkaError as exc:
        unavailable = exc.code
    require_stable = bool(getattr(request, "require_stable", False))
    if version >= 8:
        groups = []
        for group in request.groups:
            member = (getattr(group, "member_id", None), getattr(group, "member_epoch", -1))
            error, offsets = _group_offsets(
                ctx, group.group_id, group.topics, unavailable, member, require_stable
            )
            groups.append(
                schema.OffsetFetchResponseGroup(
                    group_id=group.group_id,
                    topics=_topics(schema, version, offsets),
                    error_code=error,
                )
            )
        return schema.OffsetFetchResponse(throttle_time=0, groups=tuple(groups))
    error, offsets = _group_offsets(
        ctx, request.group_id, request.topics, unavailable, require_stable=require_stable
    )
    if version < 2 and error != ErrorCode.NONE:  # no group-level error before v2
        offsets = [
            CommittedOffset(t.name, p, -1, -1, "")
            for t in request.topics
            for p in t.partition_indexes
        ]
        return schema.OffsetFetchResponse(topics=_topics(schema, version, offsets, error))
    return schema.OffsetFetchResponse(
        throttle_time=0, topics=_topics(schema, version, offsets), error_code=error
    )
