"""FindCoordinator (key 10), v0-v5: which broker coordinates a group or a transactional id.

The coordinator of a key is the leader of its partition of `__consumer_offsets` (groups) or
`__transaction_state` (transactional ids), whichever broker that is; a partition without a live
leader is COORDINATOR_NOT_AVAILABLE (retriable). v0 asks for a group only; v1+
carry key_type (0 group, 1 transaction; anything else is INVALID_REQUEST); v4+ batch several
keys. An empty group id is INVALID_REQUEST, as Kafka answers.

librdkafka also reads this API's presence in ApiVersions as "the broker is 0.10+ with lz4
framing fixed" and only compresses with lz4 when it is advertised.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.group.records import OFFSETS_TOPIC
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.cluster_view import broker_endpoint
from odradek.server.context import RequestContext
from odradek.server.registry import handler
from odradek.server.transaction_coordinator import TRANSACTION_STATE_TOPIC

KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1


def _locate(ctx: RequestContext, key: str, key_type: int) -> tuple[ErrorCode, str | None, Any]:
    """The error, its message, and the coordinator's endpoint (when found)."""
    if key_type not in (KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION):
        return ErrorCode.INVALID_REQUEST, f"Unsupported key type {key_type}", None
    if not key:
        return ErrorCode.INVALID_REQUEST, "The coordinator key must not be empty", None
    node = ctx.node
    if key_type == KEY_TYPE_GROUP:
        topic_name = OFFSETS_TOPIC
        partition_id = node.group_coordinator.core.partition_for(key)
    else:
        topic_name = TRANSACTION_STATE_TOPIC
        partition_id = node.transaction_coordinator.core.partition_for(key)
    topic = node.image.topic(topic_name)
    partition = None if topic is None else topic.partitions.get(partition_id)
    endpoint = None if partition is None else broker_endpoint(node, partition.leader)
    if endpoint is None:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, "The coordinator is not available.", None
    return ErrorCode.NONE, None, endpoint


def _unavailable(schema: Any, version: int, request: Any, exc: KafkaError) -> Any:
    if version >= 4:
        return schema.FindCoordinatorResponse(
            throttle_time=0,
            coordinators=tuple(
                schema.Coordinator(
                    key=key,
                    node_id=-1,
                    host="",
                    port=-1,
                    error_code=exc.code,
                    error_message=str(exc),
                )
                for key in request.coordinator_keys
            ),
        )
    return schema.FindCoordinatorResponse(
        throttle_time=0, error_code=exc.code, error_message=str(exc), node_id=-1, host="", port=-1
    )


@handler(ApiKey.FIND_COORDINATOR, versions=(0, 5))
async def handle_find_coordinator(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.FIND_COORDINATOR, ctx.api_version)
    node = ctx.node
    key_type = getattr(request, "key_type", KEY_TYPE_GROUP)
    try:
        # creates __consumer_offsets or __transaction_state on first use, as Kafka does
        if key_type == KEY_TYPE_GROUP:
            await node.groups()
        elif key_type == KEY_TYPE_TRANSACTION:
            await node.transactions()
    except KafkaError as exc:
        return _unavailable(schema, ctx.api_version, request, exc)
    if ctx.api_version >= 4:
        coordinators = []
        for key in request.coordinator_keys:
            error, message, found = _locate(ctx, key, key_type)
            coordinators.append(
                schema.Coordinator(
                    key=key,
                    node_id=found.broker_id if found else -1,
                    host=found.host if found else "",
                    port=found.port if found else -1,
                    error_code=error,
                    error_message=message,
                )
            )
        return schema.FindCoordinatorResponse(throttle_time=0, coordinators=tuple(coordinators))
    error, message, found = _locate(ctx, request.key, key_type)
    return schema.FindCoordinatorResponse(
        throttle_time=0,
        error_code=error,
        error_message=message,
        node_id=found.broker_id if found else -1,
        host=found.host if found else "",
        port=found.port if found else -1,
    )
