"""LeaveGroup (key 13), v0-v5: members leave at once instead of waiting for their timeout.

v0-v2 name one member; v3+ a batch of (member id, group.instance.id) with an error each
(KIP-345): a static member may be removed by instance id alone (an operator's tool does that),
and a member id that does not match the instance's current one is FENCED_INSTANCE_ID. v5+
carry a reason (logged only).
"""

from __future__ import annotations

import logging
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler

logger = logging.getLogger(__name__)


@handler(ApiKey.LEAVE_GROUP, versions=(0, 5))
async def handle_leave_group(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.LEAVE_GROUP, ctx.api_version)
    if ctx.api_version >= 3:
        leaving = [(m.member_id, m.group_instance_id) for m in request.members]
        for member in request.members:
            reason = getattr(member, "reason", None)
            if reason:
                logger.info(
                    "[GroupCoordinator] %s leaves %s: %s",
                    member.member_id,
                    request.group_id,
                    reason,
                )
    else:
        leaving = [(request.member_id, None)]
    try:
        coordinator = await ctx.node.groups()
        error, errors = coordinator.leave_group(request.group_id, leaving)
    except KafkaError as exc:
        error, errors = exc.code, []
    if ctx.api_version < 3:
        if error == ErrorCode.NONE and errors:
            error = errors[0]
        return schema.LeaveGroupResponse(throttle_time=0, error_code=error)
    members = ()
    if error == ErrorCode.NONE:
        members = tuple(
            schema.MemberResponse(
                member_id=member_id, group_instance_id=instance_id, error_code=code
            )
            for (member_id, instance_id), code in zip(leaving, errors, strict=True)
        )
    return schema.LeaveGroupResponse(throttle_time=0, error_code=error, members=members)
