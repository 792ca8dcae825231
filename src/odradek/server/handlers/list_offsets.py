"""ListOffsets (key 2), v0-v8.

Per partition, by timestamp: -2 earliest (log start offset), -1 latest (high watermark, or the
last stable offset for read_committed), -3 the record with the largest timestamp (v7+, KIP-734),
-4 earliest local (v8+, KIP-405; no tiered storage here, so the log start offset); any other
value finds the first record whose timestamp is at or after it (-1/-1 when there is none).
As in Kafka, what a reader may fetch bounds every answer: the high watermark, or for
read_committed (isolation_level 1) the last stable offset, is "latest", and a record found by
timestamp (-3 included) at or past it is no answer (-1/-1).
A partition named twice in one request is INVALID_REQUEST, as Kafka answers.

v0 (old consumers; no schema in kio) answers a list of at most max_num_offsets offsets: for -1
the high watermark, for -2 the log start offset. For a timestamp Kafka 3.x answers with the
base offsets of segments whose file was last modified before it, which depends on file times;
here it is the v1 answer (the first record at or after it), empty when there is none.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.protocol.legacy_requests import (
    decode_list_offsets_v0_request,
    encode_list_offsets_v0_response,
)
from odradek.replication.partition import Partition
from odradek.server.context import RequestContext
from odradek.server.registry import handler

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4


def _lookup(
    ctx: RequestContext, topic: str, item: Any, read_committed: bool
) -> tuple[int, int, int]:
    """(offset, timestamp, leader epoch) for one partition; raises KafkaError."""
    partition = ctx.node.replica_manager.leader(topic, item.partition_index)
    offset, timestamp = _find(ctx, partition, item, read_committed)
    return offset, timestamp, partition.leader_epoch if offset >= 0 else -1


def _find(
    ctx: RequestContext, partition: Partition, item: Any, read_committed: bool
) -> tuple[int, int]:
    """(offset, timestamp) the request's timestamp names, (-1, -1) when there is none."""
    partition.check_leader_epoch(getattr(item, "current_leader_epoch", -1))
    timestamp = item.timestamp
    log = partition.log
    limit = partition.last_stable_offset if read_committed else partition.high_watermark
    if timestamp == LATEST:
        return limit, -1
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        if timestamp == EARLIEST_LOCAL and ctx.api_version < 8:
            raise KafkaError("earliest-local needs v8", ErrorCode.UNSUPPORTED_VERSION)
        return log.log_start_offset, -1
    if timestamp == MAX_TIMESTAMP:
        if ctx.api_version < 7:
            raise KafkaError("max timestamp needs v7", ErrorCode.UNSUPPORTED_VERSION)
        found = log.max_timestamp_offset()
    elif timestamp < 0:
        raise KafkaError(f"invalid timestamp {timestamp}", ErrorCode.INVALID_REQUEST)
    else:
        found = log.offset_for_timestamp(timestamp)
    if found is None or found[0] >= limit:
        return -1, -1
    return found


@handler(ApiKey.LIST_OFFSETS, versions=(0, 8), raw_below=1)
async def handle_list_offsets(ctx: RequestContext, request: Any) -> Any:
    if ctx.api_version == 0:
        return _list_offsets_v0(ctx)
    schema = response_schema(ApiKey.LIST_OFFSETS, ctx.api_version)
    read_committed = getattr(request, "isolation_level", 0) == 1
    counts = Counter(
        (topic.name, item.partition_index) for topic in request.topics for item in topic.partitions
    )
    topics = []
    for topic in request.topics:
        partitions = []
        for item in topic.partitions:
            code = ErrorCode.NONE
            offset, timestamp, epoch = -1, -1, -1
            try:
                if counts[(topic.name, item.partition_index)] > 1:
                    raise KafkaError("duplicate partition", ErrorCode.INVALID_REQUEST)
                offset, timestamp, epoch = _lookup(ctx, topic.name, item, read_committed)
            except KafkaError as exc:
                code = exc.code
            partitions.append(
                schema.ListOffsetsPartitionResponse(
                    partition_index=item.partition_index,
                    error_code=code,
                    timestamp=timestamp,
                    offset=offset,
                    leader_epoch=epoch,
                )
            )
        topics.append(
            schema.ListOffsetsTopicResponse(name=topic.name, partitions=tuple(partitions))
        )
    return schema.ListOffsetsResponse(throttle_time=0, topics=tuple(topics))


def _list_offsets_v0(ctx: RequestContext) -> bytes:
    _, topics = decode_list_offsets_v0_request(ctx.frame, ctx.body_position)
    answer: list[tuple[str, list[tuple[int, int, list[int]]]]] = []
    for name, partitions in topics:
        rows: list[tuple[int, int, list[int]]] = []
        for item in partitions:
            try:
                partition = ctx.node.replica_manager.leader(name, item.partition)
                if item.timestamp == LATEST:
                    offsets = [partition.high_watermark]
                elif item.timestamp == EARLIEST:
                    offsets = [partition.log.log_start_offset]
                elif item.timestamp < 0:
                    raise KafkaError(
                        f"invalid timestamp {item.timestamp}", ErrorCode.INVALID_REQUEST
                    )
                else:
                    found = partition.log.offset_for_timestamp(item.timestamp)
                    offsets = (
                        [found[0]]
                        if found is not None and found[0] < partition.high_watermark
                        else []
                    )
                rows.append(
                    (item.partition, ErrorCode.NONE, offsets[: max(item.max_num_offsets, 0)])
                )
            except KafkaError as exc:
                rows.append((item.partition, exc.code, []))
        answer.append((name, rows))
    return encode_list_offsets_v0_response(ctx.header.correlation_id, answer)
