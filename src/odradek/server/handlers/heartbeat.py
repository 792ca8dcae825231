"""Heartbeat (key 12), v0-v4: a member says it is alive; the answer says if it must rejoin.

REBALANCE_IN_PROGRESS tells the member to rejoin; v3+ carry group.instance.id (a fenced
static member gets FENCED_INSTANCE_ID).
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.HEARTBEAT, versions=(0, 4))
async def handle_heartbeat(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.HEARTBEAT, ctx.api_version)
    try:
        coordinator = await ctx.node.groups()
        error = coordinator.heartbeat(
            request.group_id,
            request.generation_id,
            request.member_id,
            getattr(request, "group_instance_id", None),
        )
    except KafkaError as exc:
        error = exc.code
    return schema.HeartbeatResponse(throttle_time=0, error_code=error)
