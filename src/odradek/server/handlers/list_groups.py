"""ListGroups (key 16), v0-v5: every group this coordinator knows, classic and consumer.

v4+ filter by state (KIP-518; case-insensitive) and v5+ by type (KIP-848: "classic",
"consumer"); v4+ report each group's state and v5+ its type. Groups being deleted are left out.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.LIST_GROUPS, versions=(0, 5))
async def handle_list_groups(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.LIST_GROUPS, ctx.api_version)
    try:
        coordinator = await ctx.node.groups()
    except KafkaError as exc:
        return schema.ListGroupsResponse(throttle_time=0, error_code=exc.code, groups=())
    groups = coordinator.core.list_groups(
        getattr(request, "states_filter", ()) or (), getattr(request, "types_filter", ()) or ()
    )
    return schema.ListGroupsResponse(
        throttle_time=0,
        error_code=ErrorCode.NONE,
        groups=tuple(
            schema.ListedGroup(
                group_id=group.group_id,
                protocol_type=group.protocol_type,
                group_state=group.state,
                group_type=group.group_type,
            )
            for group in groups
        ),
    )
