"""ListPartitionReassignments (key 46), v0: the reassignments in progress (replicas, adding
and removing replicas), of every partition (topics null) or of those named, from the active
controller's image (other brokers forward the request). Unknown topics and partitions, and
partitions with nothing in progress, are left out, as Kafka does. Only NOT_CONTROLLER (the
leadership moved meanwhile) is an error.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.reassignment import OngoingReassignment
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.LIST_PARTITION_REASSIGNMENTS, versions=(0, 0))
async def handle_list_partition_reassignments(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.LIST_PARTITION_REASSIGNMENTS, ctx.api_version)
    wanted: dict[str, list[int]] | None = None
    if request.topics is not None:
        wanted = {}
        for topic in request.topics:
            wanted.setdefault(topic.name, []).extend(int(p) for p in topic.partition_indexes)
    try:
        ongoing = await ctx.node.cluster_control.list_partition_reassignments(wanted)
    except KafkaError as exc:
        return schema.ListPartitionReassignmentsResponse(
            throttle_time=0, error_code=exc.code, error_message=str(exc) or None, topics=()
        )
    by_topic: dict[str, list[OngoingReassignment]] = {}
    for item in ongoing:
        by_topic.setdefault(item.topic, []).append(item)
    return schema.ListPartitionReassignmentsResponse(
        throttle_time=0,
        error_code=ErrorCode.NONE,
        error_message=None,
        topics=tuple(
            schema.OngoingTopicReassignment(
                name=name,
                partitions=tuple(
                    schema.OngoingPartitionReassignment(
                        partition_index=r.partition_id,
                        replicas=r.replicas,
                        adding_replicas=r.adding_replicas,
                        removing_replicas=r.removing_replicas,
                    )
                    for r in items
                ),
            )
            for name, items in by_topic.items()
        ),
    )
