"""DescribeGroups (key 15), v0-v6: state, protocol and members of classic groups.

Members carry their metadata and assignment only while the group is Stable, as in Kafka (in
other states the assignment is not settled). A group that does not exist is reported as Dead
with no error before v6 and as GROUP_ID_NOT_FOUND from v6 (KIP-1043); so is a consumer group
(KIP-848), which ConsumerGroupDescribe describes. v3+ can include the
operations the caller may perform: without ACLs, every group operation (READ, DELETE,
DESCRIBE).
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.group.classic import GroupState
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler

OPERATIONS_NOT_REQUESTED = -(2**31)
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)  # READ, DELETE, DESCRIBE (AclOperation ids)


def _coordinated_here(ctx: RequestContext, group_id: str) -> bool:
    try:
        ctx.node.group_coordinator.check_owner(group_id)
    except KafkaError:
        return False
    return True


@handler(ApiKey.DESCRIBE_GROUPS, versions=(0, 6))
async def handle_describe_groups(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    schema = response_schema(ApiKey.DESCRIBE_GROUPS, version)
    operations = (
        GROUP_OPERATIONS
        if getattr(request, "include_authorized_operations", False)
        else OPERATIONS_NOT_REQUESTED
    )
    try:
        await ctx.node.groups()
        unavailable = None
    except KafkaError as exc:
        unavailable = exc.code
    described = []
    for group_id in request.groups:
        error, message = unavailable or ErrorCode.NONE, None
        group = ctx.node.group_coordinator.core.describe_group(group_id)
        state, protocol_type, protocol, members = "Dead", "", "", ()
        if unavailable is not None:
            pass
        elif not group_id:
            error = ErrorCode.INVALID_GROUP_ID
        elif not _coordinated_here(ctx, group_id):
            error = ErrorCode.NOT_COORDINATOR
        elif group_id in ctx.node.group_coordinator.core.consumer.groups:
            if version >= 6:
                error = ErrorCode.GROUP_ID_NOT_FOUND
                message = f"Group {group_id} is not a classic group."
        elif group is None or group.state == GroupState.DEAD:
            if version >= 6:
                error, message = ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found."
        else:
            stable = group.state == GroupState.STABLE
            state = group.state.value
            protocol_type = group.protocol_type or ""
            protocol = (group.protocol or "") if stable else ""
            members = tuple(
                schema.DescribedGroupMember(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    member_metadata=m.metadata(group.protocol or "") if stable else b"",
                    member_assignment=m.assignment if stable else b"",
                )
                for m in group.members.values()
            )
        described.append(
            schema.DescribedGroup(
                error_code=error,
                error_message=message,
                group_id=group_id,
                group_state=state,
                protocol_type=protocol_type,
                protocol_data=protocol,
                members=members,
                authorized_operations=operations,
            )
        )
    return schema.DescribeGroupsResponse(throttle_time=0, groups=tuple(described))
