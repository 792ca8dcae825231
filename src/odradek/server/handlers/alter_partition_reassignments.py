"""AlterPartitionReassignments (key 45), v0-v1: move partitions to new replica sets, or cancel
(replicas null) the reassignment in progress, answered by the active controller once the
changes are committed (`metadata/reassignment.py` decides; other brokers forward the request).

Per partition, Kafka's errors: INVALID_REPLICA_ASSIGNMENT (empty, duplicate or unregistered
brokers; a cancel that would need an unclean election), UNKNOWN_TOPIC_OR_PARTITION,
NO_REASSIGNMENT_IN_PROGRESS (a cancel with none), and with v1's
allow_replication_factor_change false (KIP-860) INVALID_REPLICATION_FACTOR for a target of
another size. A reassignment completes later, when the added replicas have joined the ISR;
ListPartitionReassignments shows it until then. Only NOT_CONTROLLER (the leadership moved
meanwhile) is a top-level error.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.reassignment import ReassignmentOutcome, ReassignmentTarget
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.ALTER_PARTITION_REASSIGNMENTS, versions=(0, 1))
async def handle_alter_partition_reassignments(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    schema = response_schema(ApiKey.ALTER_PARTITION_REASSIGNMENTS, version)
    allow_change = bool(request.allow_replication_factor_change) if version >= 1 else True
    targets = [
        ReassignmentTarget(
            topic.name,
            int(p.partition_index),
            tuple(int(b) for b in p.replicas) if p.replicas is not None else None,
        )
        for topic in request.topics
        for p in topic.partitions
    ]
    fields: dict[str, Any] = (
        {"allow_replication_factor_change": allow_change} if version >= 1 else {}
    )
    try:
        outcomes = await ctx.node.cluster_control.alter_partition_reassignments(
            targets, allow_change
        )
    except KafkaError as exc:
        return schema.AlterPartitionReassignmentsResponse(
            throttle_time=0,
            error_code=exc.code,
            error_message=str(exc) or None,
            responses=(),
            **fields,
        )
    by_topic: dict[str, list[ReassignmentOutcome]] = {}
    for outcome in outcomes:
        by_topic.setdefault(outcome.topic, []).append(outcome)
    return schema.AlterPartitionReassignmentsResponse(
        throttle_time=0,
        error_code=ErrorCode.NONE,
        error_message=None,
        responses=tuple(
            schema.ReassignableTopicResponse(
                name=name,
                partitions=tuple(
                    schema.ReassignablePartitionResponse(
                        partition_index=o.partition_id,
                        error_code=o.error,
                        error_message=o.message,
                    )
                    for o in results
                ),
            )
            for name, results in by_topic.items()
        ),
        **fields,
    )
