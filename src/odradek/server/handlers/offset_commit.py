"""OffsetCommit (key 8), v2-v9: store a group's consumed positions in `__consumer_offsets`.

Members of a classic group commit with their generation and member id; a generation of -1
with an empty member id is a "simple" commit (manual assignment, admin tools), accepted only
while the group has no members. Members of a consumer group (KIP-848) commit with their member
epoch over v9+ (STALE_MEMBER_EPOCH, FENCED_MEMBER_EPOCH). v2-v4 carry a retention time (an
explicit expiry); v6+ the leader epoch of the committed offset; v7+ group.instance.id. Each
partition of a topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION; the rest are committed
together and answered once the records are durable. v0-v1 (ZooKeeper-era storage) and v10
(topic ids) are not offered.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.group.messages import OffsetCommit
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import millis, response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.OFFSET_COMMIT, versions=(2, 9))
async def handle_offset_commit(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.OFFSET_COMMIT, ctx.api_version)
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
