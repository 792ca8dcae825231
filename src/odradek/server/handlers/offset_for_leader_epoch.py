"""OffsetForLeaderEpoch (key 23), v2-v4: where a leader epoch ends in a partition's log.

A follower asks it to find where its log diverges from the leader's and truncates there
(KIP-101, KIP-279); a consumer asks it before resuming from a committed or fetched position
that carries a leader epoch, to detect that the log was truncated under it (KIP-320). The
answer comes from the partition's leader epoch cache (storage/leader_epochs.py): the largest
epoch at or below the one asked for and the offset where it ends, the log end offset for the
current epoch, and (-1, -1) for an epoch the log does not know. `current_leader_epoch` is
checked as Fetch checks it: FENCED_LEADER_EPOCH when the asker is behind, UNKNOWN_LEADER_EPOCH
when it is ahead. Versions 0-1 (clients before Kafka 2.1) are not offered, as in Kafka 4.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.OFFSET_FOR_LEADER_EPOCH, versions=(2, 4))
async def handle_offset_for_leader_epoch(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.OFFSET_FOR_LEADER_EPOCH, ctx.api_version)
    replica_manager = ctx.node.replica_manager
    topics = []
    for topic in request.topics:
        partitions = []
        for item in topic.partitions:
            error, epoch, end_offset = ErrorCode.NONE, -1, -1
            try:
                partition = replica_manager.leader(topic.topic, item.partition)
                partition.check_leader_epoch(item.current_leader_epoch)
                epoch, end_offset = partition.log.end_offset_for_epoch(item.leader_epoch)
            except KafkaError as exc:
                error = exc.code
            partitions.append(
                schema.EpochEndOffset(
                    error_code=error,
                    partition=item.partition,
                    leader_epoch=epoch,
                    end_offset=end_offset,
                )
            )
        topics.append(
            schema.OffsetForLeaderTopicResult(topic=topic.topic, partitions=tuple(partitions))
        )
    return schema.OffsetForLeaderEpochResponse(throttle_time=0, topics=tuple(topics))
