"""CreatePartitions (key 37), v0-v3: grow a topic's partition count, optionally placed by hand.

Fewer or equal partitions is INVALID_PARTITIONS; assignments must name one replica list per new
partition, of the topic's replication factor, on known brokers. validate_only commits nothing.
A topic named twice is INVALID_REQUEST.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.records import MetadataRecord
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.CREATE_PARTITIONS, versions=(0, 3))
async def handle_create_partitions(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.CREATE_PARTITIONS, ctx.api_version)
    node = ctx.node
    counts = Counter(topic.name for topic in request.topics)
    results = []
    async with node.metadata_lock:
        image = node.image
        records: list[MetadataRecord] = []
        for topic in request.topics:
            code, message = ErrorCode.NONE, None
            try:
                if counts[topic.name] > 1:
                    raise KafkaError(
                        f"Duplicate topic {topic.name} in the request", ErrorCode.INVALID_REQUEST
                    )
                assignments = (
                    [tuple(a.broker_ids) for a in topic.assignments]
                    if topic.assignments is not None
                    else None
                )
                records.extend(
                    node.controller.create_partitions(image, topic.name, topic.count, assignments)
                )
            except KafkaError as exc:
                code, message = exc.code, str(exc) or None
            results.append(
                schema.CreatePartitionsTopicResult(
                    name=topic.name, error_code=code, error_message=message
                )
            )
        if not request.validate_only:
            await node.commit(records)
    return schema.CreatePartitionsResponse(throttle_time=0, results=tuple(results))
