"""ConsumerGroupDescribe (key 69), v0-v1: consumer groups (KIP-848) as their coordinator sees
them: state, epochs, assignor, and each member's subscriptions, assignment and target.

A classic group, or one that does not exist, is GROUP_ID_NOT_FOUND (admin clients then fall
back to DescribeGroups). v1 adds each member's type: 1, a consumer protocol member (members of
the classic protocol are never held in a consumer group here). Without ACLs, the operations a
caller may perform (when asked) are every group operation.
"""

from __future__ import annotations

import uuid
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.group.consumer_group_messages import (
    DescribedGroup,
    DescribedTopicPartitions,
)
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.handlers.describe_groups import GROUP_OPERATIONS, OPERATIONS_NOT_REQUESTED
from odradek.server.registry import handler

CONSUMER_MEMBER_TYPE = 1  # KIP-1099: -1 unknown, 0 classic, 1 consumer


@handler(ApiKey.CONSUMER_GROUP_DESCRIBE, versions=(0, 1))
async def handle_consumer_group_describe(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.CONSUMER_GROUP_DESCRIBE, ctx.api_version)
    group_ids = list(request.group_ids)
    try:
        coordinator = await ctx.node.groups()
        described = []
        for group_id in group_ids:
            if not group_id:
                described.append(
                    DescribedGroup(
                        group_id, ErrorCode.INVALID_GROUP_ID, "The group id can't be empty."
                    )
                )
                continue
            try:
                coordinator.check_owner(group_id)
            except KafkaError as exc:
                described.append(DescribedGroup(group_id, exc.code, str(exc)))
                continue
            described.append(coordinator.core.describe_consumer_groups([group_id])[0])
    except KafkaError as exc:
        described = [DescribedGroup(group_id, exc.code, str(exc) or None) for group_id in group_ids]
    operations = (
        GROUP_OPERATIONS if request.include_authorized_operations else OPERATIONS_NOT_REQUESTED
    )

    def assignment(partitions: tuple[DescribedTopicPartitions, ...]) -> Any:
        return schema.Assignment(
            topic_partitions=tuple(
                schema.TopicPartitions(
                    topic_id=uuid.UUID(bytes=p.topic_id),
                    topic_name=p.topic_name,
                    partitions=p.partitions,
                )
                for p in partitions
            )
        )

    return schema.ConsumerGroupDescribeResponse(
        throttle_time=0,
        groups=tuple(
            schema.DescribedGroup(
                error_code=group.error,
                error_message=group.error_message,
                group_id=group.group_id,
                group_state=group.group_state,
                group_epoch=group.group_epoch,
                assignment_epoch=group.assignment_epoch,
                assignor_name=group.assignor_name,
                members=tuple(
                    schema.Member(
                        member_id=m.member_id,
                        instance_id=m.instance_id,
                        rack_id=m.rack_id,
                        member_epoch=m.member_epoch,
                        client_id=m.client_id,
                        client_host=m.client_host,
                        subscribed_topic_names=m.subscribed_topic_names,
                        subscribed_topic_regex=m.subscribed_topic_regex,
                        assignment=assignment(m.assignment),
                        target_assignment=assignment(m.target_assignment),
                        member_type=CONSUMER_MEMBER_TYPE,
                    )
                    for m in group.members
                ),
                authorized_operations=operations,
            )
            for group in described
        ),
    )
