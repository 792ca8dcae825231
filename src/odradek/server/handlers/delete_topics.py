"""DeleteTopics (key 20), v1-v6: by name, or (v6) by topic id.

Deletion is a RemoveTopicRecord committed to the metadata log; replaying it removes the
partitions and their logs. delete.topic.enable=false is TOPIC_DELETION_DISABLED; an unknown
name is UNKNOWN_TOPIC_OR_PARTITION, an unknown id UNKNOWN_TOPIC_ID.
"""

from __future__ import annotations

import uuid
from typing import Any

from odradek.common.errors import ErrorCode
from odradek.metadata.records import MetadataRecord
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.DELETE_TOPICS, versions=(1, 6))
async def handle_delete_topics(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.DELETE_TOPICS, ctx.api_version)
    node = ctx.node
    if ctx.api_version >= 6:
        wanted = [(t.name, t.topic_id.bytes if t.topic_id else bytes(16)) for t in request.topics]
    else:
        wanted = [(name, bytes(16)) for name in request.topic_names]
    results = []
    async with node.metadata_lock:
        image = node.image
        records: list[MetadataRecord] = []
        deleting: set[bytes] = set()
        for name, topic_id in wanted:
            code, message = ErrorCode.NONE, None
            topic = image.topic(name) if name is not None else image.topic_by_id(topic_id)
            if not node.config["delete.topic.enable"]:
                code, message = ErrorCode.TOPIC_DELETION_DISABLED, "Topic deletion is disabled."
            elif topic is None:
                if name is None:
                    code, message = ErrorCode.UNKNOWN_TOPIC_ID, "Unknown topic id"
                else:
                    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    message = "This server does not host this topic-partition."
            elif topic.topic_id not in deleting:
                deleting.add(topic.topic_id)
                records.extend(node.controller.delete_topic(image, topic.topic_id))
            results.append(
                schema.DeletableTopicResult(
                    name=topic.name if topic else name,
                    topic_id=uuid.UUID(bytes=topic.topic_id if topic else topic_id),
                    error_code=code,
                    error_message=message,
                )
            )
        await node.commit(records)
    return schema.DeleteTopicsResponse(throttle_time=0, responses=tuple(results))
