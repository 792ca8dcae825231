"""BrokerHeartbeat (key 63), v0-1: a registered broker tells the active controller it is alive
and how far it has replayed the metadata log; the answer says whether it is caught up, fenced,
and whether it may finish a controlled shutdown (`metadata/broker_control.py` holds the state
machine). Served by the active controller only (NOT_CONTROLLER elsewhere); an unknown
registration or another epoch gets STALE_BROKER_EPOCH. Not done: v1's offline log dirs are read
but not acted on (a failed log dir is handled by the broker itself).
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.broker_control import BrokerHeartbeat
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.handlers.quorum_support import quorum_of
from odradek.server.registry import handler


@handler(ApiKey.BROKER_HEARTBEAT, versions=(0, 1))
async def handle_broker_heartbeat(ctx: RequestContext, request: Any) -> Any:
    quorum_of(ctx)
    schema = response_schema(ApiKey.BROKER_HEARTBEAT, ctx.api_version)
    heartbeat = BrokerHeartbeat(
        int(request.broker_id),
        int(request.broker_epoch),
        int(request.current_metadata_offset),
        want_fence=bool(request.want_fence),
        want_shutdown=bool(request.want_shut_down),
    )
    try:
        reply = await ctx.node.cluster_control.heartbeat(heartbeat)
    except KafkaError as exc:
        return schema.BrokerHeartbeatResponse(
            throttle_time=0,
            error_code=exc.code,
            is_caught_up=False,
            is_fenced=True,
            should_shut_down=False,
        )
    return schema.BrokerHeartbeatResponse(
        throttle_time=0,
        error_code=ErrorCode.NONE,
        is_caught_up=reply.is_caught_up,
        is_fenced=reply.is_fenced,
        should_shut_down=reply.should_shut_down,
    )
