"""WriteTxnMarkers (key 27), v1: a transaction coordinator on another broker asks this broker
to end a transaction on partitions it leads (v0 is gone since Kafka 4.0; v1 is flexible).

Each marker is a COMMIT or ABORT control batch of the producer, appended with acks=all to
every named partition; the answer comes once all are in the ISR, one error per partition:
UNKNOWN_TOPIC_OR_PARTITION for a partition this broker has no replica of,
NOT_LEADER_OR_FOLLOWER where it is a follower, TRANSACTION_COORDINATOR_FENCED for a marker of
an older coordinator epoch than the partition has seen, INVALID_PRODUCER_EPOCH for an epoch
older than the producer's, NOT_ENOUGH_REPLICAS while the ISR is below min.insync.replicas,
REQUEST_TIMED_OUT after `request.timeout.ms`. A marker on a `__consumer_offsets` partition
also makes the transaction's offsets committed (or drops them) in the group coordinator.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.transaction.messages import Marker
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler
from odradek.server.transaction_markers import write_marker_here

if TYPE_CHECKING:
    from odradek.server.node import Node


@handler(ApiKey.WRITE_TXN_MARKERS, versions=(1, 1))
async def handle_write_txn_markers(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.WRITE_TXN_MARKERS, ctx.api_version)
    timeout_s = ctx.node.config["request.timeout.ms"] / 1000
    entries = [
        (
            entry.producer_id,
            [
                Marker(
                    topic.name,
                    int(index),
                    int(entry.producer_id),
                    int(entry.producer_epoch),
                    int(entry.coordinator_epoch),
                    bool(entry.transaction_result),
                )
                for topic in entry.topics
                for index in topic.partition_indexes
            ],
        )
        for entry in request.markers
    ]
    # every marker of every producer appended at once, answered when all are in the ISR
    errors = iter(
        await asyncio.gather(
            *(_write(ctx.node, m, timeout_s) for _, markers in entries for m in markers)
        )
    )
    results = []
    for producer_id, markers in entries:
        by_topic: dict[str, list[tuple[int, ErrorCode]]] = {}
        for marker in markers:
            by_topic.setdefault(marker.topic, []).append((marker.partition, next(errors)))
        results.append(
            schema.WritableTxnMarkerResult(
                producer_id=producer_id,
                topics=tuple(
                    schema.WritableTxnMarkerTopicResult(
                        name=name,
                        partitions=tuple(
                            schema.WritableTxnMarkerPartitionResult(
                                partition_index=index, error_code=error
                            )
                            for index, error in items
                        ),
                    )
                    for name, items in by_topic.items()
                ),
            )
        )
    return schema.WriteTxnMarkersResponse(markers=tuple(results))


async def _write(node: Node, marker: Marker, timeout_s: float) -> ErrorCode:
    try:
        await asyncio.wait_for(write_marker_here(node, marker), timeout_s)
    except KafkaError as exc:
        return exc.code
    except TimeoutError:
        return ErrorCode.REQUEST_TIMED_OUT
    return ErrorCode.NONE
