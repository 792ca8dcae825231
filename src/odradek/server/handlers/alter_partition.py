"""AlterPartition (key 56), v2-3: a partition leader asks the active controller to change the
partition's ISR (`metadata/alter_partition.py` holds Kafka's checks and strict min ISR).

v2 names the new ISR by broker id, v3 with each member's broker epoch (KIP-903). Topics are
named by id (v2+; kio has no schema for v0-1, which named them). The request's broker epoch is
checked first (STALE_BROKER_EPOCH for the whole request); per partition, the answer is the state
after the change was committed, or the error. NOT_CONTROLLER from any node but the active
controller.
"""

from __future__ import annotations

import uuid
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.alter_partition import AlterPartitionItem, IsrMember
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.handlers.quorum_support import quorum_of
from odradek.server.registry import handler


@handler(ApiKey.ALTER_PARTITION, versions=(2, 3))
async def handle_alter_partition(ctx: RequestContext, request: Any) -> Any:
    quorum_of(ctx)
    version = ctx.api_version
    schema = response_schema(ApiKey.ALTER_PARTITION, version)
    items: list[AlterPartitionItem] = []
    for topic in request.topics:
        topic_id = topic.topic_id.bytes if topic.topic_id is not None else bytes(16)
        for p in topic.partitions:
            if version >= 3:
                members = tuple(
                    IsrMember(int(m.broker_id), int(m.broker_epoch)) for m in p.new_isr_with_epochs
                )
            else:
                members = tuple(IsrMember(int(b)) for b in p.new_isr)
            items.append(
                AlterPartitionItem(
                    topic_id,
                    int(p.partition_index),
                    int(p.leader_epoch),
                    int(p.partition_epoch),
                    members,
                    int(p.leader_recovery_state),
                )
            )
    try:
        outcomes = await ctx.node.cluster_control.alter_partition(
            int(request.broker_id), int(request.broker_epoch), items, version
        )
    except KafkaError as exc:
        return schema.AlterPartitionResponse(throttle_time=0, error_code=exc.code, topics=())
    by_topic: dict[bytes, list[Any]] = {}
    for outcome in outcomes:
        state = outcome.partition
        by_topic.setdefault(outcome.topic_id, []).append(
            schema.PartitionData(
                partition_index=outcome.partition_id,
                error_code=outcome.error,
                leader_id=state.leader if state is not None else -1,
                leader_epoch=state.leader_epoch if state is not None else -1,
                isr=state.isr if state is not None else (),
                leader_recovery_state=state.leader_recovery_state if state is not None else 0,
                partition_epoch=state.partition_epoch if state is not None else -1,
            )
        )
    return schema.AlterPartitionResponse(
        throttle_time=0,
        error_code=ErrorCode.NONE,
        topics=tuple(
            schema.TopicData(topic_id=uuid.UUID(bytes=topic_id), partitions=tuple(partitions))
            for topic_id, partitions in by_topic.items()
        ),
    )
