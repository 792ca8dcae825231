"""DeleteRecords (key 21), v0-v2: move partitions' log start offset forward (the records below it
are gone for readers, and whole segments below it are deleted).

Per partition: offset -1 means the high watermark; an offset below 0 or above the high
watermark is OFFSET_OUT_OF_RANGE; a topic whose cleanup.policy lacks `delete` refuses with
POLICY_VIOLATION; an offset at or below the current log start offset changes nothing. The
answer's low watermark is the partition's log start offset afterwards. Kafka's rules
(Partition.deleteRecordsOnLeader); with a single replica nothing waits for followers.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler

HIGH_WATERMARK = -1


def _delete(ctx: RequestContext, topic: str, index: int, offset: int) -> tuple[ErrorCode, int]:
    try:
        partition = ctx.node.replica_manager.leader(topic, index)
    except KafkaError as exc:
        return exc.code, -1
    log = partition.log
    target = partition.high_watermark if offset == HIGH_WATERMARK else offset
    if target < 0 or target > partition.high_watermark:
        return ErrorCode.OFFSET_OUT_OF_RANGE, -1
    if "delete" not in log.config.cleanup_policy:
        return ErrorCode.POLICY_VIOLATION, -1
    try:
        return ErrorCode.NONE, log.delete_records_before(target)
    except KafkaError as exc:
        return exc.code, -1


@handler(ApiKey.DELETE_RECORDS, versions=(0, 2))
async def handle_delete_records(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.DELETE_RECORDS, ctx.api_version)
    topics = []
    for topic in request.topics:
        results = []
        for item in topic.partitions:
            error, low_watermark = _delete(ctx, topic.name, item.partition_index, item.offset)
            results.append(
                schema.DeleteRecordsPartitionResult(
                    partition_index=item.partition_index,
                    low_watermark=low_watermark,
                    error_code=error,
                )
            )
        topics.append(schema.DeleteRecordsTopicResult(name=topic.name, partitions=tuple(results)))
    return schema.DeleteRecordsResponse(throttle_time=0, topics=tuple(topics))
