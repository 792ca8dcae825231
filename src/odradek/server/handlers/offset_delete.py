"""OffsetDelete (key 47), v0: delete some committed offsets of a group (KIP-496).

Allowed for an empty group, and for a live consumer group only on topics its members do not
subscribe to (GROUP_SUBSCRIBED_TO_TOPIC otherwise); a live group whose subscriptions cannot be
read (not the consumer protocol) is NON_EMPTY_GROUP. Partitions of unknown topics are
UNKNOWN_TOPIC_OR_PARTITION.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.OFFSET_DELETE, versions=(0, 0))
async def handle_offset_delete(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.OFFSET_DELETE, ctx.api_version)
    image = ctx.node.image
    errors: dict[tuple[str, int], ErrorCode] = {}
    wanted: list[tuple[str, int]] = []
    for topic in request.topics:
        known = image.topic(topic.name)
        for item in topic.partitions:
            key = (topic.name, item.partition_index)
            if known is None or item.partition_index not in known.partitions:
                errors[key] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                wanted.append(key)
    try:
        coordinator = await ctx.node.groups()
        error, outcomes = await coordinator.delete_offsets(request.group_id, wanted)
    except KafkaError as exc:
        error, outcomes = exc.code, []
    if error != ErrorCode.NONE:
        return schema.OffsetDeleteResponse(error_code=error, throttle_time=0, topics=())
    errors.update(zip(wanted, outcomes, strict=True))
    return schema.OffsetDeleteResponse(
        error_code=ErrorCode.NONE,
        throttle_time=0,
        topics=tuple(
            schema.OffsetDeleteResponseTopic(
                name=topic.name,
                partitions=tuple(
                    schema.OffsetDeleteResponsePartition(
                        partition_index=item.partition_index,
                        error_code=errors[(topic.name, item.partition_index)],
                    )
                    for item in topic.partitions
                ),
            )
            for topic in request.topics
        ),
    )
