"""JoinGroup (key 11), v0-v9: join a classic group, or rejoin it for a rebalance.

v0 has no rebalance timeout (the session timeout serves); v4+ new dynamic members are first
told MEMBER_ID_REQUIRED with the member id to come back with (KIP-394); v5+ carry
group.instance.id (static membership, KIP-345); v7+ name the protocol type in the response;
v8+ carry a reason (logged only); v9+ tell a static leader that rejoined to skip the assignment
(KIP-814). The response waits for the rebalance to complete, up to the rebalance timeout.
"""

from __future__ import annotations

import logging
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.group.messages import JoinRequest, JoinResult
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import millis, response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler

logger = logging.getLogger(__name__)


@handler(ApiKey.JOIN_GROUP, versions=(0, 9))
async def handle_join_group(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    session_timeout_ms = millis(request.session_timeout)
    rebalance_timeout = getattr(request, "rebalance_timeout", None)
    join = JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        client_id=ctx.header.client_id or "",
        client_host=ctx.client_host,
        session_timeout_ms=session_timeout_ms,
        rebalance_timeout_ms=(
            millis(rebalance_timeout) if rebalance_timeout is not None else session_timeout_ms
        ),
        protocol_type=request.protocol_type,
        protocols=tuple((p.name, bytes(p.metadata)) for p in request.protocols),
        require_known_member_id=version >= 4,
        version=version,
    )
    reason = getattr(request, "reason", None)
    if reason:
        logger.info("[GroupCoordinator] %s joins %s: %s", join.member_id, join.group_id, reason)
    try:
        coordinator = await ctx.node.groups()
        result = await coordinator.join_group(join)
    except KafkaError as exc:
        result = JoinResult(exc.code, request.member_id)
    return _response(version, result)


def _response(version: int, result: JoinResult) -> Any:
    schema = response_schema(ApiKey.JOIN_GROUP, version)
    members = result.members if result.error == ErrorCode.NONE else ()
    protocol = result.protocol
    if protocol is None and version < 7:
        protocol = ""  # non-nullable before v7
    return schema.JoinGroupResponse(
        throttle_time=0,
        error_code=result.error,
        generation_id=result.generation,
        protocol_type=result.protocol_type,
        protocol_name=protocol,
        leader=result.leader,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=tuple(
            schema.JoinGroupResponseMember(
                member_id=member_id, group_instance_id=instance_id, metadata=metadata
            )
            for member_id, instance_id, metadata in members
        ),
    )
