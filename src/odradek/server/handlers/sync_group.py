"""SyncGroup (key 14), v0-v5: the leader hands in the assignment; every member gets its part.

Followers wait until the leader's assignment is written to `__consumer_offsets`. v3+ carry
group.instance.id; v5+ name the protocol type and protocol, which must match the group's
(INCONSISTENT_GROUP_PROTOCOL otherwise).
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import KafkaError
from odradek.coordinator.group.messages import SyncResult
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.SYNC_GROUP, versions=(0, 5))
async def handle_sync_group(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.SYNC_GROUP, ctx.api_version)
    assignments = {a.member_id: bytes(a.assignment) for a in request.assignments}
    try:
        coordinator = await ctx.node.groups()
        result = await coordinator.sync_group(
            request.group_id,
            request.generation_id,
            request.member_id,
            getattr(request, "group_instance_id", None),
            getattr(request, "protocol_type", None),
            getattr(request, "protocol_name", None),
            assignments,
        )
    except KafkaError as exc:
        result = SyncResult(exc.code)
    return schema.SyncGroupResponse(
        throttle_time=0,
        error_code=result.error,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol,
        assignment=result.assignment,
    )
