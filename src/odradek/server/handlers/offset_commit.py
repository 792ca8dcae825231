"""OffsetCommit (key 8), v0-v9: store a group's consumed positions in `__consumer_offsets`.

Members of a classic group commit with their generation and member id; a generation of -1
with an empty member id is a "simple" commit (manual assignment, admin tools), accepted only
while the group has no members. Members of a consumer group (KIP-848) commit with their member
epoch over v9+ (STALE_MEMBER_EPOCH, FENCED_MEMBER_EPOCH). v2-v4 carry a retention time (an
explicit expiry); v6+ the leader epoch of the committed offset; v7+ group.instance.id. Each
partition of a topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION; the rest are committed
together and answered once the records are durable. v0-v1 (no kio schema; old clients such as
sarama commit with v1 by default) are decoded here and committed the same way, as Kafka 3.x
stores them: v0 is a simple commit (no generation), v1's per-partition commit timestamp is
not used (Kafka 3.x derives an explicit expiry from one that is set; here the broker's
offsets.retention.minutes applies). v10 (topic ids) is not offered.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.group.messages import OffsetCommit
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import millis, response_schema
from odradek.protocol.legacy_requests import (
    decode_legacy_offset_commit_request,
    encode_legacy_offset_commit_response,
)
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.OFFSET_COMMIT, versions=(0, 9), raw_below=2)
async def handle_offset_commit(ctx: RequestContext, request: Any) -> Any:
    if ctx.api_version < 2:
        legacy = decode_legacy_offset_commit_request(ctx.frame, ctx.body_position, ctx.api_version)
        errors = await _commit(ctx, legacy)
        return encode_legacy_offset_commit_response(
            ctx.header.correlation_id,
            [
                (
                    t.name,
                    [
                        (p.partition_index, errors[(t.name, p.partition_index)])
                        for p in t.partitions
                    ],
                )
                for t in legacy.topics
            ],
        )
    schema = response_schema(ApiKey.OFFSET_COMMIT, ctx.api_version)
    errors = await _commit(ctx, request)
    return schema.OffsetCommitResponse(
        throttle_time=0,
        topics=tuple(
            schema.OffsetCommitResponseTopic(
                name=topic.name,
                partitions=tuple(
                    schema.OffsetCommitResponsePartition(
                        partition_index=item.partition_index,
                        error_code=errors[(topic.name, item.partition_index)],
                    )
                    for item in topic.partitions
                ),
            )
            for topic in request.topics
        ),
    )


async def _commit(ctx: RequestContext, request: Any) -> dict[tuple[str, int], ErrorCode]:
    """Commit what the request names; the error of each (topic, partition)."""
    image = ctx.node.image
    errors: dict[tuple[str, int], ErrorCode] = {}
    commits: list[OffsetCommit] = []
    for topic in request.topics:
        known = image.topic(topic.name)
        for item in topic.partitions:
            key = (topic.name, item.partition_index)
            if known is None or item.partition_index not in known.partitions:
                errors[key] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            commits.append(
                OffsetCommit(
                    topic.name,
                    item.partition_index,
                    item.committed_offset,
                    getattr(item, "committed_leader_epoch", -1),
                    item.committed_metadata or "",
                )
            )
    if commits:
        retention = getattr(request, "retention_time", None)
        try:
            coordinator = await ctx.node.groups()
            outcomes = await coordinator.commit_offsets(
                request.group_id,
                request.generation_id_or_member_epoch,
                request.member_id,
                getattr(request, "group_instance_id", None),
                commits,
                millis(retention) if retention is not None else -1,
                ctx.api_version,
            )
        except KafkaError as exc:
            outcomes = [exc.code] * len(commits)
        for commit, code in zip(commits, outcomes, strict=True):
            errors[(commit.topic, commit.partition)] = code
    return errors
