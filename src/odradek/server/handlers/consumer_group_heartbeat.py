"""ConsumerGroupHeartbeat (key 68), v0-v1: the consumer group protocol of KIP-848.

One request joins (member epoch 0), heartbeats, acknowledges an assignment or leaves (-1, or -2
for a static member that will come back); the coordinator computes the assignment with a
server-side assignor and answers with the member's epoch and, when it changed, its partitions.
v0: a joining member gets its id from the coordinator; v1 (what librdkafka speaks): the client
names itself, and SubscribedTopicRegex subscribes to the topics a regular expression matches.
The protocol is `coordinator/group/consumer_group_manager.py`'s.
"""

from __future__ import annotations

import uuid
from typing import Any

from odradek.common.errors import KafkaError
from odradek.coordinator.group.consumer_group_messages import (
    HeartbeatRequest,
    HeartbeatResponse,
)
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import millis, response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.CONSUMER_GROUP_HEARTBEAT, versions=(0, 1))
async def handle_consumer_group_heartbeat(ctx: RequestContext, request: Any) -> Any:
    names = request.subscribed_topic_names
    owned = request.topic_partitions
    heartbeat = HeartbeatRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        member_epoch=request.member_epoch,
        instance_id=request.instance_id,
        rack_id=request.rack_id,
        rebalance_timeout_ms=millis(request.rebalance_timeout),
        subscribed_topic_names=tuple(names) if names is not None else None,
        subscribed_topic_regex=getattr(request, "subscribed_topic_regex", None),
        server_assignor=request.server_assignor,
        topic_partitions=tuple(
            (t.topic_id.bytes if t.topic_id is not None else bytes(16), tuple(t.partitions))
            for t in owned
        )
        if owned is not None
        else None,
        client_id=ctx.header.client_id or "",
        client_host=ctx.client_host,
        version=ctx.api_version,
    )
    try:
        coordinator = await ctx.node.groups()
        response = await coordinator.consumer_group_heartbeat(heartbeat)
    except KafkaError as exc:
        response = HeartbeatResponse(exc.code, str(exc) or None)
    return _response(ctx.api_version, response)


def _response(version: int, response: HeartbeatResponse) -> Any:
    schema = response_schema(ApiKey.CONSUMER_GROUP_HEARTBEAT, version)
    assignment = None
    if response.assignment is not None:
        assignment = schema.Assignment(
            topic_partitions=tuple(
                schema.TopicPartitions(topic_id=uuid.UUID(bytes=topic_id), partitions=partitions)
                for topic_id, partitions in response.assignment
            )
        )
    return schema.ConsumerGroupHeartbeatResponse(
        throttle_time=0,
        error_code=response.error,
        error_message=response.error_message,
        member_id=response.member_id,
        member_epoch=response.member_epoch,
        heartbeat_interval=response.heartbeat_interval_ms,
        assignment=assignment,
    )
